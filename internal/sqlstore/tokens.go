package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
)

// Personal API tokens (R14): a person's scripts call the organisation's API
// with a token of their own instead of a session. A token is named, has a
// scope (read or full) and a required expiry, and is stored as the SHA-256
// of its secret; the secret is shown once. A token authenticates as its
// person, marked as a token (kluis.Actor.TokenID): it never counts as a
// fresh authentication, so it cannot change credentials, factors, tokens or
// the e-mail address. Tokens die with their person (deletion, disabling),
// with a password reset, and when the organisation's logins are stopped
// (R19).

// APITokenPrefix starts every personal API token, so that secret scanners
// recognise a leaked one and it is never taken for a session token (which
// has no prefix and another length).
const APITokenPrefix = "kluis_pat_"

// tokenUseGranularity is how stale a token's last-use time may get before a
// request writes it again, as for sessions' last-seen time.
const tokenUseGranularity = time.Minute

const tabTokens = "api_tokens"

// APIToken is a personal API token as its owner sees it: never its secret.
type APIToken struct {
	ID         kluis.TokenID
	Name       string
	Scope      kluis.TokenScope
	CreatedAt  time.Time
	ExpiresAt  time.Time
	LastUsedAt time.Time // zero when never used
}

// IsAPIToken reports whether a presented credential claims to be a personal
// API token (it has the prefix); whether it is one is for
// AuthenticateAPIToken.
func IsAPIToken(credential string) bool { return strings.HasPrefix(credential, APITokenPrefix) }

// newAPIToken returns a new token's secret (the prefix and 32 random bytes,
// unpadded base64url, DESIGN §5) and the SHA-256 it is stored under.
func newAPIToken() (secret string, hash []byte) {
	t, _ := NewToken()
	secret = APITokenPrefix + t
	return secret, TokenHash(secret)
}

func validAPITokenShape(secret string) bool {
	rest, ok := strings.CutPrefix(secret, APITokenPrefix)
	return ok && ValidTokenShape(rest)
}

func tokenNameField(org kluis.OrgID, id kluis.TokenID) keys.FieldRef {
	return keys.FieldRef{Org: string(org), Table: tabTokens, Column: colName, Row: string(id)}
}

// clientHash is what the store keeps of an address a token was used from:
// an HMAC under the organisation's index key, bound to the token, so that
// the database holds no address in clear and a copy of it cannot be
// searched for one.
func (s *Store) clientHash(ctx context.Context, org kluis.OrgID, id kluis.TokenID, client string) ([]byte, error) {
	return s.keys.BlindIndex(ctx, string(org), "api-token-client/v1\x00"+string(id)+"\x00"+client)
}

// CreateAPIToken makes a personal API token for the signed-in person and
// returns it with its secret, which is shown this once and never stored.
// It needs a session (not a token) with a fresh authentication. Recorded as
// token.create. Errors: unauthenticated, forbidden (a token), reauth_required,
// invalid_input (name, scope, expires_at), conflict (too many tokens).
func (s *Store) CreateAPIToken(ctx context.Context, org kluis.OrgID, actor kluis.Actor, in kluis.TokenInput) (APIToken, string, error) {
	if !actor.IsOrgUser(org) {
		return APIToken{}, "", kluis.ErrUnauthenticated
	}
	if !kluis.CanChangeOwnCredentials(actor, org) {
		return APIToken{}, "", s.Refuse(ctx, OrgChain(org), actor, "token.create", UserTarget(actor.UserID))
	}
	if !kluis.FreshlyAuthenticated(actor, s.Now()) {
		return APIToken{}, "", s.reauthRequired(ctx, org, actor, "token.create")
	}
	if in.ExpiresAt.IsZero() && in.Lifetime > 0 {
		in.ExpiresAt = s.Now().Add(in.Lifetime)
	}
	in = in.Normalize()
	if err := in.Validate(s.Now()); err != nil {
		return APIToken{}, "", err
	}
	var tok APIToken
	var secret string
	err := s.Write(ctx, OrgChain(org), func(t *Tx) error {
		// The session must still be there: a reset or a sign-out
		// meanwhile wins.
		var alive int
		if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM sessions WHERE org_id = ? AND id = ?`, org, string(actor.SessionID)).Scan(&alive); err != nil {
			return err
		}
		if alive != 1 {
			return kluis.ErrUnauthenticated
		}
		if _, err := t.Exec(ctx, `DELETE FROM api_tokens WHERE org_id = ? AND user_id = ? AND expires_at <= ?`, org, actor.UserID, Micros(t.Now())); err != nil {
			return err
		}
		var n int
		if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM api_tokens WHERE org_id = ? AND user_id = ?`, org, actor.UserID).Scan(&n); err != nil {
			return err
		}
		if n >= kluis.MaxTokensPerUser {
			return kluis.Errorf(kluis.EConflict, "you have as many API tokens as allowed; revoke one first")
		}
		tok = APIToken{ID: kluis.TokenID(kluis.NewID(t.Now())), Name: in.Name, Scope: in.Scope, CreatedAt: t.Now(), ExpiresAt: in.ExpiresAt.Truncate(time.Microsecond)}
		sealed, err := t.s.Seal(ctx, UserKey(org, actor.UserID), tokenNameField(org, tok.ID), []byte(tok.Name))
		if err != nil {
			return err
		}
		var hash []byte
		secret, hash = newAPIToken()
		if _, err := t.Exec(ctx, `INSERT INTO api_tokens (id, org_id, user_id, token_hash, name, scope, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			tok.ID, org, actor.UserID, hash, sealed, string(tok.Scope), Micros(t.Now()), Micros(tok.ExpiresAt)); err != nil {
			return err
		}
		return t.Append(ctx, OrgChain(org), actor, "token.create", UserTarget(actor.UserID), "success",
			map[string]any{"token": string(tok.ID), "scope": string(tok.Scope), "expires_at": tok.ExpiresAt.Format(time.RFC3339)})
	})
	if err != nil {
		return APIToken{}, "", err
	}
	return tok, secret, nil
}

// FindAPITokens returns the signed-in person's live tokens, newest first,
// without their secrets (R4). Reading one's own tokens is not recorded.
// Errors: unauthenticated.
func (s *Store) FindAPITokens(ctx context.Context, org kluis.OrgID, actor kluis.Actor) ([]APIToken, error) {
	if !actor.IsOrgUser(org) {
		return nil, kluis.ErrUnauthenticated
	}
	rows, err := s.db.reader.QueryContext(ctx, s.db.Q(`SELECT id, name, scope, created_at, expires_at, last_used_at FROM api_tokens
		WHERE org_id = ? AND user_id = ? AND expires_at > ? ORDER BY created_at DESC, id DESC`), org, actor.UserID, Micros(s.Now()))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	type row struct {
		tok    APIToken
		sealed []byte
	}
	var found []row
	for rows.Next() {
		var r row
		var created, expires int64
		var used sql.NullInt64
		var scope string
		if err := rows.Scan(&r.tok.ID, &r.sealed, &scope, &created, &expires, &used); err != nil {
			return nil, err
		}
		r.tok.Scope, r.tok.CreatedAt, r.tok.ExpiresAt, r.tok.LastUsedAt = kluis.TokenScope(scope), FromMicros(created), FromMicros(expires), NullMicros(used)
		found = append(found, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	out := make([]APIToken, 0, len(found))
	for _, r := range found {
		name, err := s.Open(ctx, tokenNameField(org, r.tok.ID), r.sealed)
		if err != nil {
			return nil, err
		}
		r.tok.Name = string(name)
		out = append(out, r.tok)
	}
	return out, nil
}

// RevokeAPIToken ends one of the signed-in person's tokens at once,
// recorded as token.revoke. A token may revoke itself or another token of
// its person (it only takes power away); a token of someone else is not
// found. Errors: unauthenticated, not_found.
func (s *Store) RevokeAPIToken(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.TokenID) error {
	if !actor.IsOrgUser(org) {
		return kluis.ErrUnauthenticated
	}
	if !kluis.ValidID(string(id)) {
		return kluis.ErrNotFound
	}
	return s.Write(ctx, OrgChain(org), func(t *Tx) error {
		res, err := t.Exec(ctx, `DELETE FROM api_tokens WHERE org_id = ? AND user_id = ? AND id = ?`, org, actor.UserID, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return kluis.ErrNotFound
		}
		return t.Append(ctx, OrgChain(org), actor, "token.revoke", UserTarget(actor.UserID), "success", map[string]any{"token": string(id)})
	})
}

// revokeAPITokens deletes every token of a person (disabled, or a password
// reset) and returns how many there were.
func (t *Tx) revokeAPITokens(ctx context.Context, org kluis.OrgID, user kluis.UserID) (int64, error) {
	res, err := t.Exec(ctx, `DELETE FROM api_tokens WHERE org_id = ? AND user_id = ?`, org, user)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// revokeOrgAPITokens deletes every token of the organisation (its logins
// are stopped, R19) and returns how many there were.
func (t *Tx) revokeOrgAPITokens(ctx context.Context, org kluis.OrgID) (int64, error) {
	res, err := t.Exec(ctx, `DELETE FROM api_tokens WHERE org_id = ?`, org)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// AuthenticateAPIToken resolves a personal API token into its actor, user
// and organisation with one query (R14), as AuthenticateOrg does for a
// session. The actor carries the token's id and, for scope read, ReadOnly;
// it is never freshly authenticated. An expired token is deleted; a token of
// a person who is not active, or of an organisation whose logins are
// stopped, does not work. Reads write nothing unless the last-use time is
// over a minute old or the token comes from another address than last time;
// a first use from an address is recorded as token.use. Errors:
// unauthenticated.
func (s *Store) AuthenticateAPIToken(ctx context.Context, secret string) (kluis.Actor, kluis.User, kluis.Org, error) {
	var o kluis.Org
	if !validAPITokenShape(secret) {
		return kluis.Actor{}, kluis.User{}, o, kluis.ErrUnauthenticated
	}
	var id kluis.TokenID
	var scope string
	var expires, orgCreated int64
	var used sql.NullInt64
	var lastClient []byte
	var stopped bool
	row := s.db.ReadRow(ctx, `SELECT u.id, u.org_id, u.email, u.name, u.phone, u.maintenance_emails, u.role, u.status,
		u.created_at, u.last_login_at, t.id, t.scope, t.expires_at, t.last_used_at, t.last_client,
		o.slug, o.name, o.language, o.created_at, o.logins_disabled, `+enrolmentOnly("t")+`
		FROM api_tokens t JOIN users u ON u.id = t.user_id AND u.org_id = t.org_id JOIN orgs o ON o.id = t.org_id
		WHERE t.token_hash = ?`, TokenHash(secret))
	var enrolmentOnly int
	u, err := s.ScanUser(ctx, row, &id, &scope, &expires, &used, &lastClient, &o.Slug, &o.Name, &o.Language, &orgCreated, &stopped, &enrolmentOnly)
	if errors.Is(err, kluis.ErrNotFound) {
		return kluis.Actor{}, kluis.User{}, o, kluis.ErrUnauthenticated
	}
	if err != nil {
		return kluis.Actor{}, kluis.User{}, o, err
	}
	o.ID, o.CreatedAt = u.OrgID, FromMicros(orgCreated)
	now := s.Now()
	if !now.Before(FromMicros(expires)) {
		if _, err := s.db.WriteExec(ctx, `DELETE FROM api_tokens WHERE id = ?`, id); err != nil {
			return kluis.Actor{}, kluis.User{}, o, err
		}
		return kluis.Actor{}, kluis.User{}, o, kluis.ErrUnauthenticated
	}
	if u.Status != kluis.StatusActive || stopped {
		return kluis.Actor{}, kluis.User{}, o, kluis.ErrUnauthenticated
	}
	// A token cannot enrol a factor: while the organisation requires one
	// and its owner has none, the token does nothing (R17).
	if enrolmentOnly == 1 {
		return kluis.Actor{}, kluis.User{}, o, kluis.ErrMFAEnrolmentRequired
	}
	actor := kluis.Actor{Realm: kluis.RealmOrg, OrgID: u.OrgID, UserID: u.ID, Role: u.Role, TokenID: id, ReadOnly: kluis.TokenScope(scope) != kluis.ScopeFull}
	var client []byte
	if addr := clientFrom(ctx); addr.IsValid() {
		// An IPv6 client counts by its /64, as the throttle does: a
		// holder rotating addresses in their own block is one client.
		if client, err = s.clientHash(ctx, o.ID, id, clientBlock(addr)); err != nil {
			return kluis.Actor{}, kluis.User{}, o, err
		}
	}
	newClient := client != nil && !bytes.Equal(client, lastClient)
	if newClient {
		if err := s.noteTokenClient(ctx, o.ID, actor, client); err != nil {
			return kluis.Actor{}, kluis.User{}, o, err
		}
	} else if !used.Valid || now.Sub(FromMicros(used.Int64)) >= tokenUseGranularity {
		if _, err := s.db.WriteExec(ctx, `UPDATE api_tokens SET last_used_at = ? WHERE id = ?`, Micros(now), id); err != nil {
			return kluis.Actor{}, kluis.User{}, o, err
		}
	}
	return actor, u, o, nil
}

// noteTokenClient records that a token is used from another address than
// last time: the address's keyed hash becomes the token's last one, and an
// address the token was never used from is kept (as a hash) and recorded
// as token.use, its address sealed in the event like every request's.
func (s *Store) noteTokenClient(ctx context.Context, org kluis.OrgID, actor kluis.Actor, client []byte) error {
	return s.Write(ctx, OrgChain(org), func(t *Tx) error {
		res, err := t.Exec(ctx, `UPDATE api_tokens SET last_used_at = ?, last_client = ? WHERE org_id = ? AND id = ?`, Micros(t.Now()), client, org, actor.TokenID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return kluis.ErrUnauthenticated // revoked meanwhile
		}
		res, err = t.Exec(ctx, `INSERT INTO api_token_clients (token_id, client_hash, first_seen_at) VALUES (?, ?, ?)
			ON CONFLICT (token_id, client_hash) DO NOTHING`, actor.TokenID, client, Micros(t.Now()))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // seen before
		}
		return t.Append(ctx, OrgChain(org), actor, "token.use", UserTarget(actor.UserID), "success",
			map[string]any{"token": string(actor.TokenID), "new_address": true})
	})
}

// RefuseTokenScope records and refuses a request a token's scope does not
// allow (a write with a read-only token). Errors: forbidden.
func (s *Store) RefuseTokenScope(ctx context.Context, org kluis.OrgID, actor kluis.Actor) error {
	if err := s.RecordRefusal(ctx, OrgChain(org), actor, "token.scope", UserTarget(actor.UserID), "denied",
		map[string]any{"token": string(actor.TokenID)}); err != nil {
		return err
	}
	return kluis.Errorf(kluis.EForbidden, "this API token may only read")
}
