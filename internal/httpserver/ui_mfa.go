package httpserver

import (
	"errors"
	"net/http"
	"strings"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/mfa"
	"github.com/kluis/kluis/internal/sqlstore"
)

// The pages of two-step sign-in (R17): the second step of a login, setting
// up and removing an authenticator app, recovery codes, and proving again
// who one is before a sensitive change.

// challengeCookie carries the password step's challenge to the second step:
// HttpOnly, Secure, SameSite=Strict, five minutes; never in a URL.
const challengeCookie = "__Host-kluis_challenge"

func setChallengeCookie(w http.ResponseWriter, c *sqlstore.MFAChallenge) {
	http.SetCookie(w, &http.Cookie{Name: challengeCookie, Value: c.Token, Path: "/", Expires: c.ExpiresAt,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

type mfaPage struct {
	CodeMethods []string // of the select: "totp", "sms" and "recovery"
	Passkey     string   // options for navigator.credentials.get; "" without a passkey
	SMS         bool     // a code can be sent by SMS
}

// handleMFAPage asks for the second factor: a passkey, or a code.
func handleMFAPage(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		if sessionToken(r, challengeCookie) == "" {
			return redirect(w, r, "/o/"+p.Org.Slug+"/login", "")
		}
		return showMFA(w, r, p, store, http.StatusOK)
	}
}

// showMFA renders the second step. A challenge that lapsed meanwhile sends
// the person back to the password.
func showMFA(w http.ResponseWriter, r *http.Request, p *pageData, store *sqlstore.Store, status int) error {
	challenge := sessionToken(r, challengeCookie)
	methods, err := store.FindChallengeMethods(r.Context(), p.Org.ID, challenge)
	if kluis.ErrorCode(err) == kluis.EUnauthenticated {
		http.SetCookie(w, clearCookie(challengeCookie))
		return redirect(w, r, "/o/"+p.Org.Slug+"/login", "challenge_expired")
	}
	if err != nil {
		return err
	}
	data := mfaPage{CodeMethods: codeMethods(methods), SMS: hasMethod(methods, "sms")}
	if hasMethod(methods, "webauthn") {
		options, err := store.BeginPasskeyLogin(r.Context(), p.Org.ID, challenge)
		if err == nil {
			data.Passkey = string(options)
		} else if kluis.ErrorCode(err) == kluis.EInternal {
			return err
		}
	}
	if m := p.Form.Get("method"); m == "" || !hasMethod(data.CodeMethods, m) {
		if len(data.CodeMethods) > 0 {
			p.Form.Set("method", data.CodeMethods[0])
		}
	}
	p.title("mfa.title")
	p.Data = data
	return renderPage(w, r, p, status, "mfa")
}

// handleMFAForm completes the sign-in with a code.
func handleMFAForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		method, code := form.Get("method"), form.Get("code")
		switch method {
		case "recovery", "sms":
		case "webauthn":
			code = form.Get("assertion")
		default:
			method = "totp"
		}
		sess, _, err := store.LoginMFA(r.Context(), p.Org.ID, sessionToken(r, challengeCookie), method, code)
		if kluis.ErrorCode(err) == kluis.EUnauthenticated {
			if method != "webauthn" {
				p.Form.Set("method", method)
			}
			p.Error = p.L.T("mfa.failed")
			return showMFA(w, r, p, store, http.StatusUnauthorized)
		}
		if err != nil {
			if p.showError(err) {
				p.title("mfa.title")
				p.Data = mfaPage{}
				return renderPage(w, r, p, formStatus(err), "mfa")
			}
			return err
		}
		http.SetCookie(w, clearCookie(challengeCookie))
		setSessionCookies(w, sessionCookie, sess)
		return redirect(w, r, "/o/"+p.Org.Slug+"/account", "")
	}
}

// handleReauthPage asks for the password (and a code) again before a
// sensitive change.
func handleReauthPage(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		return showReauth(w, r, p, store, http.StatusOK)
	}
}

type reauthPage struct {
	NeedsCode   bool
	CodeMethods []string // of the select: "totp", "sms" and "recovery"
	Passkey     string   // options for navigator.credentials.get; "" without a passkey
	SMS         bool     // a code can be sent by SMS
}

func showReauth(w http.ResponseWriter, r *http.Request, p *pageData, store *sqlstore.Store, status int) error {
	st := state(r)
	methods, _, err := store.FindFactors(r.Context(), st.org.ID, st.actor)
	if err != nil {
		return err
	}
	data := reauthPage{NeedsCode: len(methods) > 0, CodeMethods: codeMethods(methods), SMS: hasMethod(methods, "sms")}
	if hasMethod(methods, "webauthn") {
		options, err := store.BeginPasskeyReauth(r.Context(), st.org.ID, st.actor)
		if err == nil {
			data.Passkey = string(options)
		} else if kluis.ErrorCode(err) == kluis.EInternal {
			return err
		}
	}
	p.title("reauth.title")
	p.Data = data
	if m := p.Form.Get("method"); m == "" || !hasMethod(data.CodeMethods, m) {
		if len(data.CodeMethods) > 0 {
			p.Form.Set("method", data.CodeMethods[0])
		}
	}
	return renderPage(w, r, p, status, "reauth")
}

func handleReauthForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		method, code := form.Get("method"), form.Get("code")
		if method == "webauthn" {
			code = form.Get("assertion")
		}
		sess, err := store.Reauth(r.Context(), st.org.ID, st.actor, form.Get("password"), method, code)
		if err != nil {
			if !p.showError(err) {
				return err
			}
			if method != "webauthn" {
				p.Form.Set("method", method)
			}
			return showReauth(w, r, p, store, http.StatusBadRequest)
		}
		setSessionCookies(w, sessionCookie, sess)
		return redirect(w, r, "/o/"+p.Org.Slug+"/account", "reauthenticated")
	}
}

type totpSetupPage struct {
	Secret string // grouped in fours for typing
}

// handleStartTOTPForm makes a new secret and shows the set-up page; without
// a fresh authentication it asks for one first.
func handleStartTOTPForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		secret, _, err := store.StartTOTP(r.Context(), st.org.ID, st.actor)
		if kluis.ErrorCode(err) == kluis.EReauthRequired {
			return redirect(w, r, "/o/"+p.Org.Slug+"/account/reauth", "reauth_first")
		}
		if err != nil {
			if p.showError(err) {
				return showAccount(w, r, p, store, http.StatusConflict)
			}
			return err
		}
		return showTOTPSetup(w, r, p, secret, http.StatusOK)
	}
}

func showTOTPSetup(w http.ResponseWriter, r *http.Request, p *pageData, secret string, status int) error {
	var groups []string
	for i := 0; i < len(secret); i += 4 {
		groups = append(groups, secret[i:min(i+4, len(secret))])
	}
	p.title("totp.title")
	p.Data = totpSetupPage{Secret: strings.Join(groups, " ")}
	return renderPage(w, r, p, status, "totp_setup")
}

// handleTOTPQRCode is the QR code of the pending secret, for the set-up page.
func handleTOTPQRCode(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		url, err := store.PendingTOTPURL(r.Context(), st.org.ID, st.actor)
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

type recoveryPage struct {
	Codes []string
}

// handleConfirmTOTPForm turns the app on with its first code and shows the
// recovery codes, once.
func handleConfirmTOTPForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		codes, err := store.ConfirmTOTP(r.Context(), st.org.ID, st.actor, form.Get("code"))
		if err != nil {
			if !p.showError(err) {
				return err
			}
			url, uerr := store.PendingTOTPURL(r.Context(), st.org.ID, st.actor)
			if uerr != nil {
				return uerr
			}
			return showTOTPSetup(w, r, p, secretOf(url), http.StatusBadRequest)
		}
		p.title("recovery.title")
		p.Data = recoveryPage{Codes: codes}
		return renderPage(w, r, p, http.StatusOK, "recovery_codes")
	}
}

// secretOf takes the secret back out of an otpauth:// URL.
func secretOf(otpauth string) string {
	_, q, _ := strings.Cut(otpauth, "secret=")
	s, _, _ := strings.Cut(q, "&")
	return s
}

func handleDisableTOTPForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		err := store.DisableTOTP(r.Context(), st.org.ID, st.actor)
		if kluis.ErrorCode(err) == kluis.EReauthRequired {
			return redirect(w, r, "/o/"+p.Org.Slug+"/account/reauth", "reauth_first")
		}
		if err != nil && !errors.Is(err, kluis.ErrNotFound) {
			return err
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/account", "totp_disabled")
	}
}
