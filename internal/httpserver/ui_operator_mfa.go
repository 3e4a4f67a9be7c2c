package httpserver

import (
	"errors"
	"net/http"
	"strings"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/mfa"
	"github.com/kluis/kluis/internal/sqlstore"
)

// The operator's pages of two-step sign-in (issue 5 item 8, R17): the second
// step, the operator's account with the set-up of an authenticator app and
// its recovery codes, and proving again who one is. They mirror the users'
// pages (ui_mfa.go) under /operator.

// operatorChallengeCookie carries the password step's challenge to the
// second step: HttpOnly, Secure, SameSite=Strict, five minutes; apart from
// an organisation's challenge cookie.
const operatorChallengeCookie = "__Host-kluis_operator_challenge"

type operatorMFAPage struct {
	CodeMethods []string // "totp" and "recovery"
}

func handleOperatorMFAPage(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		if sessionToken(r, operatorChallengeCookie) == "" {
			return redirect(w, r, "/operator/login", "")
		}
		return showOperatorMFA(w, r, p, store, http.StatusOK)
	}
}

// showOperatorMFA renders the second step; a challenge that lapsed sends
// the operator back to the password.
func showOperatorMFA(w http.ResponseWriter, r *http.Request, p *pageData, store *sqlstore.Store, status int) error {
	methods, err := store.FindOperatorChallengeMethods(r.Context(), sessionToken(r, operatorChallengeCookie))
	if kluis.ErrorCode(err) == kluis.EUnauthenticated {
		http.SetCookie(w, clearCookie(operatorChallengeCookie))
		return redirect(w, r, "/operator/login", "challenge_expired")
	}
	if err != nil {
		return err
	}
	data := operatorMFAPage{CodeMethods: codeMethods(methods)}
	if m := p.Form.Get("method"); m == "" || !hasMethod(data.CodeMethods, m) {
		p.Form.Set("method", "totp")
	}
	p.title("mfa.title")
	p.Data = data
	return renderPage(w, r, p, status, "operator_mfa")
}

func handleOperatorMFAForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		method := "totp"
		if form.Get("method") == "recovery" {
			method = "recovery"
		}
		sess, err := store.OperatorLoginMFA(r.Context(), sessionToken(r, operatorChallengeCookie), method, form.Get("code"))
		if kluis.ErrorCode(err) == kluis.EUnauthenticated {
			p.Form.Set("method", method)
			p.Error = p.L.T("mfa.failed")
			return showOperatorMFA(w, r, p, store, http.StatusUnauthorized)
		}
		if err != nil {
			if p.showError(err) {
				p.title("mfa.title")
				p.Data = operatorMFAPage{}
				return renderPage(w, r, p, formStatus(err), "operator_mfa")
			}
			return err
		}
		http.SetCookie(w, clearCookie(operatorChallengeCookie))
		setSessionCookies(w, operatorCookie, sess)
		return redirect(w, r, "/operator", "")
	}
}

type operatorAccountPage struct {
	Account sqlstore.OperatorAccount
}

func handleOperatorAccountPage(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		a, err := store.FindOperatorAccount(r.Context(), state(r).actor)
		if err != nil {
			return err
		}
		p.title("operator_account.title")
		p.Data = operatorAccountPage{Account: a}
		return renderPage(w, r, p, http.StatusOK, "operator_account")
	}
}

type operatorReauthPage struct {
	Email       string
	CodeMethods []string // "totp" and "recovery"; none before enrolment
}

func showOperatorReauth(w http.ResponseWriter, r *http.Request, p *pageData, store *sqlstore.Store, status int) error {
	a, err := store.FindOperatorAccount(r.Context(), state(r).actor)
	if err != nil {
		return err
	}
	data := operatorReauthPage{Email: a.Email, CodeMethods: codeMethods(a.Methods)}
	if m := p.Form.Get("method"); m == "" || !hasMethod(data.CodeMethods, m) {
		p.Form.Set("method", "totp")
	}
	p.title("reauth.title")
	p.Data = data
	return renderPage(w, r, p, status, "operator_reauth")
}

func handleOperatorReauthPage(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		return showOperatorReauth(w, r, p, store, http.StatusOK)
	}
}

func handleOperatorReauthForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		method := "totp"
		if form.Get("method") == "recovery" {
			method = "recovery"
		}
		sess, err := store.OperatorReauth(r.Context(), state(r).actor, form.Get("password"), method, form.Get("code"))
		if err != nil {
			if !p.showError(err) {
				return err
			}
			p.Form.Set("method", method)
			return showOperatorReauth(w, r, p, store, http.StatusBadRequest)
		}
		setSessionCookies(w, operatorCookie, sess)
		return redirect(w, r, "/operator/account", "reauthenticated")
	}
}

// handleOperatorStartTOTPForm makes a new secret and shows the set-up
// page; without a fresh authentication it asks for one first.
func handleOperatorStartTOTPForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		secret, _, err := store.StartOperatorTOTP(r.Context(), state(r).actor)
		if kluis.ErrorCode(err) == kluis.EReauthRequired {
			return redirect(w, r, "/operator/account/reauth", "reauth_first")
		}
		if kluis.ErrorCode(err) == kluis.EConflict {
			return redirect(w, r, "/operator/account", "")
		}
		if err != nil {
			return err
		}
		return showOperatorTOTPSetup(w, r, p, secret, http.StatusOK)
	}
}

func showOperatorTOTPSetup(w http.ResponseWriter, r *http.Request, p *pageData, secret string, status int) error {
	var groups []string
	for i := 0; i < len(secret); i += 4 {
		groups = append(groups, secret[i:min(i+4, len(secret))])
	}
	p.title("totp.title")
	p.Data = totpSetupPage{Secret: strings.Join(groups, " ")}
	return renderPage(w, r, p, status, "operator_totp_setup")
}

func handleOperatorTOTPQRCode(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		url, err := store.PendingOperatorTOTPURL(r.Context(), state(r).actor)
		if err != nil {
			return err
		}
		png, err := mfa.QRCode(url)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", "image/png")
		w.Write(png)
		return nil
	}
}

// handleOperatorConfirmTOTPForm turns the app on with its first code and
// shows the recovery codes, once.
func handleOperatorConfirmTOTPForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		codes, err := store.ConfirmOperatorTOTP(r.Context(), st.actor, form.Get("code"))
		if errors.Is(err, kluis.ErrNotFound) {
			return redirect(w, r, "/operator/account", "")
		}
		if err != nil {
			if !p.showError(err) {
				return err
			}
			url, uerr := store.PendingOperatorTOTPURL(r.Context(), st.actor)
			if uerr != nil {
				return uerr
			}
			return showOperatorTOTPSetup(w, r, p, secretOf(url), http.StatusBadRequest)
		}
		// The session is no longer limited to enrolment: the page shows
		// the operator's full navigation.
		p.Enrolling = false
		setOperatorNav(r, p, false)
		p.title("recovery.title")
		p.Data = recoveryPage{Codes: codes}
		return renderPage(w, r, p, http.StatusOK, "operator_recovery_codes")
	}
}

// handleInstanceLoginsForm stops or resumes every login of the instance
// (R19); stopping asks for a fresh authentication first.
func handleInstanceLoginsForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		var enabled bool
		switch form.Get("enabled") {
		case "true":
			enabled = true
		case "false":
		default:
			return kluis.Errorf(kluis.EInvalid, "the form could not be read")
		}
		_, err = store.SetInstanceLogins(r.Context(), state(r).actor, enabled)
		if kluis.ErrorCode(err) == kluis.EReauthRequired {
			return redirect(w, r, "/operator/account/reauth", "reauth_first")
		}
		if err != nil {
			return err
		}
		notice := "instance_logins_stopped"
		if enabled {
			notice = "logins_resumed"
		}
		return redirect(w, r, "/operator", notice)
	}
}
