package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/kluis/kluis"
)

// Request and answer bodies are explicit structs, never storage rows, so no
// field leaks through a forgotten tag.

// Sign-in in the API, one handler for both realms: the organisations'
// people at /api/v1/orgs/{org}/… and the operator's staff at
// /api/v1/operator/…, told apart by the realm the route's wrapper put in
// the request's state.

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
	// RestrictedAt is when processing was restricted (R34), null when not.
	RestrictedAt *time.Time `json:"restricted_at"`
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
	if u.Restricted() {
		t := u.RestrictedAt
		j.RestrictedAt = &t
	}
	return j
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// mfaAnswer is the password step's answer for an account with a second
// factor: no session, a challenge for POST …/login/mfa (R17).
type mfaAnswer struct {
	MFARequired bool      `json:"mfa_required"`
	Challenge   string    `json:"challenge"`
	Methods     []string  `json:"methods"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// handleLogin opens a session (R14), or answers the challenge of a second
// step. Every failure gets the same 401 body.
func handleLogin(signIn kluis.SignInService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in loginRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		sess, err := signIn.Login(r.Context(), st.realm.Scope, st.from, in.Email, in.Password)
		var challenge *kluis.Challenge
		if errors.As(err, &challenge) {
			writeJSON(w, http.StatusOK, mfaAnswer{MFARequired: true, Challenge: challenge.Token, Methods: challenge.Methods, ExpiresAt: challenge.ExpiresAt})
			return nil
		}
		if err != nil {
			return err
		}
		answerSession(w, r, sess, true)
		return nil
	}
}

func handleLogout(signIn kluis.SignInService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		if err := signIn.Logout(r.Context(), st.realm.Scope, st.actor); err != nil {
			return err
		}
		http.SetCookie(w, clearCookie(st.realm.sessionCookie))
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

type mfaRequest struct {
	Challenge string          `json:"challenge"`
	Method    string          `json:"method"`
	Code      string          `json:"code"`
	Assertion json.RawMessage `json:"assertion"` // method "webauthn"
}

// handleLoginMFA completes a two-step login (R17).
func handleLoginMFA(signIn kluis.SignInService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in mfaRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		method, code, err := answerCode(st.realm, in.Method, in.Code, in.Assertion)
		if err != nil {
			return err
		}
		sess, err := signIn.LoginSecondStep(r.Context(), st.realm.Scope, st.from, in.Challenge, method, code)
		if err != nil {
			return err
		}
		useFeature(r, "signin."+method) // R37
		answerSession(w, r, sess, true)
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
func handleReauth(signIn kluis.SignInService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in reauthRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		method, code, err := answerCode(st.realm, in.Method, in.Code, in.Assertion)
		if err != nil {
			return err
		}
		sess, err := signIn.Reauth(r.Context(), st.realm.Scope, st.actor, in.Password, method, code)
		if err != nil {
			return err
		}
		answerSession(w, r, sess, false)
		return nil
	}
}

// answerCode is the method and the answer a second step is checked with:
// a method the realm offers, and for a WebAuthn assertion its JSON, for
// any other method the code as typed.
func answerCode(rm realm, method, code string, assertion json.RawMessage) (string, string, error) {
	method, err := rm.method(method)
	if err != nil || method != "webauthn" {
		return method, code, err
	}
	if len(assertion) == 0 || assertion[0] != '{' {
		return "", "", kluis.Invalid(map[string]string{"assertion": "must be the browser's answer, an object"})
	}
	return method, string(assertion), nil
}

type acceptRequest struct {
	Token    string `json:"token"`
	Name     string `json:"name"`
	Password string `json:"password"`
}

type userAnswer struct {
	User userJSON `json:"user"`
}

func handleAcceptInvitation(users kluis.UserService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in acceptRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		u, err := users.AcceptInvitation(r.Context(), st.org.ID, st.from, in.Token, in.Name, in.Password)
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
func handleRequestPasswordReset(recovery kluis.RecoveryService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in resetRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		if err := recovery.RequestPasswordReset(r.Context(), st.org.ID, st.from, in.Email); err != nil {
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

func handleConfirmPasswordReset(recovery kluis.RecoveryService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in resetConfirm
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		if err := recovery.ResetPassword(r.Context(), st.org.ID, st.from, in.Token, in.NewPassword); err != nil {
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

// handleReady answers whether the server can serve: ready asks the
// database (nil: always ready).
func handleReady(ready func(context.Context) error) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if ready != nil {
			if err := ready(r.Context()); err != nil {
				state(r).log.Warn("not ready", "err", err.Error())
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "database unreachable"})
				return nil
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		return nil
	}
}
