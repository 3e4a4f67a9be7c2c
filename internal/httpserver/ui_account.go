package httpserver

import (
	"net/http"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// accountPage is what My account shows: everything held about the person
// (R4), their recent sign-ins, and the password rules.
type accountPage struct {
	Factors      []string
	RecoveryLeft int
	User         kluis.User
	SignIns      []sqlstore.SignIn
	Sessions     []sqlstore.SessionInfo
	Policy       kluis.Policy
	Tokens       []sqlstore.APIToken
	PendingEmail string // a new address waiting for its confirmation
	PendingUntil time.Time
	Passkeys     []sqlstore.Passkey
	SMSNumber    string // the verified number for codes by SMS, masked; "" for none
}

// showAccount renders My account with status; the forms show p.Form.
func showAccount(w http.ResponseWriter, r *http.Request, p *pageData, store *sqlstore.Store, status int) error {
	st := state(r)
	signIns, err := store.FindSignIns(r.Context(), st.org.ID, st.actor, 10)
	if err != nil {
		return err
	}
	sessions, err := store.FindSessions(r.Context(), st.org.ID, st.actor)
	if err != nil {
		return err
	}
	factors, left, err := store.FindFactors(r.Context(), st.org.ID, st.actor)
	if err != nil {
		return err
	}
	passkeys, err := store.FindPasskeys(r.Context(), st.org.ID, st.actor)
	if err != nil {
		return err
	}
	smsNumber, err := store.FindSMSNumber(r.Context(), st.org.ID, st.actor)
	if err != nil {
		return err
	}
	tokens, err := store.FindAPITokens(r.Context(), st.org.ID, st.actor)
	if err != nil {
		return err
	}
	pending, until, err := store.PendingEmailChange(r.Context(), st.org.ID, st.actor)
	if err != nil {
		return err
	}
	if p.Form.Get("expires_in") == "" {
		p.Form.Set("expires_in", "90")
	}
	p.title("account.title")
	p.Data = accountPage{User: st.user, SignIns: signIns, Sessions: sessions, Policy: p.policy, Factors: factors, RecoveryLeft: left, Passkeys: passkeys,
		Tokens: tokens, PendingEmail: pending, PendingUntil: until, SMSNumber: smsNumber}
	return renderPage(w, r, p, status, "account")
}

// profileForm is the profile as the form shows it.
func profileForm(p *pageData, u kluis.User) {
	p.Form.Set("name", u.Name)
	p.Form.Set("phone", u.Phone)
	if u.MaintenanceEmails {
		p.Form.Set("maintenance_emails", "on")
	}
}

func handleAccountPage(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		profileForm(p, state(r).user)
		return showAccount(w, r, p, store, http.StatusOK)
	}
}

// handleProfileForm saves name, phone and the maintenance-mail choice; on a
// validation error the page shows what was typed, with the problem next to
// its field.
func handleProfileForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		name, phone, maint := form.Get("name"), form.Get("phone"), form.Get("maintenance_emails") == "on"
		_, err = store.UpdateMe(r.Context(), st.org.ID, st.actor, kluis.UserInput{Name: &name, Phone: &phone, MaintenanceEmails: &maint})
		if err != nil {
			if !p.showError(err) {
				return err
			}
			p.Form = form
			return showAccount(w, r, p, store, http.StatusBadRequest)
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/account", "saved")
	}
}

// handlePasswordForm changes the password; the person's other sessions end.
func handlePasswordForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		err = store.ChangePassword(r.Context(), st.org.ID, st.actor, form.Get("current_password"), form.Get("new_password"))
		if kluis.ErrorCode(err) == kluis.EReauthRequired {
			return redirect(w, r, "/o/"+p.Org.Slug+"/account/reauth", "reauth_first")
		}
		if err != nil {
			if !p.showError(err) {
				return err
			}
			profileForm(p, st.user)
			return showAccount(w, r, p, store, http.StatusBadRequest)
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/account", "password_changed")
	}
}

// handleEndSessionForm ends one of the person's sessions; ending this one
// signs out.
func handleEndSessionForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		id := kluis.SessionID(r.PathValue("id"))
		if err := store.EndSession(r.Context(), st.org.ID, st.actor, id); err != nil {
			return err
		}
		if id == st.actor.SessionID {
			http.SetCookie(w, clearCookie(sessionCookie))
			return redirect(w, r, "/o/"+p.Org.Slug+"/login", "signed_out")
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/account", "session_ended")
	}
}

// handleEndOtherSessionsForm ends every session of the person but this one.
func handleEndOtherSessionsForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		if _, err := store.EndOtherSessions(r.Context(), st.org.ID, st.actor); err != nil {
			return err
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/account", "sessions_ended")
	}
}
