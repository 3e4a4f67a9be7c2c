package httpserver

import (
	"net/http"

	"github.com/kluis/kluis/internal/sqlstore"
)

// Codes by SMS as a second factor (R17) in the API. Sending a code answers
// 202: the message is queued and goes out after the answer.

type smsStartRequest struct {
	Phone string `json:"phone"`
}

type smsStartAnswer struct {
	Phone string `json:"phone"` // masked: +3*********78
}

// handleStartSMS sends a code to the number to verify (fresh
// authentication needed).
func handleStartSMS(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in smsStartRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		masked, err := store.StartSMS(r.Context(), st.org.ID, st.actor, in.Phone)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusAccepted, smsStartAnswer{Phone: masked})
		return nil
	}
}

type smsConfirmAnswer struct {
	RecoveryCodes []string `json:"recovery_codes,omitempty"`
}

// handleConfirmSMS turns codes by SMS on with the code sent; with the
// person's first factor the answer carries their recovery codes, once.
func handleConfirmSMS(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in codeRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		codes, err := store.ConfirmSMS(r.Context(), st.org.ID, st.actor, in.Code)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, smsConfirmAnswer{RecoveryCodes: codes})
		return nil
	}
}

func handleDisableSMS(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		if err := store.DisableSMS(r.Context(), st.org.ID, st.actor); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// handleSendLoginSMS sends a code for the second step of a login.
func handleSendLoginSMS(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in challengeRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		if err := store.SendLoginSMS(r.Context(), state(r).org.ID, in.Challenge); err != nil {
			return err
		}
		writeJSON(w, http.StatusAccepted, struct{}{})
		return nil
	}
}

// handleSendReauthSMS sends a code for a re-authentication.
func handleSendReauthSMS(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		if err := store.SendReauthSMS(r.Context(), st.org.ID, st.actor); err != nil {
			return err
		}
		writeJSON(w, http.StatusAccepted, struct{}{})
		return nil
	}
}
