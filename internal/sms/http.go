package sms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// HTTPTimeout is how long one request to the gateway may take.
const HTTPTimeout = 10 * time.Second

// HTTPProvider is a Sender for an SMS gateway with a JSON web API: each
// message is one POST to URL with the body {"to":"+31…","text":"…"} and,
// when Token is set, the header "Authorization: Bearer TOKEN". Any 2xx
// answer means accepted; anything else, or no answer within HTTPTimeout,
// is a failure the Worker retries. Most gateways take such a request
// directly or through a small adapter.
//
// Neither the number, the text, the token nor the gateway's answer body
// (which may quote them) appear in its errors or log lines: an error names
// the answer's status code, or the kind of network failure.
type HTTPProvider struct {
	URL    string
	Token  string       // from KLUIS_SMS_TOKEN; never from a flag
	Client *http.Client // nil: a client with HTTPTimeout
	Logger *slog.Logger // nil discards log lines
}

// NewHTTPProvider checks the gateway URL (http or https, with a host, no
// user name or password in it: the token carries the credential) and
// returns a provider for it.
func NewHTTPProvider(rawURL, token string, logger *slog.Logger) (*HTTPProvider, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("must be an http:// or https:// URL of the SMS gateway")
	}
	if u.User != nil {
		return nil, errors.New("must not hold a user name or password: put the gateway's token in KLUIS_SMS_TOKEN")
	}
	if strings.ContainsAny(token, "\r\n") {
		return nil, errors.New("the token must be one line")
	}
	return &HTTPProvider{URL: u.String(), Token: token, Logger: logger}, nil
}

type httpMessage struct {
	To   string `json:"to"`
	Text string `json:"text"`
}

// Send posts one message to the gateway.
func (p *HTTPProvider) Send(ctx context.Context, to, text string) error {
	body, err := json.Marshal(httpMessage{To: to, Text: text})
	if err != nil {
		return fmt.Errorf("sms: gateway: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, HTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(body))
	if err != nil {
		return errors.New("sms: gateway: cannot build the request")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if p.Token != "" {
		req.Header.Set("Authorization", "Bearer "+p.Token)
	}
	client := p.Client
	if client == nil {
		client = &http.Client{Timeout: HTTPTimeout}
	}
	res, err := client.Do(req)
	if err != nil {
		// The url.Error names the method and URL, which are configuration;
		// its cause is a network failure. Neither holds the message.
		if ctx.Err() != nil {
			return fmt.Errorf("sms: gateway: no answer: %w", ctx.Err())
		}
		return fmt.Errorf("sms: gateway unreachable: %s", networkCause(err))
	}
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("sms: gateway answered %d", res.StatusCode)
	}
	logger(p.Logger).DebugContext(ctx, "sms handed to the gateway", "status", res.StatusCode)
	return nil
}

// networkCause is the innermost error of a failed request, without the URL.
func networkCause(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}
