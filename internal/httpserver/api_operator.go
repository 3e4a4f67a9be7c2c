package httpserver

import (
	"net/http"
	"time"

	"github.com/kluis/kluis"
)

// The operator realm's own routes: the operator's account and the
// instance-wide logins switch (R19). Sign-in, re-authentication and second
// factors are the users' handlers, in the operator's realm.

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

func handleOperatorMe(operators kluis.OperatorService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		a, err := operators.FindOperatorAccount(r.Context(), state(r).actor)
		if err != nil {
			return err
		}
		j := operatorJSON{ID: string(a.ID), Email: a.Email, Name: a.Name, CreatedAt: a.CreatedAt, Methods: a.Factors.Methods,
			RecoveryCodesLeft: a.Factors.RecoveryLeft, MFAEnrolmentRequired: len(a.Factors.Methods) == 0}
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
func handleGetInstanceLogins(logins kluis.LoginsService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		stopped, _, err := logins.InstanceLoginsStopped(r.Context(), state(r).actor)
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
func handleSetInstanceLogins(logins kluis.LoginsService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		enabled, err := decodeEnabled(r)
		if err != nil {
			return err
		}
		ended, err := logins.SetInstanceLogins(r.Context(), state(r).actor, enabled)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, loginsJSON{Enabled: &enabled, SessionsEnded: &ended})
		return nil
	}
}
