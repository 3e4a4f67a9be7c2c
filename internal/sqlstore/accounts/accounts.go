// Package accounts is what the sign-in, second-factor, user and operator
// areas share about the people who sign in, whichever realm they belong to
// (R14, R22): an organisation's users and the operator's staff. It finds an
// account, opens and ends its sessions, drops the credentials that must not
// outlive a change, writes notices to the person, and names the account's
// audit chain, target and keys. Everything that differs between the realms
// is decided here, from the kluis.Scope, so that the areas above it are one
// implementation for both.
package accounts

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/mail"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Account is a person who signs in, of either realm, as the sign-in core
// sees them.
type Account struct {
	Scope kluis.Scope
	ID    string // the user's or the operator's id
	Email string // opened
	Name  string // opened
	Role  kluis.Role
	// Status is the user's; an operator is active or disabled.
	Status      kluis.UserStatus
	Hash        string // the password hash; "" for an invited user
	LastLoginAt time.Time
	CreatedAt   time.Time
	// User is the account as an organisation's user (RealmOrg only).
	User kluis.User
}

// Active reports whether the account may sign in.
func (a Account) Active() bool { return a.Status == kluis.StatusActive && a.Hash != "" }

// Actor is the signed-in actor of the account in session id.
func (a Account) Actor(id kluis.SessionID, from kluis.Origin) kluis.Actor {
	if a.Scope.Realm == kluis.RealmOperator {
		return kluis.Actor{Realm: kluis.RealmOperator, OperatorID: kluis.OperatorID(a.ID), SessionID: id, From: from}
	}
	return kluis.Actor{Realm: kluis.RealmOrg, OrgID: a.Scope.Org, UserID: kluis.UserID(a.ID), Role: a.Role, SessionID: id, From: from}
}

// Chain is the audit chain of the scope: the organisation's, or the
// platform chain for the operator realm.
func Chain(scope kluis.Scope) string {
	if scope.Realm == kluis.RealmOperator {
		return audit.PlatformChain
	}
	return sqlstore.OrgChain(scope.Org)
}

// Target names an account of the scope as an audit target: "user:ID" or
// "operator:ID". An id that cannot be one of ours is not written.
func Target(scope kluis.Scope, subject string) string {
	if !kluis.ValidID(subject) {
		return ""
	}
	if scope.Realm == kluis.RealmOperator {
		return "operator:" + subject
	}
	return "user:" + subject
}

// Action is the audit action of the scope for a sign-in or second-factor
// action named as in the organisation realm ("auth.login", "mfa.totp_enable"):
// the operator realm records its own under "operator." ("operator.login",
// "operator.totp_enable", "operator.mfa_locked").
func Action(scope kluis.Scope, action string) string {
	if scope.Realm != kluis.RealmOperator {
		return action
	}
	if action == "mfa.locked" {
		return "operator.mfa_locked"
	}
	_, verb, _ := strings.Cut(action, ".")
	return "operator." + verb
}

// Policy is the scope's password and session policy: the organisation's,
// or kluis.OperatorPolicy.
func Policy(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope) (kluis.Policy, error) {
	if scope.Realm == kluis.RealmOperator {
		return kluis.OperatorPolicy, nil
	}
	return t.Policy(ctx, scope.Org)
}

// ReadPolicy is Policy outside a transaction.
func ReadPolicy(ctx context.Context, core *sqlstore.Core, scope kluis.Scope) (kluis.Policy, error) {
	if scope.Realm == kluis.RealmOperator {
		return kluis.OperatorPolicy, nil
	}
	return core.Policy(ctx, scope.Org)
}

// SecretKey is the key that seals an account's own secrets (second-factor
// secrets, passkey names, session devices): the user's key, so that erasing
// the person makes them unreadable, or the platform key for operators.
func SecretKey(scope kluis.Scope, subject string) keys.KeyRef {
	if scope.Realm == kluis.RealmOperator {
		return keys.PlatformKey()
	}
	return sqlstore.UserKey(scope.Org, kluis.UserID(subject))
}

// Owner returns the values of the user_id and operator_id columns of a row
// of the account (one of them NULL).
func Owner(scope kluis.Scope, subject string) (user, operator sql.NullString) {
	if scope.Realm == kluis.RealmOperator {
		return sql.NullString{}, sql.NullString{String: subject, Valid: true}
	}
	return sql.NullString{String: subject, Valid: true}, sql.NullString{}
}

// FindByEmail returns the account with the normalised address in scope,
// outside a transaction; ident is the organisation's blind index of the
// address (RealmOrg), by which users are found. Errors: not_found.
func FindByEmail(ctx context.Context, core *sqlstore.Core, scope kluis.Scope, email string, ident []byte) (Account, error) {
	if scope.Realm == kluis.RealmOperator {
		return scanOperator(ctx, core.DB().ReadRow(ctx, `SELECT `+operatorColumns+` FROM operators WHERE email = ?`, email))
	}
	return scanUser(ctx, core, scope, core.DB().ReadRow(ctx, `SELECT `+sqlstore.UserColumns+`, password_hash FROM users WHERE org_id = ? AND email_index = ?`, scope.Org, ident))
}

// Find returns the account subject of scope in the transaction, locking
// its row on PostgreSQL. Errors: not_found.
func Find(ctx context.Context, t *sqlstore.Tx, core *sqlstore.Core, scope kluis.Scope, subject string) (Account, error) {
	if !kluis.ValidID(subject) {
		return Account{}, kluis.ErrNotFound
	}
	if scope.Realm == kluis.RealmOperator {
		return scanOperator(ctx, t.QueryRow(ctx, `SELECT `+operatorColumns+` FROM operators WHERE id = ?`+t.ForUpdate(), subject))
	}
	return scanUser(ctx, core, scope, t.QueryRow(ctx, `SELECT `+sqlstore.UserColumns+`, password_hash FROM users WHERE org_id = ? AND id = ?`+t.ForUpdate(), scope.Org, subject))
}

// Lookup returns the account subject of scope outside a transaction (a
// read before the one that acts). Errors: not_found.
func Lookup(ctx context.Context, core *sqlstore.Core, scope kluis.Scope, subject string) (Account, error) {
	if !kluis.ValidID(subject) {
		return Account{}, kluis.ErrNotFound
	}
	if scope.Realm == kluis.RealmOperator {
		return scanOperator(ctx, core.DB().ReadRow(ctx, `SELECT `+operatorColumns+` FROM operators WHERE id = ?`, subject))
	}
	return scanUser(ctx, core, scope, core.DB().ReadRow(ctx, `SELECT `+sqlstore.UserColumns+`, password_hash FROM users WHERE org_id = ? AND id = ?`, scope.Org, subject))
}

const operatorColumns = `id, email, name, password_hash, disabled, created_at, last_login_at`

func scanOperator(_ context.Context, row *sql.Row) (Account, error) {
	a := Account{Scope: kluis.OperatorScope, Role: "", Status: kluis.StatusActive}
	var disabled bool
	var created int64
	var last sql.NullInt64
	err := row.Scan(&a.ID, &a.Email, &a.Name, &a.Hash, &disabled, &created, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return a, kluis.ErrNotFound
	}
	if disabled {
		a.Status = kluis.StatusDisabled
	}
	a.CreatedAt, a.LastLoginAt = sqlstore.FromMicros(created), sqlstore.NullMicros(last)
	return a, err
}

func scanUser(ctx context.Context, core *sqlstore.Core, scope kluis.Scope, row *sql.Row) (Account, error) {
	var hash sql.NullString
	u, err := core.ScanUser(ctx, row, &hash)
	if err != nil {
		return Account{}, err
	}
	return Account{Scope: scope, ID: string(u.ID), Email: u.Email, Name: u.Name, Role: u.Role, Status: u.Status,
		Hash: hash.String, LastLoginAt: u.LastLoginAt, CreatedAt: u.CreatedAt, User: u}, nil
}

// SetPassword replaces the account's password hash, when it is still old
// (a change meanwhile wins). It reports whether it did.
func SetPassword(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, subject, hash, old string) (bool, error) {
	var res sql.Result
	var err error
	if scope.Realm == kluis.RealmOperator {
		res, err = t.Exec(ctx, `UPDATE operators SET password_hash = ? WHERE id = ? AND password_hash = ?`, hash, subject, old)
	} else {
		res, err = t.Exec(ctx, `UPDATE users SET password_hash = ?, updated_at = ? WHERE org_id = ? AND id = ? AND password_hash = ?`,
			hash, sqlstore.Micros(t.Now()), scope.Org, subject, old)
	}
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// SignedIn records the account's last sign-in time.
func SignedIn(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, subject string) error {
	var err error
	if scope.Realm == kluis.RealmOperator {
		_, err = t.Exec(ctx, `UPDATE operators SET last_login_at = ? WHERE id = ?`, sqlstore.Micros(t.Now()), subject)
	} else {
		_, err = t.Exec(ctx, `UPDATE users SET last_login_at = ? WHERE org_id = ? AND id = ?`, sqlstore.Micros(t.Now()), scope.Org, subject)
	}
	return err
}

// LoginsStopped reports, in the transaction, whether the scope's logins are
// stopped (R19): an organisation's, or every organisation's; the operator
// realm is never stopped, so the operator can resume.
func LoginsStopped(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope) (bool, error) {
	if scope.Realm == kluis.RealmOperator {
		return false, nil
	}
	return t.LoginsStopped(ctx, scope.Org)
}

// Notify queues a notice to the account's owner (R45: a notice and a link,
// nothing more), in the organisation's language; operators' notices are in
// English, sealed under the platform key.
//
// link is the path of the page the notice points to ("/login"), within the
// organisation's pages for a user; "" for a notice without a link.
func Notify(ctx context.Context, t *sqlstore.Tx, core *sqlstore.Core, a Account, kind mail.Kind, link string) error {
	if a.Scope.Realm == kluis.RealmOperator {
		if link != "" {
			link = core.PublicURL() + link
		}
		return t.QueueMail(ctx, "", "", "en", a.Email, kind, mail.Data{OrgName: "kluis", Link: link})
	}
	o, err := t.FindOrg(ctx, a.Scope.Org)
	if err != nil {
		return err
	}
	if link != "" {
		link = core.PublicURL() + "/o/" + o.Slug + link
	}
	return t.QueueMail(ctx, a.Scope.Org, kluis.UserID(a.ID), o.Language, a.Email, kind, mail.Data{OrgName: o.Name, Link: link})
}

// ReauthRequired records a refusal for want of a fresh authentication and
// returns reauth_required.
func ReauthRequired(ctx context.Context, core *sqlstore.Core, scope kluis.Scope, actor kluis.Actor, action string) error {
	if err := core.RecordRefusal(ctx, Chain(scope), actor, Action(scope, action), Target(scope, scope.Subject(actor)), "failure",
		map[string]any{"reason": "reauth_required"}); err != nil {
		return err
	}
	return kluis.ErrReauthRequired
}
