package httpserver

import (
	"errors"
	"net/http"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/i18n"
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
		if p.SignedIn {
			return redirect(w, r, p.Realm.Start, "")
		}
		return redirect(w, r, p.Realm.Base+"/login", "")
	}
}

// handleLoginPage shows the sign-in form of the page's realm; a signed-in
// person goes on to where they start.
func handleLoginPage() pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		if p.SignedIn {
			return redirect(w, r, p.Realm.Start, "")
		}
		p.title(p.Realm.loginTitle)
		return renderPage(w, r, p, http.StatusOK, "login")
	}
}

// handleLoginForm signs a person in (R14), or sends them on to the second
// step with the challenge in a cookie. Every failure shows the same
// message; the address typed stays in the form.
func handleLoginForm(signIn kluis.SignInService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		rm := p.Realm
		p.title(rm.loginTitle)
		p.Form.Set("email", form.Get("email"))
		sess, err := signIn.Login(r.Context(), rm.Scope, state(r).from, form.Get("email"), form.Get("password"))
		var challenge *kluis.Challenge
		if errors.As(err, &challenge) {
			rm.setChallenge(w, challenge)
			return redirect(w, r, rm.Base+"/login/mfa", "")
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
		rm.setSession(w, sess)
		return redirect(w, r, rm.Start, "")
	}
}

// handleLogoutForm signs the person out of the page's realm.
func handleLogoutForm(signIn kluis.SignInService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		if err := signIn.Logout(r.Context(), st.realm.Scope, st.actor); err != nil {
			return err
		}
		http.SetCookie(w, clearCookie(st.realm.sessionCookie))
		return redirect(w, r, st.realm.Base+"/login", "signed_out")
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

func handleInviteForm(users kluis.UserService) pageFunc {
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
		_, err = users.AcceptInvitation(r.Context(), p.Org.ID, state(r).from, form.Get("token"), form.Get("name"), form.Get("password"))
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
func handleForgotForm(recovery kluis.RecoveryService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		if err := recovery.RequestPasswordReset(r.Context(), p.Org.ID, state(r).from, form.Get("email")); err != nil {
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

func handleResetForm(recovery kluis.RecoveryService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		p.title("reset.title")
		p.Form.Set("token", form.Get("token"))
		err = recovery.ResetPassword(r.Context(), p.Org.ID, state(r).from, form.Get("token"), form.Get("new_password"))
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

// formStatus is the status of a form shown again with a service's error on it.
func formStatus(err error) int {
	if status := errorStatus(kluis.ErrorCode(err)); status != http.StatusInternalServerError {
		return status
	}
	return http.StatusBadRequest
}
