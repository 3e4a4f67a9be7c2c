package httpserver

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/kluis/kluis"
)

// Passkeys and security keys (WebAuthn, R17) in the API, for both realms.
// The options a ceremony starts with are the relying party's JSON
// ({"publicKey":…}) as they are; the browser's answers come back as JSON
// objects.

type passkeyJSON struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

func toPasskeyJSON(p kluis.Passkey) passkeyJSON {
	j := passkeyJSON{ID: p.ID, Name: p.Name, CreatedAt: p.CreatedAt}
	if !p.LastUsedAt.IsZero() {
		t := p.LastUsedAt
		j.LastUsedAt = &t
	}
	return j
}

// writeOptions answers a ceremony's options, which the service made as JSON.
func writeOptions(w http.ResponseWriter, options []byte) {
	writeJSON(w, http.StatusOK, json.RawMessage(options))
}

type passkeysAnswer struct {
	Passkeys []passkeyJSON `json:"passkeys"`
}

func handleListPasskeys(factors kluis.FactorService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		f, err := factors.FindFactors(r.Context(), st.realm.Scope, st.actor)
		if err != nil {
			return err
		}
		out := passkeysAnswer{Passkeys: []passkeyJSON{}}
		for _, p := range f.Passkeys {
			out.Passkeys = append(out.Passkeys, toPasskeyJSON(p))
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

// handleBeginPasskeyRegistration answers the options for
// navigator.credentials.create (fresh authentication needed).
func handleBeginPasskeyRegistration(factors kluis.FactorService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		e, err := factors.StartFactor(r.Context(), st.realm.Scope, st.actor, kluis.FactorPasskey, kluis.FactorSetup{})
		if err != nil {
			return err
		}
		writeOptions(w, e.Options)
		return nil
	}
}

type passkeyRequest struct {
	Name       string          `json:"name"`
	Credential json.RawMessage `json:"credential"`
}

type passkeyAnswer struct {
	Passkey       passkeyJSON `json:"passkey"`
	RecoveryCodes []string    `json:"recovery_codes,omitempty"`
}

// handleFinishPasskeyRegistration keeps the passkey the browser made; with
// the person's first factor the answer carries their recovery codes, once.
func handleFinishPasskeyRegistration(factors kluis.FactorService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in passkeyRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		if len(in.Credential) == 0 || in.Credential[0] != '{' {
			return kluis.Invalid(map[string]string{"credential": "must be the browser's answer, an object"})
		}
		st := state(r)
		done, err := factors.ConfirmFactor(r.Context(), st.realm.Scope, st.actor, kluis.FactorPasskey, kluis.FactorProof{Name: in.Name, Response: in.Credential})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, passkeyAnswer{Passkey: toPasskeyJSON(done.Passkey), RecoveryCodes: done.RecoveryCodes})
		return nil
	}
}
