package client

import (
	"context"
	"net/http"
)

// New returns a client of the kluis instance at baseURL (such as
// "https://kluis.example.org") that sends token as the bearer credential of
// every request: a personal API token (kluis_pat_…) for a script, or the
// token of a sign-in. With an empty token it sends none, as for signing in.
// The options of the generated client (WithHTTPClient, WithRequestEditorFn)
// may follow.
func New(baseURL, token string, opts ...ClientOption) (*ClientWithResponses, error) {
	if token != "" {
		opts = append([]ClientOption{WithRequestEditorFn(BearerToken(token))}, opts...)
	}
	return NewClientWithResponses(baseURL, opts...)
}

// BearerToken returns a request editor that sends token in the
// Authorization header, where kluis takes API credentials (a personal API
// token is never accepted as a cookie).
func BearerToken(token string) RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}
