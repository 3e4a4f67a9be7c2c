package httpserver

import (
	"net/http"
	"time"

	"github.com/kluis/kluis"
)

// accountPage renders a realm's account page with status: on a first
// visit, or again after a form on it failed, with what was typed and the
// problem (p.Form, p.Fields, p.Error). It is what differs between the
// realms' account pages; the routes hand each handler the realm's.
type accountPage func(w http.ResponseWriter, r *http.Request, p *pageData, status int) error

// myAccountPage is what My account shows: everything held about the
// person (R4), their recent sign-ins, and the password rules.
type myAccountPage struct {
	Factors      []string
	RecoveryLeft int
	User         kluis.User
	SignIns      []kluis.SignIn
	Sessions     []kluis.SessionInfo
	Policy       kluis.Policy
	Tokens       []kluis.APIToken
	PendingEmail string // a new address waiting for its confirmation
	PendingUntil time.Time
	Passkeys     []kluis.Passkey
	SMSNumber    string // the verified number for codes by SMS, masked; "" for none
}

// HasTOTP reports whether the person's factors include an authenticator app.
func (a myAccountPage) HasTOTP() bool { return hasMethod(a.Factors, "totp") }

// HasSMS reports whether the person's factors include codes by SMS.
func (a myAccountPage) HasSMS() bool { return hasMethod(a.Factors, "sms") }

// CanEnrol reports whether the policy lets the person add a second factor.
func (a myAccountPage) CanEnrol() bool { return a.Policy.MFA != kluis.MFAOff }

// showMyAccount renders My account, the account page of an organisation's
// people. The profile form shows the person's data, unless it is that form
// shown again with what they typed.
func showMyAccount(accounts kluis.AccountService, sessions kluis.SessionService, factors kluis.FactorService, tokens kluis.TokenService) accountPage {
	return func(w http.ResponseWriter, r *http.Request, p *pageData, status int) error {
		st := state(r)
		ctx := r.Context()
		u, err := st.person(ctx)
		if err != nil {
			return err
		}
		if !p.Form.Has("name") {
			profileForm(p, u)
		}
		signIns, err := accounts.FindSignIns(ctx, st.org.ID, st.actor, 10)
		if err != nil {
			return err
		}
		list, err := sessions.FindSessions(ctx, st.realm.Scope, st.actor)
		if err != nil {
			return err
		}
		f, err := factors.FindFactors(ctx, st.realm.Scope, st.actor)
		if err != nil {
			return err
		}
		toks, err := tokens.FindAPITokens(ctx, st.org.ID, st.actor)
		if err != nil {
			return err
		}
		pending, until, err := accounts.PendingEmailChange(ctx, st.org.ID, st.actor)
		if err != nil {
			return err
		}
		if p.Form.Get("expires_in") == "" {
			p.Form.Set("expires_in", "90")
		}
		p.title("account.title")
		p.Data = myAccountPage{User: u, SignIns: signIns, Sessions: list, Policy: p.policy, Factors: f.Methods, RecoveryLeft: f.RecoveryLeft,
			Passkeys: f.Passkeys, Tokens: toks, PendingEmail: pending, PendingUntil: until, SMSNumber: f.SMSNumber}
		return renderPage(w, r, p, status, "account")
	}
}

// operatorAccountPage is what an operator sees of their own account.
type operatorAccountPage struct {
	Account  kluis.OperatorAccount
	Passkeys []kluis.Passkey
}

// HasTOTP reports whether the operator has an authenticator app.
func (a operatorAccountPage) HasTOTP() bool { return hasMethod(a.Account.Factors.Methods, "totp") }

// CanEnrol reports whether the operator may add a second factor: always.
func (a operatorAccountPage) CanEnrol() bool { return true }

// showOperatorAccount renders the operator's account page.
func showOperatorAccount(operators kluis.OperatorService) accountPage {
	return func(w http.ResponseWriter, r *http.Request, p *pageData, status int) error {
		a, err := operators.FindOperatorAccount(r.Context(), state(r).actor)
		if err != nil {
			return err
		}
		p.title("operator_account.title")
		p.Data = operatorAccountPage{Account: a, Passkeys: a.Factors.Passkeys}
		return renderPage(w, r, p, status, "operator_account")
	}
}

// handleAccountPage shows the person's account page of the realm.
func handleAccountPage(account accountPage) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		return account(w, r, p, http.StatusOK)
	}
}

// profileForm is the profile as the form shows it.
func profileForm(p *pageData, u kluis.User) {
	p.Form.Set("name", u.Name)
	p.Form.Set("phone", u.Phone)
	if u.MaintenanceEmails {
		p.Form.Set("maintenance_emails", "on")
	}
}

// handleProfileForm saves name, phone and the maintenance-mail choice; on a
// validation error the page shows what was typed, with the problem next to
// its field.
func handleProfileForm(accounts kluis.AccountService, account accountPage) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		name, phone, maint := form.Get("name"), form.Get("phone"), form.Get("maintenance_emails") == "on"
		_, err = accounts.UpdateMe(r.Context(), st.org.ID, st.actor, kluis.UserInput{Name: &name, Phone: &phone, MaintenanceEmails: &maint})
		if err != nil {
			if !p.showError(err) {
				return err
			}
			p.Form = form
			status := http.StatusBadRequest
			if kluis.ErrorCode(err) == kluis.EProcessingRestricted {
				status = http.StatusConflict // R34: the profile is frozen
			}
			return account(w, r, p, status)
		}
		return redirect(w, r, st.realm.Account, "saved")
	}
}

// handlePasswordForm changes the password; the person's other sessions end.
func handlePasswordForm(signIn kluis.SignInService, account accountPage) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		err = signIn.ChangePassword(r.Context(), st.realm.Scope, st.actor, form.Get("current_password"), form.Get("new_password"))
		if kluis.ErrorCode(err) == kluis.EReauthRequired {
			return redirect(w, r, st.realm.Account+"/reauth", "reauth_first")
		}
		if err != nil {
			if !p.showError(err) {
				return err
			}
			return account(w, r, p, http.StatusBadRequest)
		}
		return redirect(w, r, st.realm.Account, "password_changed")
	}
}

// handleEndSessionForm ends one of the person's sessions; ending this one
// signs out.
func handleEndSessionForm(sessions kluis.SessionService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		id := kluis.SessionID(r.PathValue("id"))
		if err := sessions.EndSession(r.Context(), st.realm.Scope, st.actor, id); err != nil {
			return err
		}
		if id == st.actor.SessionID {
			http.SetCookie(w, clearCookie(st.realm.sessionCookie))
			return redirect(w, r, st.realm.Base+"/login", "signed_out")
		}
		return redirect(w, r, st.realm.Account, "session_ended")
	}
}

// handleEndOtherSessionsForm ends every session of the person but this one.
func handleEndOtherSessionsForm(sessions kluis.SessionService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		if _, err := sessions.EndOtherSessions(r.Context(), st.realm.Scope, st.actor); err != nil {
			return err
		}
		return redirect(w, r, st.realm.Account, "sessions_ended")
	}
}
