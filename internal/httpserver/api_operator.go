package httpserver

import (
	"net/http"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// The operator realm's own account routes (issue 5 item 8): the second step
// of a sign-in, re-authentication, setting up an authenticator app, and the
// instance-wide logins switch (R19). They mirror the users' routes.

// operatorCodeRequest is the second step of an operator's sign-in: a code
// from the authenticator app ("totp") or a recovery code ("recovery").
type operatorCodeRequest struct {
	Challenge string `json:"challenge"`
	Method    string `json:"method"`
	Code      string `json:"code"`
}

// operatorMethod checks the method of an operator's code: operators have an
// app and recovery codes only.
func operatorMethod(m string) (string, error) {
	switch m {
	case "", "totp":
		return "totp", nil
	case "recovery":
		return m, nil
	}
	return "", kluis.Invalid(map[string]string{"method": "must be totp or recovery"})
}

// answerOperatorSession answers a new operator session: the browser's
// cookie and the token for API clients; mfa_enrolment_required while the
// operator has no second factor (R17).
func answerOperatorSession(w http.ResponseWriter, sess sqlstore.Session) {
	setSessionCookies(w, operatorCookie, sess)
	writeJSON(w, http.StatusOK, loginAnswer{Token: sess.Token, ExpiresAt: sess.ExpiresAt, MFAEnrolmentRequired: sess.MFAEnrolmentRequired})
}

// handleOperatorLoginMFA completes an operator's two-step sign-in.
func handleOperatorLoginMFA(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in operatorCodeRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		method, err := operatorMethod(in.Method)
		if err != nil {
			return err
		}
		sess, err := store.OperatorLoginMFA(r.Context(), in.Challenge, method, in.Code)
		if err != nil {
			return err
		}
		answerOperatorSession(w, sess)
		return nil
	}
}

type operatorReauthRequest struct {
	Password string `json:"password"`
	Method   string `json:"method"`
	Code     string `json:"code"`
}

// handleOperatorReauth replaces the operator's session with a freshly
// authenticated one; the old token stops working.
func handleOperatorReauth(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in operatorReauthRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		method, err := operatorMethod(in.Method)
		if err != nil {
			return err
		}
		sess, err := store.OperatorReauth(r.Context(), state(r).actor, in.Password, method, in.Code)
		if err != nil {
			return err
		}
		answerOperatorSession(w, sess)
		return nil
	}
}

func handleOperatorStartTOTP(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		secret, url, err := store.StartOperatorTOTP(r.Context(), state(r).actor)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, totpAnswer{Secret: secret, OTPAuthURL: url})
		return nil
	}
}

func handleOperatorConfirmTOTP(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in codeRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		codes, err := store.ConfirmOperatorTOTP(r.Context(), state(r).actor, in.Code)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, recoveryAnswer{RecoveryCodes: codes})
		return nil
	}
}

// operatorJSON is what GET /api/v1/operator/me answers: the operator's own
// account, never a secret.
type operatorJSON struct {
	ID                   string     `json:"id"`
	Email                string     `json:"email"`
	Name                 string     `json:"name"`
	CreatedAt            time.Time  `json:"created_at"`
	LastLoginAt          *time.Time `json:"last_login_at"`
	Methods              []string   `json:"methods"`
	RecoveryCodesLeft    int        `json:"recovery_codes_left"`
	MFAEnrolmentRequired bool       `json:"mfa_enrolment_required"`
}

func handleOperatorMe(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		a, err := store.FindOperatorAccount(r.Context(), state(r).actor)
		if err != nil {
			return err
		}
		j := operatorJSON{ID: string(a.ID), Email: a.Email, Name: a.Name, CreatedAt: a.CreatedAt, Methods: a.Methods,
			RecoveryCodesLeft: a.RecoveryLeft, MFAEnrolmentRequired: len(a.Methods) == 0}
		if j.Methods == nil {
			j.Methods = []string{}
		}
		if !a.LastLoginAt.IsZero() {
			t := a.LastLoginAt
			j.LastLoginAt = &t
		}
		writeJSON(w, http.StatusOK, j)
		return nil
	}
}

// handleGetInstanceLogins tells whether the instance's logins are open
// (R19).
func handleGetInstanceLogins(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		stopped, _, err := store.InstanceLoginsStopped(r.Context(), state(r).actor)
		if err != nil {
			return err
		}
		enabled := !stopped
		writeJSON(w, http.StatusOK, loginsJSON{Enabled: &enabled})
		return nil
	}
}

// handleSetInstanceLogins stops ({enabled:false}: every session of every
// organisation ends) or resumes the logins of the whole instance (R19).
func handleSetInstanceLogins(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in struct {
			Enabled *bool `json:"enabled"`
		}
		if err := decode(r, &in); err != nil {
			return err
		}
		if in.Enabled == nil {
			return kluis.Invalid(map[string]string{"enabled": "is required"})
		}
		ended, err := store.SetInstanceLogins(r.Context(), state(r).actor, *in.Enabled)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, loginsJSON{Enabled: in.Enabled, SessionsEnded: &ended})
		return nil
	}
}
