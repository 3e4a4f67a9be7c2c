package httpserver

import (
	"net/http"

	"github.com/kluis/kluis"
)

// The pages of codes by SMS (R17), for the people of an organisation:
// verifying a number on My account, and asking for a code on the second
// step of a sign-in and on the re-authentication page. Every step is a
// plain form post: no script.

type smsSetupPage struct {
	Number string // masked
}

// handleStartSMSForm sends a code to the number typed and shows the page
// that asks for it; without a fresh authentication it asks for one first.
func handleStartSMSForm(factors kluis.FactorService, account accountPage) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		e, err := factors.StartFactor(r.Context(), st.realm.Scope, st.actor, kluis.FactorSMS, kluis.FactorSetup{Phone: form.Get("sms_phone")})
		if kluis.ErrorCode(err) == kluis.EReauthRequired {
			return redirect(w, r, st.realm.Account+"/reauth", "reauth_first")
		}
		if err != nil {
			if !p.showError(err) {
				return err // forbidden (the policy is off): the error page says why
			}
			renameField(p, "phone", "sms_phone")
			p.Form.Set("sms_phone", form.Get("sms_phone"))
			return account(w, r, p, formStatus(err))
		}
		return showSMSSetup(w, r, p, e.Number, http.StatusOK)
	}
}

// renameField moves a field's problem to the name the form on the page
// gives the field.
func renameField(p *pageData, from, to string) {
	if msg, ok := p.Fields[from]; ok {
		delete(p.Fields, from)
		p.Fields[to] = msg
	}
}

func showSMSSetup(w http.ResponseWriter, r *http.Request, p *pageData, masked string, status int) error {
	p.title("sms.title")
	p.Data = smsSetupPage{Number: masked}
	return renderPage(w, r, p, status, "sms_setup")
}

// handleConfirmSMSForm turns codes by SMS on with the code sent. With the
// person's first second factor it shows the new recovery codes, once.
func handleConfirmSMSForm(factors kluis.FactorService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		done, err := factors.ConfirmFactor(r.Context(), st.realm.Scope, st.actor, kluis.FactorSMS, kluis.FactorProof{Code: form.Get("code")})
		if err != nil {
			if kluis.ErrorCode(err) == kluis.ENotFound {
				return redirect(w, r, st.realm.Account, "sms_lapsed")
			}
			if !p.showError(err) {
				return err
			}
			e, perr := factors.PendingFactor(r.Context(), st.realm.Scope, st.actor, kluis.FactorSMS)
			if perr != nil {
				return perr
			}
			return showSMSSetup(w, r, p, e.Number, formStatus(err))
		}
		if len(done.RecoveryCodes) > 0 {
			return showRecoveryCodes(w, r, p, done.RecoveryCodes)
		}
		return redirect(w, r, st.realm.Account, "sms_enabled")
	}
}

// handleSendLoginSMSForm sends a code for the second step of a sign-in and
// shows the second step again, ready for the code. Without a challenge (or
// with a lapsed one) it sends the person back to the password.
func handleSendLoginSMSForm(signIn kluis.SignInService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		if _, err := formValues(r); err != nil {
			return err
		}
		rm := p.Realm
		// Called even without a challenge: a blocked address is refused.
		challenge := sessionToken(r, rm.challengeCookie)
		_, err := signIn.PrepareSecondStep(r.Context(), rm.Scope, state(r).from, challenge, "sms")
		if kluis.ErrorCode(err) == kluis.EUnauthenticated {
			http.SetCookie(w, clearCookie(rm.challengeCookie))
			return redirect(w, r, rm.Base+"/login", "challenge_expired")
		}
		status := http.StatusOK
		if err != nil {
			if !p.showError(err) {
				return err
			}
			status = formStatus(err)
			if _, cerr := signIn.ChallengeMethods(r.Context(), rm.Scope, challenge); cerr != nil {
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
		return showMFA(w, r, p, signIn, status)
	}
}

// handleSendReauthSMSForm sends a code for a re-authentication and shows
// the page again, ready for password and code.
func handleSendReauthSMSForm(signIn kluis.SignInService, factors kluis.FactorService, address addressOf) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		if _, err := formValues(r); err != nil {
			return err
		}
		st := state(r)
		_, err := signIn.PrepareReauth(r.Context(), st.realm.Scope, st.actor, "sms")
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
		return showReauth(w, r, p, signIn, factors, address, status)
	}
}
