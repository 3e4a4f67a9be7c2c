package httpserver

import (
	"net/http"
	"slices"
	"strings"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/mfa"
)

// The pages of two-step sign-in (R17), one handler for both realms: the
// second step of a sign-in, proving again who one is before a sensitive
// change, setting up an authenticator app, and the recovery codes. The
// page's realm (p.Realm) gives the scope, paths and cookies.

type mfaPage struct {
	CodeMethods []string // of the select: "totp", "sms" and "recovery"
	Passkey     string   // options for navigator.credentials.get; "" without a passkey
	SMS         bool     // a code can be sent by SMS
}

// handleMFAPage asks for the second factor: a passkey, or a code.
func handleMFAPage(signIn kluis.SignInService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		if sessionToken(r, p.Realm.challengeCookie) == "" {
			return redirect(w, r, p.Realm.Base+"/login", "")
		}
		return showMFA(w, r, p, signIn, http.StatusOK)
	}
}

// showMFA renders the second step. A challenge that lapsed meanwhile sends
// the person back to the password.
func showMFA(w http.ResponseWriter, r *http.Request, p *pageData, signIn kluis.SignInService, status int) error {
	rm := p.Realm
	challenge := sessionToken(r, rm.challengeCookie)
	methods, err := signIn.ChallengeMethods(r.Context(), rm.Scope, challenge)
	if kluis.ErrorCode(err) == kluis.EUnauthenticated {
		http.SetCookie(w, clearCookie(rm.challengeCookie))
		return redirect(w, r, rm.Base+"/login", "challenge_expired")
	}
	if err != nil {
		return err
	}
	data := mfaPage{CodeMethods: codeMethods(methods), SMS: hasMethod(methods, "sms")}
	if hasMethod(methods, "webauthn") {
		options, err := signIn.PrepareSecondStep(r.Context(), rm.Scope, state(r).from, challenge, "webauthn")
		if err == nil {
			data.Passkey = string(options)
		} else if kluis.ErrorCode(err) == kluis.EInternal {
			return err
		}
	}
	p.chooseMethod(data.CodeMethods)
	p.title("mfa.title")
	p.Data = data
	return renderPage(w, r, p, status, "mfa")
}

// chooseMethod selects the method of the code form: the one posted when it
// is offered, else the first offered.
func (p *pageData) chooseMethod(offered []string) {
	if m := p.Form.Get("method"); (m == "" || !hasMethod(offered, m)) && len(offered) > 0 {
		p.Form.Set("method", offered[0])
	}
}

// handleMFAForm completes the sign-in with a passkey or a code.
func handleMFAForm(signIn kluis.SignInService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		rm := p.Realm
		method, code := rm.formMethod(form.Get("method")), form.Get("code")
		if method == "webauthn" {
			code = form.Get("assertion")
		}
		sess, err := signIn.LoginSecondStep(r.Context(), rm.Scope, state(r).from, sessionToken(r, rm.challengeCookie), method, code)
		if kluis.ErrorCode(err) == kluis.EUnauthenticated {
			if method != "webauthn" {
				p.Form.Set("method", method)
			}
			p.Error = p.L.T("mfa.failed")
			return showMFA(w, r, p, signIn, http.StatusUnauthorized)
		}
		if err != nil {
			if p.showError(err) {
				p.title("mfa.title")
				p.Data = mfaPage{}
				return renderPage(w, r, p, formStatus(err), "mfa")
			}
			return err
		}
		useFeature(r, "signin."+method) // R37
		http.SetCookie(w, clearCookie(rm.challengeCookie))
		rm.setSession(w, sess)
		return redirect(w, r, rm.Start, "")
	}
}

// addressOf returns the signed-in person's e-mail address, for the
// password manager's username field of a form that asks for the password
// again. It is the one part of re-authentication that differs by realm:
// the routes hand in the realm's.
type addressOf func(r *http.Request) (string, error)

// userAddress is the address of an organisation's signed-in person,
// decrypted for this page.
func userAddress(r *http.Request) (string, error) {
	u, err := state(r).person(r.Context())
	return u.Email, err
}

// operatorAddress is the address of the signed-in operator.
func operatorAddress(operators kluis.OperatorService) addressOf {
	return func(r *http.Request) (string, error) {
		a, err := operators.FindOperatorAccount(r.Context(), state(r).actor)
		return a.Email, err
	}
}

type reauthPage struct {
	Username    string   // for the password manager
	CodeMethods []string // of the select: "totp", "sms" and "recovery"
	Passkey     string   // options for navigator.credentials.get; "" without a passkey
	SMS         bool     // a code can be sent by SMS
}

// handleReauthPage asks for the password (and a second factor) again
// before a sensitive change.
func handleReauthPage(signIn kluis.SignInService, factors kluis.FactorService, address addressOf) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		return showReauth(w, r, p, signIn, factors, address, http.StatusOK)
	}
}

func showReauth(w http.ResponseWriter, r *http.Request, p *pageData, signIn kluis.SignInService, factors kluis.FactorService, address addressOf, status int) error {
	st := state(r)
	f, err := factors.FindFactors(r.Context(), st.realm.Scope, st.actor)
	if err != nil {
		return err
	}
	data := reauthPage{CodeMethods: codeMethods(f.Methods), SMS: hasMethod(f.Methods, "sms")}
	if data.Username, err = address(r); err != nil {
		return err
	}
	if hasMethod(f.Methods, "webauthn") {
		options, err := signIn.PrepareReauth(r.Context(), st.realm.Scope, st.actor, "webauthn")
		if err == nil {
			data.Passkey = string(options)
		} else if kluis.ErrorCode(err) == kluis.EInternal {
			return err
		}
	}
	p.title("reauth.title")
	p.Data = data
	p.chooseMethod(data.CodeMethods)
	return renderPage(w, r, p, status, "reauth")
}

// handleReauthForm replaces the session with a freshly authenticated one.
func handleReauthForm(signIn kluis.SignInService, factors kluis.FactorService, address addressOf) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		method, code := st.realm.formMethod(form.Get("method")), form.Get("code")
		if method == "webauthn" {
			code = form.Get("assertion")
		}
		sess, err := signIn.Reauth(r.Context(), st.realm.Scope, st.actor, form.Get("password"), method, code)
		if err != nil {
			if !p.showError(err) {
				return err
			}
			if method != "webauthn" {
				p.Form.Set("method", method)
			}
			return showReauth(w, r, p, signIn, factors, address, http.StatusBadRequest)
		}
		st.realm.setSession(w, sess)
		return redirect(w, r, st.realm.Account, "reauthenticated")
	}
}

type totpSetupPage struct {
	Secret string // grouped in fours for typing
}

// handleStartTOTPForm makes a new secret and shows the set-up page.
func handleStartTOTPForm(factors kluis.FactorService, account accountPage) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		return startFactor(w, r, p, factors, account, kluis.FactorTOTP, func(e kluis.FactorEnrolment) error {
			return showTOTPSetup(w, r, p, e.Secret, http.StatusOK)
		})
	}
}

// startFactor begins setting up a factor of the kind and shows the set-up
// with show; without a fresh authentication it asks for one first, and a
// refusal the account page can show (an app already set up) is shown
// there.
func startFactor(w http.ResponseWriter, r *http.Request, p *pageData, factors kluis.FactorService, account accountPage, kind kluis.FactorKind, show func(kluis.FactorEnrolment) error) error {
	st := state(r)
	e, err := factors.StartFactor(r.Context(), st.realm.Scope, st.actor, kind, kluis.FactorSetup{})
	if kluis.ErrorCode(err) == kluis.EReauthRequired {
		return redirect(w, r, st.realm.Account+"/reauth", "reauth_first")
	}
	if err != nil {
		if p.showError(err) {
			return account(w, r, p, http.StatusConflict)
		}
		return err
	}
	return show(e)
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
func handleTOTPQRCode(factors kluis.FactorService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		e, err := factors.PendingFactor(r.Context(), st.realm.Scope, st.actor, kluis.FactorTOTP)
		if err != nil {
			return err
		}
		png, err := mfa.QRCode(e.URL)
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
// recovery codes, once. A set-up that lapsed, or that another session
// started, sends the person back to their account.
func handleConfirmTOTPForm(factors kluis.FactorService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		done, err := factors.ConfirmFactor(r.Context(), st.realm.Scope, st.actor, kluis.FactorTOTP, kluis.FactorProof{Code: form.Get("code")})
		if kluis.ErrorCode(err) == kluis.ENotFound {
			return redirect(w, r, st.realm.Account, "")
		}
		if err != nil {
			if !p.showError(err) {
				return err
			}
			e, perr := factors.PendingFactor(r.Context(), st.realm.Scope, st.actor, kluis.FactorTOTP)
			if perr != nil {
				return perr
			}
			return showTOTPSetup(w, r, p, secretOf(e.URL), http.StatusBadRequest)
		}
		return showRecoveryCodes(w, r, p, done.RecoveryCodes)
	}
}

// showRecoveryCodes shows a first factor's recovery codes, once. The
// session is no longer limited to enrolment: the page has the person's
// whole navigation.
func showRecoveryCodes(w http.ResponseWriter, r *http.Request, p *pageData, codes []string) error {
	p.navigate(r, false)
	p.title("recovery.title")
	p.Data = recoveryPage{Codes: codes}
	return renderPage(w, r, p, http.StatusOK, "recovery_codes")
}

// secretOf takes the secret back out of an otpauth:// URL.
func secretOf(otpauth string) string {
	_, q, _ := strings.Cut(otpauth, "secret=")
	s, _, _ := strings.Cut(q, "&")
	return s
}

// handleRemoveFactorForm removes the person's factor of the kind (an app,
// codes by SMS) and says so with the notice; one already gone is no error.
func handleRemoveFactorForm(factors kluis.FactorService, kind kluis.FactorKind, notice string) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		err := factors.RemoveFactor(r.Context(), st.realm.Scope, st.actor, kind, "")
		if kluis.ErrorCode(err) == kluis.EReauthRequired {
			return redirect(w, r, st.realm.Account+"/reauth", "reauth_first")
		}
		if err != nil && kluis.ErrorCode(err) != kluis.ENotFound {
			return err
		}
		return redirect(w, r, st.realm.Account, notice)
	}
}

// codeMethods are the methods of a code typed into a form, of those given.
func codeMethods(methods []string) []string {
	var out []string
	for _, m := range methods {
		if m == "totp" || m == "sms" || m == kluis.MethodRecovery {
			out = append(out, m)
		}
	}
	return out
}

func hasMethod(methods []string, m string) bool { return slices.Contains(methods, m) }
