package kluis

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// TokenID identifies a personal API token; it is not the token's secret.
type TokenID string

// TokenScope is what a personal API token may do.
type TokenScope string

// The scopes of a personal API token (R6, R8: the least that does the job).
const (
	// ScopeRead allows only reading requests (GET and HEAD).
	ScopeRead TokenScope = "read"
	// ScopeFull allows what the person may do, except what needs a fresh
	// sign-in (credentials, factors, tokens, e-mail address).
	ScopeFull TokenScope = "full"
)

// Valid reports whether s is a known scope.
func (s TokenScope) Valid() bool { return s == ScopeRead || s == ScopeFull }

// MaxTokenLifetime is the longest a personal API token may live: every
// token expires, so a forgotten one does not work for ever.
const MaxTokenLifetime = 365 * 24 * time.Hour

// MaxTokensPerUser caps a person's live tokens.
const MaxTokensPerUser = 20

// TokenInput is a request for a new personal API token.
type TokenInput struct {
	Name      string
	Scope     TokenScope
	ExpiresAt time.Time
	// Lifetime, when ExpiresAt is zero, sets the expiry from the time of
	// creation (the pages offer a choice of days).
	Lifetime time.Duration
}

// Normalize returns the input with the name normalised like a person's
// name and the expiry in UTC.
func (in TokenInput) Normalize() TokenInput {
	in.Name = NormalizeName(in.Name)
	in.ExpiresAt = in.ExpiresAt.UTC()
	return in
}

// Validate checks a normalised input at time now: a name of at most 100
// characters, a known scope, and an expiry in the future and at most
// MaxTokenLifetime ahead. Errors: invalid_input naming name, scope and
// expires_at.
func (in TokenInput) Validate(now time.Time) error {
	f := map[string]string{}
	switch {
	case in.Name == "":
		f["name"] = "is required"
	case !utf8.ValidString(in.Name) || utf8.RuneCountInString(in.Name) > 100:
		f["name"] = "must be at most 100 characters"
	case strings.ContainsFunc(in.Name, unicode.IsControl):
		f["name"] = "must not contain control characters"
	}
	if !in.Scope.Valid() {
		f["scope"] = "must be read or full"
	}
	switch {
	case in.ExpiresAt.IsZero():
		f["expires_at"] = "is required"
	case !in.ExpiresAt.After(now):
		f["expires_at"] = "must be in the future"
	case in.ExpiresAt.After(now.Add(MaxTokenLifetime)):
		f["expires_at"] = fmt.Sprintf("must be at most %d days ahead", int(MaxTokenLifetime/(24*time.Hour)))
	}
	if len(f) > 0 {
		return Invalid(f)
	}
	return nil
}

// ViaToken reports whether a personal API token, not a session, made the
// request.
func (a Actor) ViaToken() bool { return a.TokenID != "" }

// CanChangeOwnCredentials: changing how one signs in or is reached — the
// password, second factors, personal API tokens, the e-mail address —
// needs a signed-in person with a session. A personal API token never may,
// whatever its scope, so a leaked token cannot entrench itself.
func CanChangeOwnCredentials(a Actor, org OrgID) bool {
	return a.IsOrgUser(org) && !a.ViaToken() && a.SessionID != ""
}

// AllowedByScope reports whether the actor's credential allows a request
// that may change state (write): a read-only token allows only reads.
func AllowedByScope(a Actor, write bool) bool { return !write || !a.ReadOnly }

// APITokenPrefix starts every personal API token, so that secret scanners
// recognise a leaked one and it is never taken for a session token (which
// has no prefix and another length).
const APITokenPrefix = "kluis_pat_"

// IsAPIToken reports whether a presented credential claims to be a personal
// API token (it has the prefix); whether it is one is for authentication.
func IsAPIToken(credential string) bool { return strings.HasPrefix(credential, APITokenPrefix) }

// APIToken is a personal API token as its owner sees it: never its secret.
type APIToken struct {
	ID         TokenID
	Name       string
	Scope      TokenScope
	CreatedAt  time.Time
	ExpiresAt  time.Time
	LastUsedAt time.Time // zero when never used
}

// TokenService manages a person's personal API tokens (R14): named, scoped,
// expiring, stored as hashes, and never able to change credentials.
type TokenService interface {
	// CreateAPIToken makes a token and returns it with its secret, shown
	// once. It needs a fresh authentication in a session. Errors:
	// unauthenticated, reauth_required, forbidden, invalid_input, conflict.
	CreateAPIToken(ctx context.Context, org OrgID, actor Actor, in TokenInput) (APIToken, string, error)
	// FindAPITokens lists the person's live tokens. Errors: unauthenticated.
	FindAPITokens(ctx context.Context, org OrgID, actor Actor) ([]APIToken, error)
	// RevokeAPIToken ends one of the person's tokens. Errors:
	// unauthenticated, not_found.
	RevokeAPIToken(ctx context.Context, org OrgID, actor Actor, id TokenID) error
	// RefuseTokenScope records a write refused to a read-only token and
	// returns forbidden.
	RefuseTokenScope(ctx context.Context, org OrgID, actor Actor) error
}
