package httpserver

import (
	"net/http"

	"github.com/kluis/kluis"
)

// The pages of passkeys and security keys (WebAuthn, R17), for both realms.
// A ceremony's options travel in the form's data-options attribute;
// kluis.js hands them to navigator.credentials and puts the browser's
// answer into the form's hidden field before it is posted. No inline
// script: the CSP stays 'self'.

type passkeySetupPage struct {
	Options string // JSON for navigator.credentials.create
}

// handleNewPasskeyForm starts registering a passkey and shows the page that
// names it and asks the browser for it; without a fresh authentication it
// asks for one first.
func handleNewPasskeyForm(factors kluis.FactorService, account accountPage) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		return showPasskeySetup(w, r, p, factors, account, http.StatusOK)
	}
}

func showPasskeySetup(w http.ResponseWriter, r *http.Request, p *pageData, factors kluis.FactorService, account accountPage, status int) error {
	return startFactor(w, r, p, factors, account, kluis.FactorPasskey, func(e kluis.FactorEnrolment) error {
		p.title("passkey.title")
		p.Data = passkeySetupPage{Options: string(e.Options)}
		return renderPage(w, r, p, status, "passkey_setup")
	})
}

// handleAddPasskeyForm keeps the passkey the browser made. With the
// person's first second factor it shows the new recovery codes, once.
func handleAddPasskeyForm(factors kluis.FactorService, account accountPage) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		proof := kluis.FactorProof{Name: form.Get("passkey_name"), Response: []byte(form.Get("credential"))}
		done, err := factors.ConfirmFactor(r.Context(), st.realm.Scope, st.actor, kluis.FactorPasskey, proof)
		if err != nil {
			if kluis.ErrorCode(err) == kluis.ENotFound || !p.showError(err) {
				return err
			}
			p.Form.Set("passkey_name", form.Get("passkey_name"))
			return showPasskeySetup(w, r, p, factors, account, http.StatusBadRequest)
		}
		if len(done.RecoveryCodes) > 0 {
			return showRecoveryCodes(w, r, p, done.RecoveryCodes)
		}
		return redirect(w, r, st.realm.Account, "passkey_added")
	}
}

// handleRemovePasskeyForm removes one of the person's passkeys.
func handleRemovePasskeyForm(factors kluis.FactorService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		err := factors.RemoveFactor(r.Context(), st.realm.Scope, st.actor, kluis.FactorPasskey, r.PathValue("id"))
		if kluis.ErrorCode(err) == kluis.EReauthRequired {
			return redirect(w, r, st.realm.Account+"/reauth", "reauth_first")
		}
		if err != nil {
			return err
		}
		return redirect(w, r, st.realm.Account, "passkey_removed")
	}
}

// SelectList is Select with its values as a list, for templates.
func (p *pageData) SelectList(name, keyPrefix string, values []string) inputData {
	return p.Select(name, keyPrefix, values...)
}
