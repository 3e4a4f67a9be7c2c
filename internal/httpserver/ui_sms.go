package httpserver

import (
	"errors"
	"net/http"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// The pages of codes by SMS (R17): verifying a number on My account, and
// asking for a code on the second step of a sign-in and on the
// re-authentication page. Every step is a plain form post: no script.

type smsSetupPage struct {
	Number string // masked
}

// handleStartSMSForm sends a code to the number typed and shows the page
// that asks for it; without a fresh authentication it asks for one first.
func handleStartSMSForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		masked, err := store.StartSMS(r.Context(), st.org.ID, st.actor, form.Get("sms_phone"))
		if kluis.ErrorCode(err) == kluis.EReauthRequired {
			return redirect(w, r, "/o/"+p.Org.Slug+"/account/reauth", "reauth_first")
		}
		if err != nil {
			if !p.showError(err) {
				return err // forbidden (the policy is off): the error page says why
			}
			if msg, ok := p.Fields["phone"]; ok {
				p.Fields["sms_phone"] = msg
				delete(p.Fields, "phone")
			}
			profileForm(p, st.user)
			p.Form.Set("sms_phone", form.Get("sms_phone"))
			return showAccount(w, r, p, store, formStatus(err))
		}
		return showSMSSetup(w, r, p, masked, http.StatusOK)
	}
}

func showSMSSetup(w http.ResponseWriter, r *http.Request, p *pageData, masked string, status int) error {
	p.title("sms.title")
	p.Data = smsSetupPage{Number: masked}
	return renderPage(w, r, p, status, "sms_setup")
}

// handleConfirmSMSForm turns codes by SMS on with the code sent. With the
// person's first second factor it shows the new recovery codes, once.
func handleConfirmSMSForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		codes, err := store.ConfirmSMS(r.Context(), st.org.ID, st.actor, form.Get("code"))
		if err != nil {
			if errors.Is(err, kluis.ErrNotFound) {
				return redirect(w, r, "/o/"+p.Org.Slug+"/account", "sms_lapsed")
			}
			if !p.showError(err) {
				return err
			}
			masked, perr := store.PendingSMS(r.Context(), st.org.ID, st.actor)
			if perr != nil {
				return perr
			}
			return showSMSSetup(w, r, p, masked, formStatus(err))
		}
		if len(codes) > 0 {
			p.title("recovery.title")
			p.Data = recoveryPage{Codes: codes}
			return renderPage(w, r, p, http.StatusOK, "recovery_codes")
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/account", "sms_enabled")
	}
}

func handleDisableSMSForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		err := store.DisableSMS(r.Context(), st.org.ID, st.actor)
		if kluis.ErrorCode(err) == kluis.EReauthRequired {
			return redirect(w, r, "/o/"+p.Org.Slug+"/account/reauth", "reauth_first")
		}
		if err != nil && !errors.Is(err, kluis.ErrNotFound) {
			return err
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/account", "sms_disabled")
	}
}

// handleSendLoginSMSForm sends a code for the second step of a sign-in and
// shows the second step again, ready for the code. Without a challenge (or
// with a lapsed one) it sends the person back to the password.
func handleSendLoginSMSForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		if _, err := formValues(r); err != nil {
			return err
		}
		// Called even without a challenge: a blocked address is refused.
		challenge := sessionToken(r, challengeCookie)
		err := store.SendLoginSMS(r.Context(), p.Org.ID, challenge)
		if kluis.ErrorCode(err) == kluis.EUnauthenticated {
			http.SetCookie(w, clearCookie(challengeCookie))
			return redirect(w, r, "/o/"+p.Org.Slug+"/login", "challenge_expired")
		}
		status := http.StatusOK
		if err != nil {
			if !p.showError(err) {
				return err
			}
			status = formStatus(err)
			if _, cerr := store.FindChallengeMethods(r.Context(), p.Org.ID, challenge); cerr != nil {
				// Refused before the challenge was looked at (a blocked
				// address): the page without its forms.
				p.title("mfa.title")
				p.Data = mfaPage{}
				return renderPage(w, r, p, status, "mfa")
			}
		} else {
			p.Notice = p.L.T("notice.sms_sent")
		}
		p.Form.Set("method", "sms")
		return showMFA(w, r, p, store, status)
	}
}

// handleSendReauthSMSForm sends a code for a re-authentication and shows
// the page again, ready for password and code.
func handleSendReauthSMSForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		if _, err := formValues(r); err != nil {
			return err
		}
		st := state(r)
		err := store.SendReauthSMS(r.Context(), st.org.ID, st.actor)
		status := http.StatusOK
		if err != nil {
			if !p.showError(err) {
				return err
			}
			status = formStatus(err)
		} else {
			p.Notice = p.L.T("notice.sms_sent")
		}
		p.Form.Set("method", "sms")
		return showReauth(w, r, p, store, status)
	}
}
