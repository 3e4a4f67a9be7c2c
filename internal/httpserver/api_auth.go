package httpserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Request and answer bodies are explicit structs, never storage rows, so no
// field leaks through a forgotten tag.

type userJSON struct {
	ID                string     `json:"id"`
	Name              string     `json:"name"`
	Email             string     `json:"email"`
	Phone             string     `json:"phone"`
	MaintenanceEmails bool       `json:"maintenance_emails"`
	Role              string     `json:"role"`
	Status            string     `json:"status"`
	CreatedAt         time.Time  `json:"created_at"`
	LastLoginAt       *time.Time `json:"last_login_at"`
}

func toUserJSON(u kluis.User) userJSON {
	j := userJSON{
		ID: string(u.ID), Name: u.Name, Email: u.Email, Phone: u.Phone, MaintenanceEmails: u.MaintenanceEmails,
		Role: string(u.Role), Status: string(u.Status), CreatedAt: u.CreatedAt,
	}
	if !u.LastLoginAt.IsZero() {
		t := u.LastLoginAt
		j.LastLoginAt = &t
	}
	return j
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type loginAnswer struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	User      *userJSON `json:"user,omitempty"`
	// MFAEnrolmentRequired: the session may only enrol a second factor
	// (the policy requires one, R17).
	MFAEnrolmentRequired bool `json:"mfa_enrolment_required,omitempty"`
}

// answerSession answers a new session: the browser's cookie and the token
// for API clients, with the user when the sign-in is complete.
func answerSession(w http.ResponseWriter, sess sqlstore.Session, u *kluis.User) {
	setSessionCookies(w, sessionCookie, sess)
	a := loginAnswer{Token: sess.Token, ExpiresAt: sess.ExpiresAt, MFAEnrolmentRequired: sess.MFAEnrolmentRequired}
	if u != nil {
		uj := toUserJSON(*u)
		a.User = &uj
	}
	writeJSON(w, http.StatusOK, a)
}

// sessionCookieFor returns the browser cookie of a new session: Secure,
// HttpOnly, SameSite=Lax, host-only (__Host- prefix).
func sessionCookieFor(name string, sess sqlstore.Session) *http.Cookie {
	return &http.Cookie{
		Name: name, Value: sess.Token, Path: "/", Expires: sess.ExpiresAt,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	}
}

// setSessionCookies gives a browser its new session, and the device cookie
// of a completed sign-in (DESIGN §6): HttpOnly, host-only, sent only to this
// site, kept for the device lifetime.
func setSessionCookies(w http.ResponseWriter, name string, sess sqlstore.Session) {
	http.SetCookie(w, sessionCookieFor(name, sess))
	if sess.DeviceCookie != "" {
		http.SetCookie(w, &http.Cookie{
			Name: deviceCookie, Value: sess.DeviceCookie, Path: "/", Expires: sess.DeviceExpires,
			Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode,
		})
	}
}

func clearCookie(name string) *http.Cookie {
	return &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode}
}

// handleLogin opens a session for an organisation user (R14). Every failure
// gets the same 401 body.
func handleLogin(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in loginRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		sess, u, err := store.Login(r.Context(), state(r).org.ID, in.Email, in.Password)
		var challenge *sqlstore.MFAChallenge
		if errors.As(err, &challenge) {
			writeJSON(w, http.StatusOK, mfaAnswer{MFARequired: true, Challenge: challenge.Token, Methods: challenge.Methods, ExpiresAt: challenge.ExpiresAt})
			return nil
		}
		if err != nil {
			return err
		}
		answerSession(w, sess, &u)
		return nil
	}
}

func handleLogout(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		if err := store.Logout(r.Context(), st.org.ID, st.actor); err != nil {
			return err
		}
		http.SetCookie(w, clearCookie(sessionCookie))
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

func handleOperatorLogin(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in loginRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		sess, err := store.OperatorLogin(r.Context(), in.Email, in.Password)
		var challenge *sqlstore.MFAChallenge
		if errors.As(err, &challenge) {
			writeJSON(w, http.StatusOK, mfaAnswer{MFARequired: true, Challenge: challenge.Token, Methods: challenge.Methods, ExpiresAt: challenge.ExpiresAt})
			return nil
		}
		if err != nil {
			return err
		}
		answerOperatorSession(w, sess)
		return nil
	}
}

func handleOperatorLogout(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := store.OperatorLogout(r.Context(), state(r).actor); err != nil {
			return err
		}
		http.SetCookie(w, clearCookie(operatorCookie))
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// mfaAnswer is the password step's answer for an account with a second
// factor: no session, a challenge for POST …/login/mfa (R17).
type mfaAnswer struct {
	MFARequired bool      `json:"mfa_required"`
	Challenge   string    `json:"challenge"`
	Methods     []string  `json:"methods"`
	ExpiresAt   time.Time `json:"expires_at"`
}

type mfaRequest struct {
	Challenge string          `json:"challenge"`
	Method    string          `json:"method"`
	Code      string          `json:"code"`
	Assertion json.RawMessage `json:"assertion"` // method "webauthn"
}

// handleLoginMFA completes a two-step login (R17).
func handleLoginMFA(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in mfaRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		code, err := answerCode(in.Method, in.Code, in.Assertion)
		if err != nil {
			return err
		}
		sess, u, err := store.LoginMFA(r.Context(), state(r).org.ID, in.Challenge, in.Method, code)
		if err != nil {
			return err
		}
		answerSession(w, sess, &u)
		return nil
	}
}

type reauthRequest struct {
	Password  string          `json:"password"`
	Method    string          `json:"method"`
	Code      string          `json:"code"`
	Assertion json.RawMessage `json:"assertion"` // method "webauthn"
}

// handleReauth replaces the caller's session with a freshly authenticated
// one; the old token stops working.
func handleReauth(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in reauthRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		code, err := answerCode(in.Method, in.Code, in.Assertion)
		if err != nil {
			return err
		}
		st := state(r)
		sess, err := store.Reauth(r.Context(), st.org.ID, st.actor, in.Password, in.Method, code)
		if err != nil {
			return err
		}
		answerSession(w, sess, nil)
		return nil
	}
}

type totpAnswer struct {
	Secret     string `json:"secret"`
	OTPAuthURL string `json:"otpauth_url"`
}

func handleStartTOTP(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		secret, url, err := store.StartTOTP(r.Context(), st.org.ID, st.actor)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, totpAnswer{Secret: secret, OTPAuthURL: url})
		return nil
	}
}

type codeRequest struct {
	Code string `json:"code"`
}

type recoveryAnswer struct {
	RecoveryCodes []string `json:"recovery_codes"`
}

func handleConfirmTOTP(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in codeRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		codes, err := store.ConfirmTOTP(r.Context(), st.org.ID, st.actor, in.Code)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, recoveryAnswer{RecoveryCodes: codes})
		return nil
	}
}

func handleDisableTOTP(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		if err := store.DisableTOTP(r.Context(), st.org.ID, st.actor); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

type acceptRequest struct {
	Token    string `json:"token"`
	Name     string `json:"name"`
	Password string `json:"password"`
}

type userAnswer struct {
	User userJSON `json:"user"`
}

func handleAcceptInvitation(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in acceptRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		u, err := store.AcceptInvitation(r.Context(), state(r).org.ID, in.Token, in.Name, in.Password)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, userAnswer{User: toUserJSON(u)})
		return nil
	}
}

type resetRequest struct {
	Email string `json:"email"`
}

// handleRequestPasswordReset answers 202 {} whatever the address (R20).
func handleRequestPasswordReset(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in resetRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		if err := store.RequestPasswordReset(r.Context(), state(r).org.ID, in.Email); err != nil {
			return err
		}
		writeJSON(w, http.StatusAccepted, struct{}{})
		return nil
	}
}

type resetConfirm struct {
	Token       string `json:"token"`
	NewPassword string `json:"new_password"`
}

func handleConfirmPasswordReset(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in resetConfirm
		if err := decode(r, &in); err != nil {
			return err
		}
		if err := store.ResetPassword(r.Context(), state(r).org.ID, in.Token, in.NewPassword); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

func handleHealth() handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return nil
	}
}

func handleReady(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := store.DB().Ping(r.Context()); err != nil {
			state(r).log.Warn("not ready", "err", err.Error())
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "database unreachable"})
			return nil
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		return nil
	}
}
