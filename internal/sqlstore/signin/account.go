package signin

import (
	"context"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/mail"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/accounts"
	"github.com/kluis/kluis/internal/sqlstore/factors"
)

// What a signed-in person does with their own sign-in, in either realm:
// prove again who they are, sign out, change their password, see and end
// their sessions.

// Reauth proves again who the signed-in person is — the password, and a
// second factor when one is enrolled — and replaces the session with a new
// one (a new id; the old token stops working) that counts as freshly
// authenticated for kluis.FreshAuthWindow. Wrong answers count towards the
// factor's lock. Errors: unauthenticated, logins_disabled, invalid_input
// (password, code: one answer for either).
func (s *Service) Reauth(ctx context.Context, scope kluis.Scope, actor kluis.Actor, pw, method, code string) (kluis.Session, error) {
	if !scope.InSession(actor) {
		return kluis.Session{}, kluis.ErrUnauthenticated
	}
	subject, chain := scope.Subject(actor), accounts.Chain(scope)
	a, err := accounts.Lookup(ctx, s.core, scope, subject)
	if err != nil {
		return kluis.Session{}, kluis.ErrUnauthenticated
	}
	ok, _, err := s.hasher.Verify(ctx, kluis.NormalizePassword(pw), a.Hash)
	if err != nil {
		return kluis.Session{}, err
	}
	var sess kluis.Session
	var problem map[string]string
	err = s.core.Write(ctx, chain, func(t *sqlstore.Tx) error {
		sess, problem = kluis.Session{}, nil
		methods, err := factors.Methods(ctx, t, scope, subject)
		if err != nil {
			return err
		}
		// One answer for a wrong password and a wrong code: it does not
		// tell which of the two was right.
		wrong := map[string]string{"password": "is not correct"}
		if len(methods) > 0 {
			wrong = map[string]string{"password": "or the code is not correct", "code": "or the password is not correct"}
		}
		cur, err := accounts.Find(ctx, t, s.core, scope, subject)
		if err != nil || cur.Hash != a.Hash || !cur.Active() { // changed since it was checked
			return kluis.ErrUnauthenticated
		}
		good := ok
		if len(methods) > 0 && good {
			if method == "" {
				method = string(kluis.FactorTOTP)
			}
			if good, err = s.factors.Check(ctx, t, scope, actor.From, subject, "reauth", factors.SessionBound(actor), method, code); err != nil {
				return err
			}
		}
		if !good {
			problem = wrong
			return nil
		}
		if stopped, err := accounts.LoginsStopped(ctx, t, scope); err != nil {
			return err
		} else if stopped {
			return kluis.ErrLoginsDisabled
		}
		policy, err := accounts.Policy(ctx, t, scope)
		if err != nil {
			return err
		}
		// The session being replaced must still be there: one ended
		// meanwhile (a password reset, a logins stop) is not renewed.
		if found, err := accounts.EndSession(ctx, t, scope, subject, actor.SessionID); err != nil {
			return err
		} else if !found {
			return kluis.ErrUnauthenticated
		}
		if sess, err = accounts.OpenSession(ctx, t, s.core, scope, subject, actor.From, policy.MaxLifetime()); err != nil {
			return err
		}
		sess.MFAEnrolmentRequired = len(methods) == 0 && policy.MFA == kluis.MFARequired
		next := actor
		next.SessionID = sess.ID
		return t.Append(ctx, chain, next, accounts.Action(scope, "auth.reauth"), accounts.Target(scope, subject), "success", map[string]any{"session": string(sess.ID)})
	})
	if err != nil {
		return kluis.Session{}, err
	}
	if problem != nil {
		if err := s.core.RecordRefusal(ctx, chain, actor, accounts.Action(scope, "auth.reauth"), accounts.Target(scope, subject), "failure", nil); err != nil {
			return kluis.Session{}, err
		}
		return kluis.Session{}, kluis.Invalid(problem)
	}
	return sess, nil
}

// PrepareReauth readies a re-authentication's second factor, bound to the
// session: for "webauthn" the options for navigator.credentials.get; for
// "sms" a code sent to the verified number. Errors: unauthenticated,
// not_found (nothing enrolled for the method), forbidden,
// too_many_requests, invalid_input (method).
func (s *Service) PrepareReauth(ctx context.Context, scope kluis.Scope, actor kluis.Actor, method string) ([]byte, error) {
	if !scope.InSession(actor) {
		return nil, kluis.ErrUnauthenticated
	}
	subject := scope.Subject(actor)
	switch method {
	case string(kluis.FactorPasskey):
		var options []byte
		err := s.core.Write(ctx, "", func(t *sqlstore.Tx) error {
			var has bool
			var err error
			if options, has, err = s.factors.BeginAssertion(ctx, t, scope, subject, "reauth", factors.SessionBound(actor)); err != nil {
				return err
			}
			if !has {
				return kluis.ErrNotFound
			}
			return nil
		})
		return options, err
	case string(kluis.FactorSMS):
		var wait time.Time
		err := s.core.Write(ctx, accounts.Chain(scope), func(t *sqlstore.Tx) error {
			sent, until, err := s.factors.SendCode(ctx, t, scope, actor, subject, "reauth", factors.SessionBound(actor), t.Now().Add(time.Hour))
			if err == nil && !sent {
				err = kluis.ErrNotFound
			}
			wait = until
			return err
		})
		if err != nil {
			return nil, err
		}
		if !wait.IsZero() {
			return nil, s.factors.SMSRefused(ctx, scope, actor, subject, "reauth", wait)
		}
		return nil, nil
	}
	return nil, kluis.Invalid(map[string]string{"method": "must be webauthn or sms"})
}

// Logout ends the actor's session. Errors: unauthenticated.
func (s *Service) Logout(ctx context.Context, scope kluis.Scope, actor kluis.Actor) error {
	chain := accounts.Chain(scope)
	return s.core.Write(ctx, chain, func(t *sqlstore.Tx) error {
		if !scope.Signed(actor) && !actor.IsOrgUser(scope.Org) {
			return kluis.ErrUnauthenticated
		}
		subject := scope.Subject(actor)
		if _, err := accounts.EndSession(ctx, t, scope, subject, actor.SessionID); err != nil {
			return err
		}
		return t.Append(ctx, chain, actor, accounts.Action(scope, "auth.logout"), accounts.Target(scope, subject), "success",
			map[string]any{"session": string(actor.SessionID)})
	})
}

// ChangePassword replaces the signed-in person's password after checking
// the current one and the new one against the policy (R16). It needs a
// fresh authentication. Every other session of the person ends, their API
// tokens and every credential in flight go, and they get a notice by mail.
// Errors: invalid_input, unauthenticated, reauth_required.
func (s *Service) ChangePassword(ctx context.Context, scope kluis.Scope, actor kluis.Actor, current, next string) error {
	if !scope.InSession(actor) {
		return kluis.ErrUnauthenticated
	}
	action := accounts.Action(scope, "user.password_change")
	if !kluis.FreshlyAuthenticated(actor, s.core.Now()) {
		return accounts.ReauthRequired(ctx, s.core, scope, actor, "user.password_change")
	}
	subject, chain := scope.Subject(actor), accounts.Chain(scope)
	current, next = kluis.NormalizePassword(current), kluis.NormalizePassword(next)
	policy, err := accounts.ReadPolicy(ctx, s.core, scope)
	if err != nil {
		return err
	}
	if err := policy.CheckPassword(next); err != nil {
		return kluis.Invalid(map[string]string{"new_password": err.Error()})
	}
	a, err := accounts.Lookup(ctx, s.core, scope, subject)
	if err != nil {
		return kluis.ErrUnauthenticated
	}
	ok, _, err := s.hasher.Verify(ctx, current, a.Hash)
	if err != nil || !ok {
		if rerr := s.core.RecordRefusal(ctx, chain, actor, action, accounts.Target(scope, subject), "failure", nil); rerr != nil {
			return rerr
		}
		return kluis.Invalid(map[string]string{"current_password": "is not correct"})
	}
	newHash, err := s.hasher.Hash(ctx, next)
	if err != nil {
		return err
	}
	return s.core.Write(ctx, chain, func(t *sqlstore.Tx) error {
		// The caller's session must still be there, and the password the
		// one just checked: a reset or a sign-out meanwhile wins.
		var alive int
		if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM sessions WHERE org_id = ? AND subject = ? AND id = ?`, scope.Org, subject, string(actor.SessionID)).Scan(&alive); err != nil {
			return err
		}
		if alive != 1 {
			return kluis.ErrUnauthenticated
		}
		if changed, err := accounts.SetPassword(ctx, t, scope, subject, newHash, a.Hash); err != nil {
			return err
		} else if !changed {
			return kluis.ErrUnauthenticated
		}
		if err := accounts.DropInFlight(ctx, t, scope, subject); err != nil {
			return err
		}
		ended, err := accounts.EndSessions(ctx, t, scope, subject, actor.SessionID)
		if err != nil {
			return err
		}
		// Personal API tokens go with the old password: a person changing
		// it because it leaked must not leave a token behind.
		if _, err := accounts.RevokeTokens(ctx, t, scope, subject); err != nil {
			return err
		}
		if err := accounts.Notify(ctx, t, s.core, a, mail.PasswordChanged, ""); err != nil {
			return err
		}
		return t.Append(ctx, chain, actor, action, accounts.Target(scope, subject), "success", map[string]any{"sessions_ended": ended})
	})
}

// Authenticate resolves a credential of the realm into its identity: a
// session token, or for an organisation a personal API token (R14). Errors:
// unauthenticated, mfa_enrolment_required (a token whose owner must enrol
// a second factor first).
func (s *Service) Authenticate(ctx context.Context, realm kluis.Realm, from kluis.Origin, credential string) (kluis.Identity, error) {
	if realm == kluis.RealmOrg && kluis.IsAPIToken(credential) {
		return s.tokens.Authenticate(ctx, from, credential)
	}
	return accounts.Authenticate(ctx, s.core, realm, from, credential)
}

// FindSessions returns the signed-in person's live sessions, newest first,
// with where they were opened (R4, R14). Reading one's own sessions is not
// recorded. Errors: unauthenticated.
func (s *Service) FindSessions(ctx context.Context, scope kluis.Scope, actor kluis.Actor) ([]kluis.SessionInfo, error) {
	if !scope.Signed(actor) && !actor.IsOrgUser(scope.Org) {
		return nil, kluis.ErrUnauthenticated
	}
	return accounts.ListSessions(ctx, s.core, scope, actor)
}

// EndSession ends one of the signed-in person's own sessions, recorded as
// auth.session_end; ending the current one signs out. A session of someone
// else is not found. Errors: unauthenticated, not_found.
func (s *Service) EndSession(ctx context.Context, scope kluis.Scope, actor kluis.Actor, id kluis.SessionID) error {
	if !scope.InSession(actor) {
		return kluis.ErrUnauthenticated
	}
	if !kluis.ValidID(string(id)) {
		return kluis.ErrNotFound
	}
	subject, chain := scope.Subject(actor), accounts.Chain(scope)
	return s.core.Write(ctx, chain, func(t *sqlstore.Tx) error {
		if found, err := accounts.EndSession(ctx, t, scope, subject, id); err != nil {
			return err
		} else if !found {
			return kluis.ErrNotFound
		}
		return t.Append(ctx, chain, actor, accounts.Action(scope, "auth.session_end"), accounts.Target(scope, subject), "success", map[string]any{"session": string(id)})
	})
}

// EndOtherSessions ends every session of the signed-in person but the
// current one, recorded as auth.session_end with the number ended. Errors:
// unauthenticated.
func (s *Service) EndOtherSessions(ctx context.Context, scope kluis.Scope, actor kluis.Actor) (int, error) {
	if !scope.InSession(actor) {
		return 0, kluis.ErrUnauthenticated
	}
	subject, chain := scope.Subject(actor), accounts.Chain(scope)
	var ended int64
	err := s.core.Write(ctx, chain, func(t *sqlstore.Tx) error {
		var err error
		if ended, err = accounts.EndSessions(ctx, t, scope, subject, actor.SessionID); err != nil {
			return err
		}
		return t.Append(ctx, chain, actor, accounts.Action(scope, "auth.session_end"), accounts.Target(scope, subject), "success", map[string]any{"sessions_ended": ended})
	})
	return int(ended), err
}
