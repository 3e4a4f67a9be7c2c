package accounts

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Sessions of both realms live in one table (R14, R21): org_id is the
// organisation's id ('' for operators), subject the user's or operator's id.
// A session's device column holds where it was opened (address and a coarse
// device name), sealed under the person's key.

// lastSeenGranularity is how stale a session's last-seen time may get
// before a request writes it again. It keeps authenticated reads free of
// writes; the idle timeout is enforced to within this margin.
const lastSeenGranularity = time.Minute

const tabSessions = "sessions"

func sessionField(scope kluis.Scope, id kluis.SessionID) keys.FieldRef {
	return keys.FieldRef{Org: string(scope.Org), Table: tabSessions, Column: "device", Row: string(id)}
}

// sessionDevice is what a session's device column holds, sealed.
type sessionDevice struct {
	Client string `json:"client,omitempty"`
	Device string `json:"device,omitempty"`
}

// OpenSession stores a new session of the account and returns its token,
// shown once. The request's address and device name are kept with it,
// sealed.
func OpenSession(ctx context.Context, t *sqlstore.Tx, core *sqlstore.Core, scope kluis.Scope, subject string, from kluis.Origin, lifetime time.Duration) (kluis.Session, error) {
	token, hash := sqlstore.NewToken()
	sess := kluis.Session{ID: kluis.SessionID(kluis.NewID(t.Now())), Token: token, ExpiresAt: t.Now().Add(lifetime)}
	d := sessionDevice{Device: from.Device}
	if from.Client.IsValid() {
		d.Client = from.Client.Unmap().String()
	}
	b, err := json.Marshal(d)
	if err != nil {
		return sess, err
	}
	device, err := core.Seal(ctx, SecretKey(scope, subject), sessionField(scope, sess.ID), b)
	if err != nil {
		return sess, fmt.Errorf("seal session device: %w", err)
	}
	user, operator := Owner(scope, subject)
	_, err = t.Exec(ctx, `INSERT INTO sessions (id, org_id, subject, user_id, operator_id, token_hash, created_at, last_seen_at, expires_at, auth_at, device)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		sess.ID, scope.Org, subject, user, operator, hash, sqlstore.Micros(t.Now()), sqlstore.Micros(t.Now()), sqlstore.Micros(sess.ExpiresAt), sqlstore.Micros(t.Now()), device)
	return sess, err
}

// EndSessions ends every session of the account but except ("" ends all)
// and returns how many ended.
func EndSessions(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, subject string, except kluis.SessionID) (int64, error) {
	res, err := t.Exec(ctx, `DELETE FROM sessions WHERE org_id = ? AND subject = ? AND id <> ?`, scope.Org, subject, string(except))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// EndSession ends one session of the account and reports whether it was
// there.
func EndSession(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, subject string, id kluis.SessionID) (bool, error) {
	res, err := t.Exec(ctx, `DELETE FROM sessions WHERE org_id = ? AND subject = ? AND id = ?`, scope.Org, subject, string(id))
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// EndOrgSessions ends every session of the organisation but except and
// returns how many ended.
func EndOrgSessions(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, except kluis.SessionID) (int64, error) {
	res, err := t.Exec(ctx, `DELETE FROM sessions WHERE org_id = ? AND id <> ?`, org, string(except))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// sessionAlive applies the idle timeout and the absolute lifetime (R21).
// The policy's current lifetime applies to sessions opened under an older,
// longer one.
func sessionAlive(now, created, lastSeen, expires time.Time, p kluis.Policy) bool {
	return now.Before(expires) && now.Before(created.Add(p.MaxLifetime())) && now.Before(lastSeen.Add(p.IdleTimeout()))
}

// Authenticate resolves a session token of the realm into its identity with
// one query (R14). A session that ended (idle, past its lifetime, its person
// disabled) is deleted. A live session's last-seen time is written only
// when it is over a minute old. The person's personal fields are opened
// only if the caller asks for them (Identity.User). Errors: unauthenticated.
func Authenticate(ctx context.Context, core *sqlstore.Core, realm kluis.Realm, from kluis.Origin, token string) (kluis.Identity, error) {
	if !sqlstore.ValidTokenShape(token) {
		return kluis.Identity{}, kluis.ErrUnauthenticated
	}
	if realm == kluis.RealmOperator {
		return authenticateOperator(ctx, core, from, token)
	}
	var o kluis.Org
	var sid kluis.SessionID
	var created, lastSeen, expires, authAt, orgCreated int64
	var p kluis.Policy
	var enrolmentOnly int
	row := core.DB().ReadRow(ctx, `SELECT u.id, u.org_id, u.email, u.name, u.phone, u.maintenance_emails, u.role, u.status,
		u.created_at, u.last_login_at, u.restricted_at, s.id, s.created_at, s.last_seen_at, s.expires_at, s.auth_at, o.session_idle_minutes, o.session_max_hours,
		o.slug, o.name, o.language, o.created_at, `+sqlstore.EnrolmentOnly("s")+`
		FROM sessions s JOIN users u ON u.id = s.user_id AND u.org_id = s.org_id JOIN orgs o ON o.id = s.org_id
		WHERE s.token_hash = ?`, sqlstore.TokenHash(token))
	su, err := sqlstore.ScanSealedUser(row, &sid, &created, &lastSeen, &expires, &authAt, &p.SessionIdleMinutes, &p.SessionMaxHours,
		&o.Slug, &o.Name, &o.Language, &orgCreated, &enrolmentOnly)
	if errors.Is(err, kluis.ErrNotFound) {
		return kluis.Identity{}, kluis.ErrUnauthenticated
	}
	if err != nil {
		return kluis.Identity{}, err
	}
	o.ID, o.CreatedAt = su.OrgID, sqlstore.FromMicros(orgCreated)
	if err := keepAlive(ctx, core, sid, su.Status == kluis.StatusActive, created, lastSeen, expires, p); err != nil {
		return kluis.Identity{}, err
	}
	actor := kluis.Actor{Realm: kluis.RealmOrg, OrgID: su.OrgID, UserID: su.ID, Role: su.Role, SessionID: sid,
		AuthenticatedAt: sqlstore.FromMicros(authAt), MFAEnrolmentOnly: enrolmentOnly == 1, From: from}
	return kluis.Identity{Actor: actor, Org: o, User: LazyUser(core, su)}, nil
}

// LazyUser opens a sealed user on the first call and remembers the answer.
func LazyUser(core *sqlstore.Core, su sqlstore.SealedUser) func(context.Context) (kluis.User, error) {
	var once sync.Once
	var u kluis.User
	var err error
	return func(ctx context.Context) (kluis.User, error) {
		once.Do(func() { u, err = core.OpenUser(ctx, su) })
		return u, err
	}
}

func authenticateOperator(ctx context.Context, core *sqlstore.Core, from kluis.Origin, token string) (kluis.Identity, error) {
	var sid kluis.SessionID
	var id kluis.OperatorID
	var created, lastSeen, expires, authAt int64
	var disabled bool
	var enrolled int
	var role kluis.OperatorRole
	// enrolled: a confirmed second factor. Without one the session may
	// only enrol one (R17): operators must have a factor.
	err := core.DB().ReadRow(ctx, `SELECT s.id, s.subject, s.created_at, s.last_seen_at, s.expires_at, s.auth_at, o.disabled, o.role,
		(SELECT COUNT(*) FROM factors f WHERE f.org_id = '' AND f.subject = s.subject AND f.confirmed_at IS NOT NULL)
		+ (SELECT COUNT(*) FROM passkeys p WHERE p.org_id = '' AND p.subject = s.subject)
		FROM sessions s JOIN operators o ON o.id = s.operator_id WHERE s.token_hash = ?`, sqlstore.TokenHash(token)).
		Scan(&sid, &id, &created, &lastSeen, &expires, &authAt, &disabled, &role, &enrolled)
	if errors.Is(err, sql.ErrNoRows) {
		return kluis.Identity{}, kluis.ErrUnauthenticated
	}
	if err != nil {
		return kluis.Identity{}, err
	}
	if err := keepAlive(ctx, core, sid, !disabled, created, lastSeen, expires, kluis.OperatorPolicy); err != nil {
		return kluis.Identity{}, err
	}
	return kluis.Identity{Actor: kluis.Actor{Realm: kluis.RealmOperator, OperatorID: id, OperatorRole: role, SessionID: sid,
		AuthenticatedAt: sqlstore.FromMicros(authAt), MFAEnrolmentOnly: enrolled == 0, From: from}}, nil
}

// keepAlive deletes a session that ended and answers unauthenticated, or
// notes that a live one was seen (at most once a minute).
func keepAlive(ctx context.Context, core *sqlstore.Core, sid kluis.SessionID, active bool, created, lastSeen, expires int64, p kluis.Policy) error {
	now := core.Now()
	if !active || !sessionAlive(now, sqlstore.FromMicros(created), sqlstore.FromMicros(lastSeen), sqlstore.FromMicros(expires), p) {
		if _, err := core.DB().WriteExec(ctx, `DELETE FROM sessions WHERE id = ?`, sid); err != nil {
			return err
		}
		return kluis.ErrUnauthenticated
	}
	if now.Sub(sqlstore.FromMicros(lastSeen)) >= min(lastSeenGranularity, p.IdleTimeout()/2) {
		if _, err := core.DB().WriteExec(ctx, `UPDATE sessions SET last_seen_at = ? WHERE id = ?`, sqlstore.Micros(now), sid); err != nil {
			return err
		}
	}
	return nil
}

// ListSessions returns the live sessions of the signed-in person, newest
// first, with where they were opened.
func ListSessions(ctx context.Context, core *sqlstore.Core, scope kluis.Scope, actor kluis.Actor) ([]kluis.SessionInfo, error) {
	policy, err := ReadPolicy(ctx, core, scope)
	if err != nil {
		return nil, err
	}
	subject := scope.Subject(actor)
	rows, err := core.DB().Query(ctx, `SELECT id, created_at, last_seen_at, expires_at, device FROM sessions
		WHERE org_id = ? AND subject = ? ORDER BY created_at DESC, id DESC`, scope.Org, subject)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	type row struct {
		si     kluis.SessionInfo
		sealed []byte
	}
	var found []row
	now := core.Now()
	for rows.Next() {
		var r row
		var created, seen, expires int64
		if err := rows.Scan(&r.si.ID, &created, &seen, &expires, &r.sealed); err != nil {
			return nil, err
		}
		r.si.CreatedAt, r.si.LastSeenAt, r.si.ExpiresAt = sqlstore.FromMicros(created), sqlstore.FromMicros(seen), sqlstore.FromMicros(expires)
		if !sessionAlive(now, r.si.CreatedAt, r.si.LastSeenAt, r.si.ExpiresAt, policy) {
			continue
		}
		r.si.Current = r.si.ID == actor.SessionID
		found = append(found, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	out := make([]kluis.SessionInfo, 0, len(found))
	for _, r := range found {
		if len(r.sealed) > 0 {
			b, err := core.Open(ctx, sessionField(scope, r.si.ID), r.sealed)
			if err != nil {
				return nil, err
			}
			var d sessionDevice
			if json.Unmarshal(b, &d) == nil {
				r.si.Client, r.si.Device = d.Client, d.Device
			}
		}
		out = append(out, r.si)
	}
	return out, nil
}
