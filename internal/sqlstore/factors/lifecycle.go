package factors

import (
	"context"
	"errors"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/mfa"
	"github.com/kluis/kluis/internal/sms"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/accounts"
)

// The life cycle every kind of second factor goes through, for both
// realms: start (fresh authentication, the policy allows it, a pending
// set-up bound to the session), confirm with a first proof (recovery codes
// with the first factor, other sessions end), remove (fresh authentication,
// other sessions end, the recovery codes go with the last factor). Each
// step is one transaction with its audit event; a wrong proof is recorded
// on its own.

// actions names the audit actions of a kind's steps, as in the
// organisation realm (accounts.Action renames them for operators).
var actions = map[kluis.FactorKind]struct{ start, confirm, remove string }{
	kluis.FactorTOTP:    {"mfa.totp_start", "mfa.totp_enable", "mfa.totp_disable"},
	kluis.FactorSMS:     {"mfa.sms_start", "mfa.sms_enrolled", "mfa.sms_removed"},
	kluis.FactorPasskey: {"mfa.passkey_add", "mfa.passkey_add", "mfa.passkey_remove"},
}

// FindFactors returns what the signed-in person has enrolled. Reading one's
// own is not recorded. Errors: unauthenticated.
func (s *Service) FindFactors(ctx context.Context, scope kluis.Scope, actor kluis.Actor) (kluis.Factors, error) {
	if !scope.Signed(actor) {
		return kluis.Factors{}, kluis.ErrUnauthenticated
	}
	subject := scope.Subject(actor)
	var f kluis.Factors
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		var err error
		if f.Methods, err = Methods(ctx, t, scope, subject); err != nil {
			return err
		}
		if f.RecoveryLeft, err = recoveryLeft(ctx, t, scope, subject); err != nil {
			return err
		}
		if f.Passkeys, err = s.findPasskeys(ctx, t, scope, subject); err != nil {
			return err
		}
		if scope.Realm == kluis.RealmOrg {
			number, err := s.findFactor(ctx, t, scope, subject, kluis.FactorSMS)
			if err == nil && number.confirmed {
				f.SMSNumber = sms.Mask(number.secret)
			} else if err != nil && !errors.Is(err, kluis.ErrNotFound) {
				return err
			}
		}
		return nil
	})
	return f, err
}

// enrolmentAllowed refuses a new second factor while the organisation's
// policy is off (R17); enrolled ones still count. Operators may always.
func enrolmentAllowed(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, actor kluis.Actor, action string) error {
	if scope.Realm != kluis.RealmOrg {
		return nil
	}
	policy, err := t.Policy(ctx, scope.Org)
	if err != nil {
		return err
	}
	if policy.MFA == kluis.MFAOff {
		return sqlstore.Deny(accounts.Chain(scope), actor, action, accounts.Target(scope, scope.Subject(actor)),
			kluis.Errorf(kluis.EForbidden, "this organisation does not use two-step sign-in"))
	}
	return nil
}

// StartFactor begins setting up a factor of the kind, pending until
// ConfirmFactor in the same session: an authenticator app's secret (and its
// otpauth:// URL), a phone number sent a code, or a passkey registration's
// options. It needs a fresh authentication; an app or a number enrolled
// must be removed first. Errors: unauthenticated, reauth_required,
// invalid_input, forbidden, conflict, too_many_requests.
func (s *Service) StartFactor(ctx context.Context, scope kluis.Scope, actor kluis.Actor, kind kluis.FactorKind, setup kluis.FactorSetup) (kluis.FactorEnrolment, error) {
	if !scope.InSession(actor) {
		return kluis.FactorEnrolment{}, kluis.ErrUnauthenticated
	}
	act, ok := actions[kind]
	if !ok {
		return kluis.FactorEnrolment{}, kluis.ErrNotFound
	}
	if kind == kluis.FactorSMS && scope.Realm != kluis.RealmOrg {
		return kluis.FactorEnrolment{}, errNoSMS
	}
	if !kluis.FreshlyAuthenticated(actor, s.core.Now()) {
		return kluis.FactorEnrolment{}, accounts.ReauthRequired(ctx, s.core, scope, actor, act.start)
	}
	subject := scope.Subject(actor)
	var out kluis.FactorEnrolment
	var limited *smsLimited
	err := s.core.Write(ctx, accounts.Chain(scope), func(t *sqlstore.Tx) error {
		out, limited = kluis.FactorEnrolment{}, nil
		if err := enrolmentAllowed(ctx, t, scope, actor, accounts.Action(scope, act.start)); err != nil {
			return err
		}
		if kind == kluis.FactorPasskey {
			var err error
			out, err = s.beginRegistration(ctx, t, scope, actor)
			return err
		}
		f, err := s.findFactor(ctx, t, scope, subject, kind)
		switch {
		case err == nil && f.confirmed && kind == kluis.FactorTOTP:
			return kluis.Errorf(kluis.EConflict, "an authenticator app is set up already; remove it first")
		case err == nil && f.confirmed:
			return kluis.Errorf(kluis.EConflict, "a phone for codes by SMS is set up already; remove it first")
		case err != nil && !errors.Is(err, kluis.ErrNotFound):
			return err
		}
		if kind == kluis.FactorSMS {
			if out, limited, err = s.startSMS(ctx, t, scope, actor, setup.Phone); err != nil || limited != nil {
				return err
			}
			return t.Append(ctx, accounts.Chain(scope), actor, "mfa.sms_sent", accounts.Target(scope, subject), "success", map[string]any{"purpose": "enrol"})
		}
		a, err := accounts.Find(ctx, t, s.core, scope, subject)
		if err != nil {
			return err
		}
		label, err := issuer(ctx, t, scope)
		if err != nil {
			return err
		}
		if out.Secret, out.URL, err = mfa.NewTOTP(label, a.Email); err != nil {
			return err
		}
		if err := s.pendFactor(ctx, t, scope, actor, kind, out.Secret); err != nil {
			return err
		}
		return t.Append(ctx, accounts.Chain(scope), actor, accounts.Action(scope, act.start), accounts.Target(scope, subject), "success", nil)
	})
	if err != nil {
		return kluis.FactorEnrolment{}, err
	}
	if limited != nil {
		return kluis.FactorEnrolment{}, s.SMSRefused(ctx, scope, actor, subject, "enrol", limited.until)
	}
	return out, nil
}

// PendingFactor returns the set-up of the kind that this session started
// and that has not lapsed: an app's otpauth:// URL (for the QR code; not
// the secret alone), or the number being verified, masked. Errors:
// unauthenticated, not_found.
func (s *Service) PendingFactor(ctx context.Context, scope kluis.Scope, actor kluis.Actor, kind kluis.FactorKind) (kluis.FactorEnrolment, error) {
	if !scope.InSession(actor) {
		return kluis.FactorEnrolment{}, kluis.ErrUnauthenticated
	}
	if kind != kluis.FactorTOTP && kind != kluis.FactorSMS {
		return kluis.FactorEnrolment{}, kluis.ErrNotFound
	}
	subject := scope.Subject(actor)
	var out kluis.FactorEnrolment
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		f, err := s.findFactor(ctx, t, scope, subject, kind)
		if err != nil {
			return err
		}
		if !f.pendingFor(actor, t.Now()) {
			return kluis.ErrNotFound
		}
		if kind == kluis.FactorSMS {
			out.Number = sms.Mask(f.secret)
			return nil
		}
		a, err := accounts.Find(ctx, t, s.core, scope, subject)
		if err != nil {
			return err
		}
		label, err := issuer(ctx, t, scope)
		out.URL = mfa.URL(label, a.Email, f.secret)
		return err
	})
	return out, err
}

// ConfirmFactor finishes the set-up this session started with its first
// proof: an app's code (its time step is then used up), the code sent by
// SMS, or the browser's answer to the passkey registration with the name
// its owner gives it. With the person's first factor, and with every new
// app, it makes ten recovery codes (shown once); the person's other
// sessions end. A wrong proof is recorded. Errors: unauthenticated,
// not_found (nothing started here), invalid_input, forbidden, conflict.
func (s *Service) ConfirmFactor(ctx context.Context, scope kluis.Scope, actor kluis.Actor, kind kluis.FactorKind, proof kluis.FactorProof) (kluis.FactorEnrolled, error) {
	if !scope.InSession(actor) {
		return kluis.FactorEnrolled{}, kluis.ErrUnauthenticated
	}
	act, ok := actions[kind]
	if !ok {
		return kluis.FactorEnrolled{}, kluis.ErrNotFound
	}
	if kind == kluis.FactorPasskey {
		name, err := checkPasskeyName(proof.Name)
		if err != nil {
			return kluis.FactorEnrolled{}, err
		}
		proof.Name = name
	}
	subject, chain, action := scope.Subject(actor), accounts.Chain(scope), accounts.Action(scope, act.confirm)
	var out kluis.FactorEnrolled
	wrong := false
	err := s.core.Write(ctx, chain, func(t *sqlstore.Tx) error {
		out, wrong = kluis.FactorEnrolled{}, false
		var f factorRow
		if kind != kluis.FactorPasskey {
			var err error
			if f, err = s.findFactor(ctx, t, scope, subject, kind); err != nil {
				return err
			}
			if !f.pendingFor(actor, t.Now()) {
				return kluis.ErrNotFound
			}
		}
		if err := enrolmentAllowed(ctx, t, scope, actor, action); err != nil {
			return err
		}
		before, err := Methods(ctx, t, scope, subject)
		if err != nil {
			return err
		}
		details := map[string]any{}
		switch kind {
		case kluis.FactorTOTP:
			step, good := mfa.VerifyTOTP(f.secret, proof.Code, t.Now(), f.lastStep)
			if !good {
				wrong = true
				return nil
			}
			if _, err := t.Exec(ctx, `UPDATE factors SET confirmed_at = ?, last_step = ?, session_id = NULL WHERE id = ?`, sqlstore.Micros(t.Now()), step, f.id); err != nil {
				return err
			}
		case kluis.FactorSMS:
			good, err := s.confirmSMS(ctx, t, scope, actor, proof.Code)
			if err != nil {
				return err
			}
			if !good {
				wrong = true
				return nil
			}
			if _, err := t.Exec(ctx, `UPDATE factors SET confirmed_at = ?, session_id = NULL WHERE id = ?`, sqlstore.Micros(t.Now()), f.id); err != nil {
				return err
			}
		case kluis.FactorPasskey:
			p, good, err := s.finishRegistration(ctx, t, scope, actor, proof.Name, proof.Response)
			if err != nil {
				return err
			}
			if !good {
				wrong = true
				return nil // the ceremony is used up
			}
			out.Passkey, details["passkey"] = p, p.ID
		}
		if len(before) == 0 || kind == kluis.FactorTOTP {
			if out.RecoveryCodes, err = s.newRecoveryCodes(ctx, t, scope, subject); err != nil {
				return err
			}
		}
		ended, err := accounts.EndSessions(ctx, t, scope, subject, actor.SessionID)
		if err != nil {
			return err
		}
		details["sessions_ended"] = ended
		return t.Append(ctx, chain, actor, action, accounts.Target(scope, subject), "success", details)
	})
	if err != nil {
		return kluis.FactorEnrolled{}, err
	}
	if wrong {
		if err := s.core.RecordRefusal(ctx, chain, actor, action, accounts.Target(scope, subject), "failure", nil); err != nil {
			return kluis.FactorEnrolled{}, err
		}
		if kind == kluis.FactorPasskey {
			return kluis.FactorEnrolled{}, kluis.Invalid(map[string]string{"credential": "could not be verified; try again"})
		}
		return kluis.FactorEnrolled{}, kluis.Invalid(map[string]string{"code": "is not correct"})
	}
	return out, nil
}

// RemoveFactor removes the signed-in person's factor of the kind (a
// passkey by its id); with their last factor the recovery codes go too,
// and their other sessions end. It needs a fresh authentication. Operators
// keep one factor: their last is replaced only at the command line (kluis
// operator reset-factors). Errors: unauthenticated, reauth_required,
// not_found, conflict.
func (s *Service) RemoveFactor(ctx context.Context, scope kluis.Scope, actor kluis.Actor, kind kluis.FactorKind, id string) error {
	if !scope.InSession(actor) {
		return kluis.ErrUnauthenticated
	}
	act, ok := actions[kind]
	if !ok || kind == kluis.FactorPasskey && !kluis.ValidID(id) {
		return kluis.ErrNotFound
	}
	if !kluis.FreshlyAuthenticated(actor, s.core.Now()) {
		return accounts.ReauthRequired(ctx, s.core, scope, actor, act.remove)
	}
	subject, chain := scope.Subject(actor), accounts.Chain(scope)
	return s.core.Write(ctx, chain, func(t *sqlstore.Tx) error {
		var err error
		var n int64
		if kind == kluis.FactorPasskey {
			res, err := t.Exec(ctx, `DELETE FROM passkeys WHERE org_id = ? AND subject = ? AND id = ?`, scope.Org, subject, id)
			if err != nil {
				return err
			}
			n, _ = res.RowsAffected()
		} else {
			if err := s.keepRecoveryKey(ctx, t, scope, subject); err != nil {
				return err
			}
			res, err := t.Exec(ctx, `DELETE FROM factors WHERE org_id = ? AND subject = ? AND kind = ?`, scope.Org, subject, string(kind))
			if err != nil {
				return err
			}
			n, _ = res.RowsAffected()
		}
		if n == 0 {
			return kluis.ErrNotFound
		}
		if scope.Realm == kluis.RealmOperator {
			left, err := Methods(ctx, t, scope, subject)
			if err != nil {
				return err
			}
			if len(left) == 0 {
				return kluis.Errorf(kluis.EConflict, "operator accounts keep a second factor; add another before removing this one")
			}
		}
		if kind == kluis.FactorSMS {
			if err := forgetSMS(ctx, t, scope, subject); err != nil {
				return err
			}
		}
		if err := dropRecoveryWithoutFactor(ctx, t, scope, subject); err != nil {
			return err
		}
		ended, err := accounts.EndSessions(ctx, t, scope, subject, actor.SessionID)
		if err != nil {
			return err
		}
		details := map[string]any{"sessions_ended": ended}
		if kind == kluis.FactorPasskey {
			details["passkey"] = id
		}
		return t.Append(ctx, chain, actor, accounts.Action(scope, act.remove), accounts.Target(scope, subject), "success", details)
	})
}
