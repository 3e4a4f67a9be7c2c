package httpserver

import (
	"errors"
	"net/http"
	"slices"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// The pages of passkeys and security keys (WebAuthn, R17). A ceremony's
// options travel in the form's data-options attribute; kluis.js hands them
// to navigator.credentials and puts the browser's answer into the form's
// hidden field before it is posted. No inline script: the CSP stays 'self'.

type passkeySetupPage struct {
	Options string // JSON for navigator.credentials.create
}

// handleNewPasskeyForm starts registering a passkey and shows the page that
// names it and asks the browser for it; without a fresh authentication it
// asks for one first.
func handleNewPasskeyForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		return showPasskeySetup(w, r, p, store, http.StatusOK)
	}
}

func showPasskeySetup(w http.ResponseWriter, r *http.Request, p *pageData, store *sqlstore.Store, status int) error {
	st := state(r)
	options, err := store.BeginPasskeyRegistration(r.Context(), st.org.ID, st.actor)
	if kluis.ErrorCode(err) == kluis.EReauthRequired {
		return redirect(w, r, "/o/"+p.Org.Slug+"/account/reauth", "reauth_first")
	}
	if err != nil {
		if p.showError(err) {
			profileForm(p, st.user)
			return showAccount(w, r, p, store, http.StatusConflict)
		}
		return err
	}
	p.title("passkey.title")
	p.Data = passkeySetupPage{Options: string(options)}
	return renderPage(w, r, p, status, "passkey_setup")
}

// handleAddPasskeyForm keeps the passkey the browser made. With the
// person's first second factor it shows the new recovery codes, once.
func handleAddPasskeyForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		_, codes, err := store.FinishPasskeyRegistration(r.Context(), st.org.ID, st.actor, form.Get("passkey_name"), []byte(form.Get("credential")))
		if err != nil {
			if errors.Is(err, kluis.ErrNotFound) || !p.showError(err) {
				return err
			}
			p.Form.Set("passkey_name", form.Get("passkey_name"))
			return showPasskeySetup(w, r, p, store, http.StatusBadRequest)
		}
		if len(codes) > 0 {
			p.title("recovery.title")
			p.Data = recoveryPage{Codes: codes}
			return renderPage(w, r, p, http.StatusOK, "recovery_codes")
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/account", "passkey_added")
	}
}

// handleRemovePasskeyForm removes one of the person's passkeys.
func handleRemovePasskeyForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		err := store.DeletePasskey(r.Context(), st.org.ID, st.actor, r.PathValue("id"))
		if kluis.ErrorCode(err) == kluis.EReauthRequired {
			return redirect(w, r, "/o/"+p.Org.Slug+"/account/reauth", "reauth_first")
		}
		if err != nil {
			return err
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/account", "passkey_removed")
	}
}

// codeMethods are the methods of a code typed into a form, of those given.
func codeMethods(methods []string) []string {
	var out []string
	for _, m := range methods {
		if m == "totp" || m == "sms" || m == "recovery" {
			out = append(out, m)
		}
	}
	return out
}

func hasMethod(methods []string, m string) bool { return slices.Contains(methods, m) }

// SelectList is Select with its values as a list, for templates.
func (p *pageData) SelectList(name, keyPrefix string, values []string) inputData {
	return p.Select(name, keyPrefix, values...)
}

// HasTOTP reports whether the person's factors include an authenticator app.
func (a accountPage) HasTOTP() bool { return hasMethod(a.Factors, "totp") }

// HasSMS reports whether the person's factors include codes by SMS.
func (a accountPage) HasSMS() bool { return hasMethod(a.Factors, "sms") }

// CanEnrol reports whether the policy lets the person add a second factor.
func (a accountPage) CanEnrol() bool { return a.Policy.MFA != kluis.MFAOff }
