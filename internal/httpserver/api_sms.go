package httpserver

import (
	"net/http"

	"github.com/kluis/kluis"
)

// Codes by SMS as a second factor (R17) in the API: the people of an
// organisation only. Sending a code answers 202: the message is queued and
// goes out after the answer.

type smsStartRequest struct {
	Phone string `json:"phone"`
}

type smsStartAnswer struct {
	Phone string `json:"phone"` // masked: +3*********78
}

// handleStartSMS sends a code to the number to verify (fresh
// authentication needed).
func handleStartSMS(factors kluis.FactorService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in smsStartRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		e, err := factors.StartFactor(r.Context(), st.realm.Scope, st.actor, kluis.FactorSMS, kluis.FactorSetup{Phone: in.Phone})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusAccepted, smsStartAnswer{Phone: e.Number})
		return nil
	}
}

type smsConfirmAnswer struct {
	RecoveryCodes []string `json:"recovery_codes,omitempty"`
}

// handleConfirmSMS turns codes by SMS on with the code sent; with the
// person's first factor the answer carries their recovery codes, once.
func handleConfirmSMS(factors kluis.FactorService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in codeRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		done, err := factors.ConfirmFactor(r.Context(), st.realm.Scope, st.actor, kluis.FactorSMS, kluis.FactorProof{Code: in.Code})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, smsConfirmAnswer{RecoveryCodes: done.RecoveryCodes})
		return nil
	}
}

type challengeRequest struct {
	Challenge string `json:"challenge"`
}

// handlePrepareSecondStep readies the second step of a login with the
// method: the options for navigator.credentials.get ("webauthn"), or a
// code sent by SMS (202).
func handlePrepareSecondStep(signIn kluis.SignInService, method string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in challengeRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		options, err := signIn.PrepareSecondStep(r.Context(), st.realm.Scope, st.from, in.Challenge, method)
		if err != nil {
			return err
		}
		answerPrepared(w, method, options)
		return nil
	}
}

// handlePrepareReauth readies a re-authentication's second factor, as
// handlePrepareSecondStep.
func handlePrepareReauth(signIn kluis.SignInService, method string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		options, err := signIn.PrepareReauth(r.Context(), st.realm.Scope, st.actor, method)
		if err != nil {
			return err
		}
		answerPrepared(w, method, options)
		return nil
	}
}

// answerPrepared answers a prepared second factor: a ceremony's options,
// which the service made as JSON, or 202 {} for a code on its way.
func answerPrepared(w http.ResponseWriter, method string, options []byte) {
	if method == "webauthn" {
		writeOptions(w, options)
		return
	}
	writeJSON(w, http.StatusAccepted, struct{}{})
}
