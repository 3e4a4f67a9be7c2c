package httpserver

import (
	"net/http"
	"strconv"
	"time"

	"github.com/kluis/kluis"
)

// The pages of personal API tokens and of the e-mail address change (R14,
// R45): forms on My account, the page that shows a new token's secret once,
// and the page a confirmation link opens.

// tokenDays are the lifetimes the token form offers, in days.
var tokenDays = []string{"7", "30", "90", "365"}

// handleEmailChangeForm asks for a new address: a link goes to it, a
// notice to the current one. Without a fresh sign-in it goes to the reauth
// page first.
func handleEmailChangeForm(accounts kluis.AccountService, account accountPage) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		err = accounts.RequestEmailChange(r.Context(), st.org.ID, st.actor, form.Get("new_email"))
		if kluis.ErrorCode(err) == kluis.EReauthRequired {
			return redirect(w, r, st.realm.Account+"/reauth", "reauth_first")
		}
		if err != nil {
			if !p.showError(err) {
				return err
			}
			renameField(p, "email", "new_email")
			p.Form.Set("new_email", form.Get("new_email"))
			return account(w, r, p, http.StatusBadRequest)
		}
		return redirect(w, r, st.realm.Account, "email_change_sent")
	}
}

type confirmEmailPage struct {
	SignedIn bool
}

// handleConfirmEmailPage is where a confirmation link leads. The token
// comes from the link's fragment through the script, as for a reset; the
// confirmation needs the person's session, so without one the page asks to
// sign in and open the link again.
func handleConfirmEmailPage() pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		p.title("confirm_email.title")
		p.Data = confirmEmailPage{SignedIn: p.SignedIn}
		return renderPage(w, r, p, http.StatusOK, "confirm_email")
	}
}

func handleConfirmEmailForm(accounts kluis.AccountService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		err = accounts.ConfirmEmailChange(r.Context(), st.org.ID, st.actor, form.Get("token"))
		if err != nil {
			p.title("confirm_email.title")
			p.Data = confirmEmailPage{SignedIn: true}
			switch kluis.ErrorCode(err) {
			case kluis.ENotFound:
				p.Error = p.L.T("confirm_email.invalid")
				return renderPage(w, r, p, http.StatusBadRequest, "confirm_email")
			case kluis.EConflict:
				p.showError(err)
				return renderPage(w, r, p, http.StatusConflict, "confirm_email")
			}
			return err
		}
		return redirect(w, r, st.realm.Account, "email_changed")
	}
}

type tokenCreatedPage struct {
	Token  kluis.APIToken
	Secret string
}

// handleCreateTokenForm makes a personal API token and shows its secret on
// the answer to the post, once: it is never stored, put in a cookie or in a
// URL. Without a fresh sign-in it goes to the reauth page first.
func handleCreateTokenForm(tokens kluis.TokenService, account accountPage) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		in := kluis.TokenInput{Name: form.Get("token_name"), Scope: kluis.TokenScope(form.Get("scope"))}
		if days, err := strconv.Atoi(form.Get("expires_in")); err == nil && days > 0 && days <= 366 {
			in.Lifetime = time.Duration(days) * 24 * time.Hour
		}
		tok, secret, err := tokens.CreateAPIToken(r.Context(), st.org.ID, st.actor, in)
		if kluis.ErrorCode(err) == kluis.EReauthRequired {
			return redirect(w, r, st.realm.Account+"/reauth", "reauth_first")
		}
		if err != nil {
			if !p.showError(err) {
				return err
			}
			// The form's fields have names of their own on My account.
			renameField(p, "name", "token_name")
			renameField(p, "expires_at", "expires_in")
			for _, f := range []string{"token_name", "scope", "expires_in"} {
				p.Form.Set(f, form.Get(f))
			}
			return account(w, r, p, http.StatusBadRequest)
		}
		p.title("token_created.title")
		p.Data = tokenCreatedPage{Token: tok, Secret: secret}
		return renderPage(w, r, p, http.StatusOK, "token_created")
	}
}

// handleRevokeTokenForm ends one of the person's tokens.
func handleRevokeTokenForm(tokens kluis.TokenService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		if err := tokens.RevokeAPIToken(r.Context(), st.org.ID, st.actor, kluis.TokenID(r.PathValue("id"))); err != nil {
			return err
		}
		return redirect(w, r, st.realm.Account, "token_revoked")
	}
}
