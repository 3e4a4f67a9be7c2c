package httpserver

import (
	"net/http"

	"github.com/kluis/kluis"
)

// Second factors in the API (R17), one handler for both realms: each goes
// through the generic FactorService with the kind of its route, in the
// scope of the request's realm.

type totpAnswer struct {
	Secret     string `json:"secret"`
	OTPAuthURL string `json:"otpauth_url"`
}

// handleStartTOTP begins setting up an authenticator app (fresh
// authentication needed): the secret, not active until confirmed.
func handleStartTOTP(factors kluis.FactorService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		e, err := factors.StartFactor(r.Context(), st.realm.Scope, st.actor, kluis.FactorTOTP, kluis.FactorSetup{})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, totpAnswer{Secret: e.Secret, OTPAuthURL: e.URL})
		return nil
	}
}

type codeRequest struct {
	Code string `json:"code"`
}

type recoveryAnswer struct {
	RecoveryCodes []string `json:"recovery_codes"`
}

// handleConfirmTOTP turns the app on with its first code; the answer
// carries new recovery codes, once.
func handleConfirmTOTP(factors kluis.FactorService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in codeRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		done, err := factors.ConfirmFactor(r.Context(), st.realm.Scope, st.actor, kluis.FactorTOTP, kluis.FactorProof{Code: in.Code})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, recoveryAnswer{RecoveryCodes: done.RecoveryCodes})
		return nil
	}
}

// handleRemoveFactor removes the caller's factor of the kind (fresh
// authentication needed); a passkey is the one of the path's id.
func handleRemoveFactor(factors kluis.FactorService, kind kluis.FactorKind) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		if err := factors.RemoveFactor(r.Context(), st.realm.Scope, st.actor, kind, r.PathValue("id")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// managedUserJSON is a person as a manager reads them: with the methods of
// the second factors they enrolled (R17), never a secret.
type managedUserJSON struct {
	userJSON
	Factors []string `json:"factors"`
}

func toManagedUserJSON(u kluis.User, factors map[kluis.UserID][]string) managedUserJSON {
	f := factors[u.ID]
	if f == nil {
		f = []string{}
	}
	return managedUserJSON{userJSON: toUserJSON(u), Factors: f}
}

// handleResetFactors removes a person's second factors (manager, fresh
// authentication): they are told by mail and their sessions end.
func handleResetFactors(factors kluis.FactorService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		if err := factors.ResetFactors(r.Context(), st.realm.Scope, st.actor, string(userID(r))); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}
