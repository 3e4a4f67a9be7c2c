package tokens

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/accounts"
	"github.com/kluis/kluis/internal/sqlstore/throttle"
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

// tokenUseGranularity is how stale a token's last-use time may get before a
// request writes it again, as for sessions' last-seen time.
const tokenUseGranularity = time.Minute

const tabTokens = "api_tokens"

// newAPIToken returns a new token's secret (the prefix and 32 random bytes,
// unpadded base64url, DESIGN §5) and the SHA-256 it is stored under.
func newAPIToken() (secret string, hash []byte) {
	t, _ := sqlstore.NewToken()
	secret = kluis.APITokenPrefix + t
	return secret, sqlstore.TokenHash(secret)
}

func validAPITokenShape(secret string) bool {
	rest, ok := strings.CutPrefix(secret, kluis.APITokenPrefix)
	return ok && sqlstore.ValidTokenShape(rest)
}

func tokenNameField(org kluis.OrgID, id kluis.TokenID) keys.FieldRef {
	return keys.FieldRef{Org: string(org), Table: tabTokens, Column: sqlstore.ColName, Row: string(id)}
}

// clientHash is what the store keeps of an address a token was used from:
// an HMAC under the organisation's index key, bound to the token, so that
// the database holds no address in clear and a copy of it cannot be
// searched for one.
func (s *Service) clientHash(ctx context.Context, org kluis.OrgID, id kluis.TokenID, client string) ([]byte, error) {
	return s.core.Keys().BlindIndex(ctx, string(org), "api-token-client/v1\x00"+string(id)+"\x00"+client)
}

// CreateAPIToken makes a personal API token for the signed-in person and
// returns it with its secret, which is shown this once and never stored.
// It needs a session (not a token) with a fresh authentication. Recorded as
// token.create. Errors: unauthenticated, forbidden (a token), reauth_required,
// invalid_input (name, scope, expires_at), conflict (too many tokens).
func (s *Service) CreateAPIToken(ctx context.Context, org kluis.OrgID, actor kluis.Actor, in kluis.TokenInput) (kluis.APIToken, string, error) {
	if !actor.IsOrgUser(org) {
		return kluis.APIToken{}, "", kluis.ErrUnauthenticated
	}
	if !kluis.CanChangeOwnCredentials(actor, org) {
		return kluis.APIToken{}, "", s.core.Refuse(ctx, sqlstore.OrgChain(org), actor, "token.create", sqlstore.UserTarget(actor.UserID))
	}
	if !kluis.FreshlyAuthenticated(actor, s.core.Now()) {
		return kluis.APIToken{}, "", accounts.ReauthRequired(ctx, s.core, kluis.OrgScope(org), actor, "token.create")
	}
	if in.ExpiresAt.IsZero() && in.Lifetime > 0 {
		in.ExpiresAt = s.core.Now().Add(in.Lifetime)
	}
	in = in.Normalize()
	if err := in.Validate(s.core.Now()); err != nil {
		return kluis.APIToken{}, "", err
	}
	var tok kluis.APIToken
	var secret string
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		// The session must still be there: a reset or a sign-out
		// meanwhile wins.
		var alive int
		if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM sessions WHERE org_id = ? AND id = ?`, org, string(actor.SessionID)).Scan(&alive); err != nil {
			return err
		}
		if alive != 1 {
			return kluis.ErrUnauthenticated
		}
		if _, err := t.Exec(ctx, `DELETE FROM api_tokens WHERE org_id = ? AND user_id = ? AND expires_at <= ?`, org, actor.UserID, sqlstore.Micros(t.Now())); err != nil {
			return err
		}
		var n int
		if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM api_tokens WHERE org_id = ? AND user_id = ?`, org, actor.UserID).Scan(&n); err != nil {
			return err
		}
		if n >= kluis.MaxTokensPerUser {
			return kluis.Errorf(kluis.EConflict, "you have as many API tokens as allowed; revoke one first")
		}
		tok = kluis.APIToken{ID: kluis.TokenID(kluis.NewID(t.Now())), Name: in.Name, Scope: in.Scope, CreatedAt: t.Now(), ExpiresAt: in.ExpiresAt.Truncate(time.Microsecond)}
		sealed, err := s.core.Seal(ctx, sqlstore.UserKey(org, actor.UserID), tokenNameField(org, tok.ID), []byte(tok.Name))
		if err != nil {
			return err
		}
		var hash []byte
		secret, hash = newAPIToken()
		if _, err := t.Exec(ctx, `INSERT INTO api_tokens (id, org_id, user_id, token_hash, name, scope, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			tok.ID, org, actor.UserID, hash, sealed, string(tok.Scope), sqlstore.Micros(t.Now()), sqlstore.Micros(tok.ExpiresAt)); err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "token.create", sqlstore.UserTarget(actor.UserID), "success",
			map[string]any{"token": string(tok.ID), "scope": string(tok.Scope), "expires_at": tok.ExpiresAt.Format(time.RFC3339)})
	})
	if err != nil {
		return kluis.APIToken{}, "", err
	}
	return tok, secret, nil
}

// FindAPITokens returns the signed-in person's live tokens, newest first,
// without their secrets (R4). Reading one's own tokens is not recorded.
// Errors: unauthenticated.
func (s *Service) FindAPITokens(ctx context.Context, org kluis.OrgID, actor kluis.Actor) ([]kluis.APIToken, error) {
	if !actor.IsOrgUser(org) {
		return nil, kluis.ErrUnauthenticated
	}
	rows, err := s.core.DB().Query(ctx, `SELECT id, name, scope, created_at, expires_at, last_used_at FROM api_tokens
		WHERE org_id = ? AND user_id = ? AND expires_at > ? ORDER BY created_at DESC, id DESC`, org, actor.UserID, sqlstore.Micros(s.core.Now()))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	type row struct {
		tok    kluis.APIToken
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
		r.tok.Scope, r.tok.CreatedAt, r.tok.ExpiresAt, r.tok.LastUsedAt = kluis.TokenScope(scope), sqlstore.FromMicros(created), sqlstore.FromMicros(expires), sqlstore.NullMicros(used)
		found = append(found, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	out := make([]kluis.APIToken, 0, len(found))
	for _, r := range found {
		name, err := s.core.Open(ctx, tokenNameField(org, r.tok.ID), r.sealed)
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
func (s *Service) RevokeAPIToken(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.TokenID) error {
	if !actor.IsOrgUser(org) {
		return kluis.ErrUnauthenticated
	}
	if !kluis.ValidID(string(id)) {
		return kluis.ErrNotFound
	}
	return s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		res, err := t.Exec(ctx, `DELETE FROM api_tokens WHERE org_id = ? AND user_id = ? AND id = ?`, org, actor.UserID, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return kluis.ErrNotFound
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "token.revoke", sqlstore.UserTarget(actor.UserID), "success", map[string]any{"token": string(id)})
	})
}

// Authenticate resolves a personal API token into its identity with one
// query (R14), as a session is. The actor carries the token's id and, for scope read, ReadOnly;
// it is never freshly authenticated. An expired token is deleted; a token of
// a person who is not active, or of an organisation whose logins are
// stopped, does not work. Reads write nothing unless the last-use time is
// over a minute old or the token comes from another address than last time;
// a first use from an address is recorded as token.use. Errors:
// unauthenticated.
func (s *Service) Authenticate(ctx context.Context, from kluis.Origin, secret string) (kluis.Identity, error) {
	var o kluis.Org
	if !validAPITokenShape(secret) {
		return kluis.Identity{}, kluis.ErrUnauthenticated
	}
	var id kluis.TokenID
	var scope string
	var expires, orgCreated int64
	var used sql.NullInt64
	var lastClient []byte
	var stopped bool
	row := s.core.DB().ReadRow(ctx, `SELECT u.id, u.org_id, u.email, u.name, u.phone, u.maintenance_emails, u.role, u.status,
		u.created_at, u.last_login_at, u.restricted_at, t.id, t.scope, t.expires_at, t.last_used_at, t.last_client,
		o.slug, o.name, o.language, o.created_at, o.logins_disabled, `+sqlstore.EnrolmentOnly("t")+`
		FROM api_tokens t JOIN users u ON u.id = t.user_id AND u.org_id = t.org_id JOIN orgs o ON o.id = t.org_id
		WHERE t.token_hash = ?`, sqlstore.TokenHash(secret))
	var enrolmentOnly int
	u, err := sqlstore.ScanSealedUser(row, &id, &scope, &expires, &used, &lastClient, &o.Slug, &o.Name, &o.Language, &orgCreated, &stopped, &enrolmentOnly)
	if errors.Is(err, kluis.ErrNotFound) {
		return kluis.Identity{}, kluis.ErrUnauthenticated
	}
	if err != nil {
		return kluis.Identity{}, err
	}
	o.ID, o.CreatedAt = u.OrgID, sqlstore.FromMicros(orgCreated)
	now := s.core.Now()
	if !now.Before(sqlstore.FromMicros(expires)) {
		if _, err := s.core.DB().WriteExec(ctx, `DELETE FROM api_tokens WHERE id = ?`, id); err != nil {
			return kluis.Identity{}, err
		}
		return kluis.Identity{}, kluis.ErrUnauthenticated
	}
	if u.Status != kluis.StatusActive || stopped {
		return kluis.Identity{}, kluis.ErrUnauthenticated
	}
	// A token cannot enrol a factor: while the organisation requires one
	// and its owner has none, the token does nothing (R17).
	if enrolmentOnly == 1 {
		return kluis.Identity{Org: o}, kluis.ErrMFAEnrolmentRequired
	}
	actor := kluis.Actor{Realm: kluis.RealmOrg, OrgID: u.OrgID, UserID: u.ID, Role: u.Role, TokenID: id, ReadOnly: kluis.TokenScope(scope) != kluis.ScopeFull, From: from}
	var client []byte
	if addr := from.Client; addr.IsValid() {
		// An IPv6 client counts by its /64, as the throttle does: a
		// holder rotating addresses in their own block is one client.
		if client, err = s.clientHash(ctx, o.ID, id, throttle.ClientBlock(addr)); err != nil {
			return kluis.Identity{}, err
		}
	}
	newClient := client != nil && !bytes.Equal(client, lastClient)
	if newClient {
		if err := s.noteTokenClient(ctx, o.ID, actor, client); err != nil {
			return kluis.Identity{}, err
		}
	} else if !used.Valid || now.Sub(sqlstore.FromMicros(used.Int64)) >= tokenUseGranularity {
		if _, err := s.core.DB().WriteExec(ctx, `UPDATE api_tokens SET last_used_at = ? WHERE id = ?`, sqlstore.Micros(now), id); err != nil {
			return kluis.Identity{}, err
		}
	}
	return kluis.Identity{Actor: actor, Org: o, User: accounts.LazyUser(s.core, u)}, nil
}

// noteTokenClient records that a token is used from another address than
// last time: the address's keyed hash becomes the token's last one, and an
// address the token was never used from is kept (as a hash) and recorded
// as token.use, its address sealed in the event like every request's.
func (s *Service) noteTokenClient(ctx context.Context, org kluis.OrgID, actor kluis.Actor, client []byte) error {
	return s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		res, err := t.Exec(ctx, `UPDATE api_tokens SET last_used_at = ?, last_client = ? WHERE org_id = ? AND id = ?`, sqlstore.Micros(t.Now()), client, org, actor.TokenID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return kluis.ErrUnauthenticated // revoked meanwhile
		}
		res, err = t.Exec(ctx, `INSERT INTO api_token_clients (token_id, client_hash, first_seen_at) VALUES (?, ?, ?)
			ON CONFLICT (token_id, client_hash) DO NOTHING`, actor.TokenID, client, sqlstore.Micros(t.Now()))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil // seen before
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "token.use", sqlstore.UserTarget(actor.UserID), "success",
			map[string]any{"token": string(actor.TokenID), "new_address": true})
	})
}

// RefuseTokenScope records and refuses a request a token's scope does not
// allow (a write with a read-only token). Errors: forbidden.
func (s *Service) RefuseTokenScope(ctx context.Context, org kluis.OrgID, actor kluis.Actor) error {
	if err := s.core.RecordRefusal(ctx, sqlstore.OrgChain(org), actor, "token.scope", sqlstore.UserTarget(actor.UserID), "denied",
		map[string]any{"token": string(actor.TokenID)}); err != nil {
		return err
	}
	return kluis.Errorf(kluis.EForbidden, "this API token may only read")
}
