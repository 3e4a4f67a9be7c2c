package httpserver

import (
	"errors"
	"net/http"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/i18n"
	"github.com/kluis/kluis/internal/sqlstore"
)

func handleHomePage() pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		p.title("home.title")
		return renderPage(w, r, p, http.StatusOK, "home")
	}
}

// renderPage renders the page with the templates of the server it belongs to.
func renderPage(w http.ResponseWriter, r *http.Request, p *pageData, status int, name string) error {
	if p.retryAfter != nil {
		setRetryAfter(w, p.retryAfter)
	}
	return p.srv.render(w, status, name, p)
}

// handleOrgHome sends a person to their account, or to sign in.
func handleOrgHome() pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		if p.Me != nil {
			return redirect(w, r, "/o/"+p.Org.Slug+"/account", "")
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/login", "")
	}
}

// handleLoginPage shows the sign-in form; a signed-in person goes on to
// their account.
func handleLoginPage() pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		if p.Me != nil {
			return redirect(w, r, "/o/"+p.Org.Slug+"/account", "")
		}
		p.title("login.title")
		return renderPage(w, r, p, http.StatusOK, "login")
	}
}

// handleLoginForm signs a person in (R14). Every failure shows the same
// message; the address typed stays in the form.
func handleLoginForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		p.title("login.title")
		p.Form.Set("email", form.Get("email"))
		sess, _, err := store.Login(r.Context(), p.Org.ID, form.Get("email"), form.Get("password"))
		var challenge *sqlstore.MFAChallenge
		if errors.As(err, &challenge) {
			setChallengeCookie(w, challenge)
			return redirect(w, r, "/o/"+p.Org.Slug+"/login/mfa", "")
		}
		if kluis.ErrorCode(err) == kluis.EUnauthenticated {
			p.Error = p.L.T("login.failed")
			return renderPage(w, r, p, http.StatusUnauthorized, "login")
		}
		if err != nil {
			if p.showError(err) {
				return renderPage(w, r, p, formStatus(err), "login")
			}
			return err
		}
		setSessionCookies(w, sessionCookie, sess)
		return redirect(w, r, "/o/"+p.Org.Slug+"/account", "")
	}
}

func handleLogoutForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		if err := store.Logout(r.Context(), st.org.ID, st.actor); err != nil {
			return err
		}
		http.SetCookie(w, clearCookie(sessionCookie))
		return redirect(w, r, "/o/"+p.Org.Slug+"/login", "signed_out")
	}
}

// handleSignedOutPage tells a person that their session ended (R21).
func handleSignedOutPage() pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		p.title("signed_out.title")
		return renderPage(w, r, p, http.StatusOK, "signed_out")
	}
}

// handleInvitePage shows the form to accept an invitation. The token is in
// the link's fragment: the script puts it in the form, the server never
// sees it in a URL.
func handleInvitePage() pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		p.title("invite.title")
		return renderPage(w, r, p, http.StatusOK, "invite")
	}
}

func handleInviteForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		p.title("invite.title")
		p.Form.Set("name", form.Get("name"))
		// The token goes back into the form, so that a person who fixes a
		// field does not need the link again. It is in the body only.
		p.Form.Set("token", form.Get("token"))
		_, err = store.AcceptInvitation(r.Context(), p.Org.ID, form.Get("token"), form.Get("name"), form.Get("password"))
		switch {
		case kluis.ErrorCode(err) == kluis.EUnauthenticated || kluis.ErrorCode(err) == kluis.ENotFound:
			p.Error = p.L.T("invite.invalid")
			p.Form.Del("token")
			return renderPage(w, r, p, http.StatusBadRequest, "invite")
		case err != nil:
			if p.showError(err) {
				return renderPage(w, r, p, formStatus(err), "invite")
			}
			return err
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/login", "accepted")
	}
}

// handleForgotPage asks for the address to send a reset link to (R20).
func handleForgotPage() pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		p.title("forgot.title")
		return renderPage(w, r, p, http.StatusOK, "forgot")
	}
}

// handleForgotForm queues the link, if there is an account to send it to,
// and answers the same either way.
func handleForgotForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		if err := store.RequestPasswordReset(r.Context(), p.Org.ID, form.Get("email")); err != nil {
			return err
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/forgot", "reset_sent")
	}
}

// handleResetPage shows the form to choose a new password; as with an
// invitation, the token comes from the link's fragment through the script.
func handleResetPage() pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		p.title("reset.title")
		return renderPage(w, r, p, http.StatusOK, "reset")
	}
}

func handleResetForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		p.title("reset.title")
		p.Form.Set("token", form.Get("token"))
		err = store.ResetPassword(r.Context(), p.Org.ID, form.Get("token"), form.Get("new_password"))
		switch {
		case kluis.ErrorCode(err) == kluis.ENotFound:
			p.Error = p.L.T("reset.invalid")
			p.Form.Del("token")
			return renderPage(w, r, p, http.StatusBadRequest, "reset")
		case err != nil:
			if p.showError(err) {
				return renderPage(w, r, p, formStatus(err), "reset")
			}
			return err
		}
		http.SetCookie(w, clearCookie(sessionCookie))
		return redirect(w, r, "/o/"+p.Org.Slug+"/login", "password_reset")
	}
}

func handleOperatorLoginPage() pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		if state(r).actor.IsOperator() {
			return redirect(w, r, "/operator", "")
		}
		p.title("operator_login.title")
		return renderPage(w, r, p, http.StatusOK, "operator_login")
	}
}

func handleOperatorLoginForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		p.title("operator_login.title")
		p.Form.Set("email", form.Get("email"))
		sess, err := store.OperatorLogin(r.Context(), form.Get("email"), form.Get("password"))
		var challenge *sqlstore.MFAChallenge
		if errors.As(err, &challenge) {
			http.SetCookie(w, &http.Cookie{Name: operatorChallengeCookie, Value: challenge.Token, Path: "/", Expires: challenge.ExpiresAt,
				Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
			return redirect(w, r, "/operator/login/mfa", "")
		}
		if kluis.ErrorCode(err) == kluis.EUnauthenticated {
			p.Error = p.L.T("login.failed")
			return renderPage(w, r, p, http.StatusUnauthorized, "operator_login")
		}
		if err != nil {
			if p.showError(err) {
				return renderPage(w, r, p, formStatus(err), "operator_login")
			}
			return err
		}
		setSessionCookies(w, operatorCookie, sess)
		return redirect(w, r, "/operator", "")
	}
}

func handleOperatorLogoutForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		if err := store.OperatorLogout(r.Context(), state(r).actor); err != nil {
			return err
		}
		http.SetCookie(w, clearCookie(operatorCookie))
		return redirect(w, r, "/operator/login", "signed_out")
	}
}

// handleLangForm is the language switch: the choice is remembered for a
// year, and the person returns to the page they were on.
func handleLangForm() pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		if l, ok := i18n.Parse(form.Get("lang")); ok {
			http.SetCookie(w, &http.Cookie{Name: langCookie, Value: string(l), Path: "/", MaxAge: 365 * 24 * 3600, HttpOnly: true, Secure: state(r).secure, SameSite: http.SameSiteLaxMode})
		}
		return redirect(w, r, localPath(form.Get("back")), "")
	}
}

// formStatus is the status of a form shown again with a store error on it.
func formStatus(err error) int {
	if status, ok := pageStatus[kluis.ErrorCode(err)]; ok && status != http.StatusInternalServerError {
		return status
	}
	return http.StatusBadRequest
}
