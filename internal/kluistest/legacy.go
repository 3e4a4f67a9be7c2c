package kluistest

// TEMPORARY (issue 11). This file adapts today's *sqlstore.Store to the
// domain's service interfaces (kluis.Services), so that internal/httpserver,
// which now depends on those interfaces only, can run its tests — and
// cmd/kluis can serve — before internal/sqlstore implements them natively.
// It dispatches on the scope to the store's realm-specific methods
// (Login / OperatorLogin, StartTOTP / StartOperatorTOTP, …) and turns an
// Origin back into the context values the store reads (WithClient,
// WithDevice, WithDeviceCookie). Operators have no passkeys here: the
// store has none for them, so those calls answer forbidden. Delete this
// file, Env.Services and LegacyServices once the store implements
// kluis.Services.

import (
	"context"
	"errors"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Services returns the env's store as the domain's services (TEMPORARY,
// see LegacyServices).
func (e *Env) Services() kluis.Services { return LegacyServices(e.Store, e.Clock.Now) }

// Ready is the env's readiness check: its database answers.
func (e *Env) Ready(ctx context.Context) error { return e.DB.Ping(ctx) }

// LegacyServices returns s as kluis.Services; now is the store's clock
// (nil: the wall clock). TEMPORARY: see the top of this file.
func LegacyServices(s *sqlstore.Store, now func() time.Time) kluis.Services {
	if now == nil {
		now = time.Now
	}
	l := &legacy{s: s, now: now}
	return kluis.Services{
		Orgs: l, Policies: l, Logins: l, Users: l, Accounts: l, SignIn: l, Sessions: l, Recovery: l,
		Factors: l, Tokens: l, Throttle: l, Audit: l, Operators: l, Keys: l,
	}
}

type legacy struct {
	s   *sqlstore.Store
	now func() time.Time
}

var (
	_ kluis.OrgService      = (*legacy)(nil)
	_ kluis.PolicyService   = (*legacy)(nil)
	_ kluis.LoginsService   = (*legacy)(nil)
	_ kluis.UserService     = (*legacy)(nil)
	_ kluis.AccountService  = (*legacy)(nil)
	_ kluis.SignInService   = (*legacy)(nil)
	_ kluis.SessionService  = (*legacy)(nil)
	_ kluis.RecoveryService = (*legacy)(nil)
	_ kluis.FactorService   = (*legacy)(nil)
	_ kluis.TokenService    = (*legacy)(nil)
	_ kluis.ThrottleService = (*legacy)(nil)
	_ kluis.AuditService    = (*legacy)(nil)
	_ kluis.OperatorService = (*legacy)(nil)
	_ kluis.KeyService      = (*legacy)(nil)
)

// from puts an origin into the context values the store reads.
func from(ctx context.Context, o kluis.Origin) context.Context {
	ctx = sqlstore.WithDevice(sqlstore.WithClient(ctx, o.Client), o.Device)
	if o.DeviceCookie != "" {
		ctx = sqlstore.WithDeviceCookie(ctx, o.DeviceCookie)
	}
	return ctx
}

// as is from for a signed-in actor.
func as(ctx context.Context, a kluis.Actor) context.Context { return from(ctx, a.From) }

func session(s sqlstore.Session, u kluis.User) kluis.Session {
	return kluis.Session{ID: s.ID, Token: s.Token, ExpiresAt: s.ExpiresAt, MFAEnrolmentRequired: s.MFAEnrolmentRequired,
		DeviceCookie: s.DeviceCookie, DeviceExpires: s.DeviceExpires, User: u}
}

// challenge turns the store's challenge error into the domain's.
func challenge(err error) error {
	var c *sqlstore.MFAChallenge
	if errors.As(err, &c) {
		return &kluis.Challenge{Token: c.Token, Methods: c.Methods, ExpiresAt: c.ExpiresAt}
	}
	return err
}

// errNoOperatorPasskeys answers what the store cannot do for operators yet.
var errNoOperatorPasskeys = kluis.ErrForbidden

// operatorGate refuses an operator's call from a blocked client address,
// as the store's own operator sign-in steps do (R18).
func (l *legacy) operatorGate(ctx context.Context, o kluis.Origin) error {
	if !o.Client.IsValid() {
		return nil
	}
	ref, err := l.s.AddressRef(ctx, o.Client)
	if err != nil {
		return err
	}
	blocks, err := l.s.AddressBlocks(ctx, kluis.CLIActor)
	if err != nil {
		return err
	}
	for _, b := range blocks {
		if b.Ref == ref {
			until := b.Until
			if b.Permanent {
				until = l.now().Add(24 * time.Hour)
			}
			return kluis.TooManyRequests(until.Sub(l.now()))
		}
	}
	return nil
}

// Organisations and policies.

func (l *legacy) CreateOrg(ctx context.Context, actor kluis.Actor, in kluis.NewOrg) (kluis.Org, string, error) {
	return l.s.CreateOrg(as(ctx, actor), actor, sqlstore.NewOrg(in))
}

func (l *legacy) DeleteOrg(ctx context.Context, actor kluis.Actor, slug string) error {
	return l.s.DeleteOrg(as(ctx, actor), actor, slug)
}

func (l *legacy) FindOrgBySlug(ctx context.Context, slug string) (kluis.Org, error) {
	return l.s.FindOrgBySlug(ctx, slug)
}

func (l *legacy) FindOrgs(ctx context.Context, actor kluis.Actor) ([]kluis.Org, error) {
	return l.s.FindOrgs(as(ctx, actor), actor)
}

func (l *legacy) FindPolicy(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (kluis.Policy, error) {
	return l.s.FindPolicy(as(ctx, actor), org, actor)
}

func (l *legacy) UpdatePolicy(ctx context.Context, org kluis.OrgID, actor kluis.Actor, p kluis.Policy) (kluis.Policy, error) {
	return l.s.UpdatePolicy(as(ctx, actor), org, actor, p)
}

func (l *legacy) LoginsStopped(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (bool, error) {
	return l.s.LoginsStopped(as(ctx, actor), org, actor)
}

func (l *legacy) SetLogins(ctx context.Context, org kluis.OrgID, actor kluis.Actor, enabled bool) (int, error) {
	return l.s.SetLogins(as(ctx, actor), org, actor, enabled)
}

func (l *legacy) InstanceLoginsStopped(ctx context.Context, actor kluis.Actor) (bool, time.Time, error) {
	return l.s.InstanceLoginsStopped(as(ctx, actor), actor)
}

func (l *legacy) SetInstanceLogins(ctx context.Context, actor kluis.Actor, enabled bool) (int, error) {
	return l.s.SetInstanceLogins(as(ctx, actor), actor, enabled)
}

// Users and one's own account.

func (l *legacy) InviteUser(ctx context.Context, org kluis.OrgID, actor kluis.Actor, in kluis.UserInput) (kluis.User, error) {
	return l.s.InviteUser(as(ctx, actor), org, actor, in)
}

func (l *legacy) ResendInvitation(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID) error {
	return l.s.ResendInvitation(as(ctx, actor), org, actor, id)
}

func (l *legacy) RevokeInvitation(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID) error {
	return l.s.RevokeInvitation(as(ctx, actor), org, actor, id)
}

func (l *legacy) AcceptInvitation(ctx context.Context, org kluis.OrgID, o kluis.Origin, token, name, password string) (kluis.User, error) {
	return l.s.AcceptInvitation(from(ctx, o), org, token, name, password)
}

func (l *legacy) FindUsers(ctx context.Context, org kluis.OrgID, actor kluis.Actor) ([]kluis.User, error) {
	return l.s.FindUsers(as(ctx, actor), org, actor)
}

func (l *legacy) FindUserByID(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID) (kluis.User, error) {
	return l.s.FindUserByID(as(ctx, actor), org, actor, id)
}

func (l *legacy) UpdateUser(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID, in kluis.UserInput) (kluis.User, error) {
	return l.s.UpdateUser(as(ctx, actor), org, actor, id, in)
}

func (l *legacy) DeleteUser(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID) error {
	return l.s.DeleteUser(as(ctx, actor), org, actor, id)
}

func (l *legacy) UpdateMe(ctx context.Context, org kluis.OrgID, actor kluis.Actor, in kluis.UserInput) (kluis.User, error) {
	return l.s.UpdateMe(as(ctx, actor), org, actor, in)
}

func (l *legacy) RequestEmailChange(ctx context.Context, org kluis.OrgID, actor kluis.Actor, newEmail string) error {
	return l.s.RequestEmailChange(as(ctx, actor), org, actor, newEmail)
}

func (l *legacy) PendingEmailChange(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (string, time.Time, error) {
	return l.s.PendingEmailChange(as(ctx, actor), org, actor)
}

func (l *legacy) ConfirmEmailChange(ctx context.Context, org kluis.OrgID, actor kluis.Actor, token string) error {
	return l.s.ConfirmEmailChange(as(ctx, actor), org, actor, token)
}

func (l *legacy) FindSignIns(ctx context.Context, org kluis.OrgID, actor kluis.Actor, limit int) ([]kluis.SignIn, error) {
	list, err := l.s.FindSignIns(as(ctx, actor), org, actor, limit)
	out := make([]kluis.SignIn, 0, len(list))
	for _, x := range list {
		out = append(out, kluis.SignIn(x))
	}
	return out, err
}

// Sign-in, by realm.

func (l *legacy) Login(ctx context.Context, scope kluis.Scope, o kluis.Origin, email, password string) (kluis.Session, error) {
	ctx = from(ctx, o)
	switch scope.Realm {
	case kluis.RealmOrg:
		s, u, err := l.s.Login(ctx, scope.Org, email, password)
		return session(s, u), challenge(err)
	case kluis.RealmOperator:
		s, err := l.s.OperatorLogin(ctx, email, password)
		return session(s, kluis.User{}), challenge(err)
	}
	return kluis.Session{}, kluis.ErrUnauthenticated
}

func (l *legacy) LoginSecondStep(ctx context.Context, scope kluis.Scope, o kluis.Origin, ch, method, code string) (kluis.Session, error) {
	ctx = from(ctx, o)
	switch scope.Realm {
	case kluis.RealmOrg:
		s, u, err := l.s.LoginMFA(ctx, scope.Org, ch, method, code)
		return session(s, u), err
	case kluis.RealmOperator:
		s, err := l.s.OperatorLoginMFA(ctx, ch, method, code)
		return session(s, kluis.User{}), err
	}
	return kluis.Session{}, kluis.ErrUnauthenticated
}

func (l *legacy) ChallengeMethods(ctx context.Context, scope kluis.Scope, ch string) ([]string, error) {
	if scope.Realm == kluis.RealmOperator {
		return l.s.FindOperatorChallengeMethods(ctx, ch)
	}
	return l.s.FindChallengeMethods(ctx, scope.Org, ch)
}

func (l *legacy) PrepareSecondStep(ctx context.Context, scope kluis.Scope, o kluis.Origin, ch, method string) ([]byte, error) {
	ctx = from(ctx, o)
	if scope.Realm == kluis.RealmOperator {
		// No operator has a passkey here: every challenge fails as the
		// users' do without one, after the address block.
		if err := l.operatorGate(ctx, o); err != nil {
			return nil, err
		}
		if method == "webauthn" {
			return nil, kluis.ErrUnauthenticated
		}
		return nil, kluis.ErrForbidden
	}
	switch method {
	case "webauthn":
		return l.s.BeginPasskeyLogin(ctx, scope.Org, ch)
	case "sms":
		return nil, l.s.SendLoginSMS(ctx, scope.Org, ch)
	}
	return nil, kluis.Invalid(map[string]string{"method": "must be webauthn or sms"})
}

func (l *legacy) Reauth(ctx context.Context, scope kluis.Scope, actor kluis.Actor, password, method, code string) (kluis.Session, error) {
	ctx = as(ctx, actor)
	if scope.Realm == kluis.RealmOperator {
		s, err := l.s.OperatorReauth(ctx, actor, password, method, code)
		return session(s, kluis.User{}), err
	}
	s, err := l.s.Reauth(ctx, scope.Org, actor, password, method, code)
	return session(s, kluis.User{}), err
}

func (l *legacy) PrepareReauth(ctx context.Context, scope kluis.Scope, actor kluis.Actor, method string) ([]byte, error) {
	ctx = as(ctx, actor)
	if scope.Realm == kluis.RealmOperator {
		if method == "webauthn" {
			return nil, kluis.ErrNotFound // no passkey, as for a user without one
		}
		return nil, kluis.ErrForbidden
	}
	switch method {
	case "webauthn":
		return l.s.BeginPasskeyReauth(ctx, scope.Org, actor)
	case "sms":
		return nil, l.s.SendReauthSMS(ctx, scope.Org, actor)
	}
	return nil, kluis.Invalid(map[string]string{"method": "must be webauthn or sms"})
}

func (l *legacy) Logout(ctx context.Context, scope kluis.Scope, actor kluis.Actor) error {
	if scope.Realm == kluis.RealmOperator {
		return l.s.OperatorLogout(as(ctx, actor), actor)
	}
	return l.s.Logout(as(ctx, actor), scope.Org, actor)
}

func (l *legacy) ChangePassword(ctx context.Context, scope kluis.Scope, actor kluis.Actor, current, next string) error {
	if scope.Realm != kluis.RealmOrg {
		return kluis.ErrForbidden
	}
	return l.s.ChangePassword(as(ctx, actor), scope.Org, actor, current, next)
}

// Sessions.

func (l *legacy) Authenticate(ctx context.Context, realm kluis.Realm, o kluis.Origin, credential string) (kluis.Identity, error) {
	ctx = from(ctx, o)
	switch realm {
	case kluis.RealmOrg:
		var actor kluis.Actor
		var u kluis.User
		var org kluis.Org
		var err error
		if kluis.IsAPIToken(credential) {
			actor, u, org, err = l.s.AuthenticateAPIToken(ctx, credential)
		} else {
			actor, u, org, err = l.s.AuthenticateOrg(ctx, credential)
		}
		if err != nil {
			// The store names the organisation of a token that must first
			// enrol a factor, for the HTTP layer's not_found elsewhere.
			return kluis.Identity{Org: org}, err
		}
		// The store decrypted the person already; the new store does it
		// on the first call.
		return kluis.Identity{Actor: actor, Org: org, User: func(context.Context) (kluis.User, error) { return u, nil }}, nil
	case kluis.RealmOperator:
		actor, err := l.s.AuthenticateOperator(ctx, credential)
		if err != nil {
			return kluis.Identity{}, err
		}
		return kluis.Identity{Actor: actor}, nil
	}
	return kluis.Identity{}, kluis.ErrUnauthenticated
}

func (l *legacy) FindSessions(ctx context.Context, scope kluis.Scope, actor kluis.Actor) ([]kluis.SessionInfo, error) {
	if scope.Realm != kluis.RealmOrg {
		return nil, kluis.ErrForbidden
	}
	list, err := l.s.FindSessions(as(ctx, actor), scope.Org, actor)
	out := make([]kluis.SessionInfo, 0, len(list))
	for _, x := range list {
		out = append(out, kluis.SessionInfo(x))
	}
	return out, err
}

func (l *legacy) EndSession(ctx context.Context, scope kluis.Scope, actor kluis.Actor, id kluis.SessionID) error {
	if scope.Realm != kluis.RealmOrg {
		return kluis.ErrForbidden
	}
	return l.s.EndSession(as(ctx, actor), scope.Org, actor, id)
}

func (l *legacy) EndOtherSessions(ctx context.Context, scope kluis.Scope, actor kluis.Actor) (int, error) {
	if scope.Realm != kluis.RealmOrg {
		return 0, kluis.ErrForbidden
	}
	return l.s.EndOtherSessions(as(ctx, actor), scope.Org, actor)
}

// Recovery.

func (l *legacy) RequestPasswordReset(ctx context.Context, org kluis.OrgID, o kluis.Origin, email string) error {
	return l.s.RequestPasswordReset(from(ctx, o), org, email)
}

func (l *legacy) ResetPassword(ctx context.Context, org kluis.OrgID, o kluis.Origin, token, password string) error {
	return l.s.ResetPassword(from(ctx, o), org, token, password)
}

func (l *legacy) Unlock(ctx context.Context, org kluis.OrgID, o kluis.Origin, token string) error {
	return l.s.Unlock(from(ctx, o), org, token)
}

// Second factors, by realm and kind.

func (l *legacy) FindFactors(ctx context.Context, scope kluis.Scope, actor kluis.Actor) (kluis.Factors, error) {
	ctx = as(ctx, actor)
	if scope.Realm == kluis.RealmOperator {
		a, err := l.s.FindOperatorAccount(ctx, actor)
		return kluis.Factors{Methods: a.Methods, RecoveryLeft: a.RecoveryLeft}, err
	}
	var f kluis.Factors
	var err error
	if f.Methods, f.RecoveryLeft, err = l.s.FindFactors(ctx, scope.Org, actor); err != nil {
		return f, err
	}
	passkeys, err := l.s.FindPasskeys(ctx, scope.Org, actor)
	if err != nil {
		return f, err
	}
	for _, p := range passkeys {
		f.Passkeys = append(f.Passkeys, kluis.Passkey(p))
	}
	f.SMSNumber, err = l.s.FindSMSNumber(ctx, scope.Org, actor)
	return f, err
}

func (l *legacy) StartFactor(ctx context.Context, scope kluis.Scope, actor kluis.Actor, kind kluis.FactorKind, setup kluis.FactorSetup) (kluis.FactorEnrolment, error) {
	ctx = as(ctx, actor)
	var e kluis.FactorEnrolment
	var err error
	switch {
	case scope.Realm == kluis.RealmOperator && kind == kluis.FactorTOTP:
		e.Secret, e.URL, err = l.s.StartOperatorTOTP(ctx, actor)
	case scope.Realm == kluis.RealmOperator:
		err = errNoOperatorPasskeys
	case kind == kluis.FactorTOTP:
		e.Secret, e.URL, err = l.s.StartTOTP(ctx, scope.Org, actor)
	case kind == kluis.FactorSMS:
		e.Number, err = l.s.StartSMS(ctx, scope.Org, actor, setup.Phone)
	case kind == kluis.FactorPasskey:
		e.Options, err = l.s.BeginPasskeyRegistration(ctx, scope.Org, actor)
	default:
		err = kluis.Invalid(map[string]string{"kind": "is not a kind of second factor"})
	}
	return e, err
}

func (l *legacy) PendingFactor(ctx context.Context, scope kluis.Scope, actor kluis.Actor, kind kluis.FactorKind) (kluis.FactorEnrolment, error) {
	ctx = as(ctx, actor)
	var e kluis.FactorEnrolment
	var err error
	switch {
	case scope.Realm == kluis.RealmOperator && kind == kluis.FactorTOTP:
		e.URL, err = l.s.PendingOperatorTOTPURL(ctx, actor)
	case scope.Realm == kluis.RealmOperator:
		err = kluis.ErrNotFound
	case kind == kluis.FactorTOTP:
		e.URL, err = l.s.PendingTOTPURL(ctx, scope.Org, actor)
	case kind == kluis.FactorSMS:
		e.Number, err = l.s.PendingSMS(ctx, scope.Org, actor)
	default:
		err = kluis.ErrNotFound
	}
	return e, err
}

func (l *legacy) ConfirmFactor(ctx context.Context, scope kluis.Scope, actor kluis.Actor, kind kluis.FactorKind, proof kluis.FactorProof) (kluis.FactorEnrolled, error) {
	ctx = as(ctx, actor)
	var done kluis.FactorEnrolled
	var err error
	switch {
	case scope.Realm == kluis.RealmOperator && kind == kluis.FactorTOTP:
		done.RecoveryCodes, err = l.s.ConfirmOperatorTOTP(ctx, actor, proof.Code)
	case scope.Realm == kluis.RealmOperator:
		err = errNoOperatorPasskeys
	case kind == kluis.FactorTOTP:
		done.RecoveryCodes, err = l.s.ConfirmTOTP(ctx, scope.Org, actor, proof.Code)
	case kind == kluis.FactorSMS:
		done.RecoveryCodes, err = l.s.ConfirmSMS(ctx, scope.Org, actor, proof.Code)
	case kind == kluis.FactorPasskey:
		var p sqlstore.Passkey
		p, done.RecoveryCodes, err = l.s.FinishPasskeyRegistration(ctx, scope.Org, actor, proof.Name, proof.Response)
		done.Passkey = kluis.Passkey(p)
	default:
		err = kluis.Invalid(map[string]string{"kind": "is not a kind of second factor"})
	}
	return done, err
}

func (l *legacy) RemoveFactor(ctx context.Context, scope kluis.Scope, actor kluis.Actor, kind kluis.FactorKind, id string) error {
	ctx = as(ctx, actor)
	switch {
	case scope.Realm == kluis.RealmOperator:
		return errNoOperatorPasskeys
	case kind == kluis.FactorTOTP:
		return l.s.DisableTOTP(ctx, scope.Org, actor)
	case kind == kluis.FactorSMS:
		return l.s.DisableSMS(ctx, scope.Org, actor)
	case kind == kluis.FactorPasskey:
		return l.s.DeletePasskey(ctx, scope.Org, actor, id)
	}
	return kluis.ErrNotFound
}

func (l *legacy) FindFactorMethods(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (map[kluis.UserID][]string, error) {
	return l.s.FindFactorMethods(as(ctx, actor), org, actor)
}

func (l *legacy) ResetFactors(ctx context.Context, scope kluis.Scope, actor kluis.Actor, subject string) error {
	if scope.Realm != kluis.RealmOrg {
		return kluis.ErrForbidden
	}
	return l.s.ResetFactors(as(ctx, actor), scope.Org, actor, kluis.UserID(subject))
}

// Personal API tokens.

func (l *legacy) CreateAPIToken(ctx context.Context, org kluis.OrgID, actor kluis.Actor, in kluis.TokenInput) (kluis.APIToken, string, error) {
	t, secret, err := l.s.CreateAPIToken(as(ctx, actor), org, actor, in)
	return kluis.APIToken(t), secret, err
}

func (l *legacy) FindAPITokens(ctx context.Context, org kluis.OrgID, actor kluis.Actor) ([]kluis.APIToken, error) {
	list, err := l.s.FindAPITokens(as(ctx, actor), org, actor)
	out := make([]kluis.APIToken, 0, len(list))
	for _, t := range list {
		out = append(out, kluis.APIToken(t))
	}
	return out, err
}

func (l *legacy) RevokeAPIToken(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.TokenID) error {
	return l.s.RevokeAPIToken(as(ctx, actor), org, actor, id)
}

func (l *legacy) RefuseTokenScope(ctx context.Context, org kluis.OrgID, actor kluis.Actor) error {
	return l.s.RefuseTokenScope(as(ctx, actor), org, actor)
}

// Throttling.

func (l *legacy) UnlockUser(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID) error {
	return l.s.UnlockUser(as(ctx, actor), org, actor, id)
}

func (l *legacy) UserLocked(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID) (time.Time, error) {
	return l.s.UserLocked(as(ctx, actor), org, actor, id)
}

func (l *legacy) AddressBlocks(ctx context.Context, actor kluis.Actor) ([]kluis.AddressBlock, error) {
	list, err := l.s.AddressBlocks(as(ctx, actor), actor)
	out := make([]kluis.AddressBlock, 0, len(list))
	for _, b := range list {
		out = append(out, kluis.AddressBlock(b))
	}
	return out, err
}

func (l *legacy) LiftAddressBlock(ctx context.Context, actor kluis.Actor, ref string) error {
	return l.s.LiftAddressBlock(as(ctx, actor), actor, ref)
}

func (l *legacy) KeepAddressBlock(ctx context.Context, actor kluis.Actor, ref string) error {
	return l.s.KeepAddressBlock(as(ctx, actor), actor, ref)
}

// The audit log.

func auditEvent(e sqlstore.AuditEvent) kluis.AuditEvent {
	return kluis.AuditEvent{Seq: e.Seq, At: e.At, Actor: e.Actor, Action: e.Action, Target: e.Target, Outcome: e.Outcome,
		Details: e.Details, Client: e.Client, Hash: e.Hash}
}

func (l *legacy) FindAuditEvents(ctx context.Context, org kluis.OrgID, actor kluis.Actor, f kluis.AuditFilter) ([]kluis.AuditEvent, int64, error) {
	list, next, err := l.s.FindAuditEvents(as(ctx, actor), org, actor, sqlstore.AuditFilter(f))
	out := make([]kluis.AuditEvent, 0, len(list))
	for _, e := range list {
		out = append(out, auditEvent(e))
	}
	return out, next, err
}

func (l *legacy) ExportAudit(ctx context.Context, org kluis.OrgID, actor kluis.Actor, f kluis.AuditFilter, emit func(kluis.AuditEvent) error) error {
	return l.s.ExportAudit(as(ctx, actor), org, actor, sqlstore.AuditFilter(f), func(e sqlstore.AuditEvent) error { return emit(auditEvent(e)) })
}

func (l *legacy) VerifyOrgAudit(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (kluis.ChainCheck, error) {
	res, err := l.s.VerifyOrgAudit(as(ctx, actor), org, actor)
	return kluis.ChainCheck(res), err
}

func (l *legacy) FindAuditPeople(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (map[kluis.UserID]string, error) {
	return l.s.FindAuditPeople(as(ctx, actor), org, actor)
}

// Operators.

func (l *legacy) CreateOperator(ctx context.Context, actor kluis.Actor, email, name, password string) (kluis.Operator, error) {
	return l.s.CreateOperator(as(ctx, actor), actor, email, name, password)
}

func (l *legacy) FindOperatorAccount(ctx context.Context, actor kluis.Actor) (kluis.OperatorAccount, error) {
	a, err := l.s.FindOperatorAccount(as(ctx, actor), actor)
	return kluis.OperatorAccount{Operator: a.Operator, LastLoginAt: a.LastLoginAt,
		Factors: kluis.Factors{Methods: a.Methods, RecoveryLeft: a.RecoveryLeft}}, err
}

func (l *legacy) ResetOperatorPassword(ctx context.Context, actor kluis.Actor, email, password string) error {
	return l.s.ResetOperatorPassword(as(ctx, actor), actor, email, password)
}

func (l *legacy) SetOperatorDisabled(ctx context.Context, actor kluis.Actor, email string, disabled bool) (int, int, error) {
	return l.s.SetOperatorDisabled(as(ctx, actor), actor, email, disabled)
}

func (l *legacy) ResetOperatorFactors(ctx context.Context, actor kluis.Actor, email string) error {
	return l.s.ResetOperatorFactors(as(ctx, actor), actor, email)
}

// Keys.

func (l *legacy) RotateOrgKey(ctx context.Context, actor kluis.Actor, slug string) (int, error) {
	v, err := l.s.RotateOrgKey(as(ctx, actor), actor, slug)
	return v.Version, err
}

func (l *legacy) Reencrypt(ctx context.Context, progress func(kluis.Reencryption)) ([]kluis.Reencryption, error) {
	list, err := l.s.Reencrypt(ctx, func(r sqlstore.Reencryption) {
		if progress != nil {
			progress(kluis.Reencryption(r))
		}
	})
	return reencryptions(list), err
}

func (l *legacy) Reencryptions(ctx context.Context) ([]kluis.Reencryption, error) {
	list, err := l.s.Reencryptions(ctx)
	return reencryptions(list), err
}

func reencryptions(list []sqlstore.Reencryption) []kluis.Reencryption {
	out := make([]kluis.Reencryption, 0, len(list))
	for _, r := range list {
		out = append(out, kluis.Reencryption(r))
	}
	return out
}

func (l *legacy) RetiredUses(ctx context.Context) ([]kluis.RetiredUse, error) {
	list, err := l.s.RetiredUses(ctx)
	out := make([]kluis.RetiredUse, 0, len(list))
	for _, u := range list {
		out = append(out, kluis.RetiredUse(u))
	}
	return out, err
}
