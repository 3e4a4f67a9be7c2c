package httpserver

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Passkeys and security keys (WebAuthn, R17) in the API. The options a
// ceremony starts with are the relying party's JSON ({"publicKey":…}) as
// they are; the browser's answers come back as JSON objects.

type passkeyJSON struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

func toPasskeyJSON(p sqlstore.Passkey) passkeyJSON {
	j := passkeyJSON{ID: p.ID, Name: p.Name, CreatedAt: p.CreatedAt}
	if !p.LastUsedAt.IsZero() {
		t := p.LastUsedAt
		j.LastUsedAt = &t
	}
	return j
}

// writeOptions answers a ceremony's options, which the store made as JSON.
func writeOptions(w http.ResponseWriter, options []byte) {
	writeJSON(w, http.StatusOK, json.RawMessage(options))
}

type passkeysAnswer struct {
	Passkeys []passkeyJSON `json:"passkeys"`
}

func handleListPasskeys(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		ps, err := store.FindPasskeys(r.Context(), st.org.ID, st.actor)
		if err != nil {
			return err
		}
		out := passkeysAnswer{Passkeys: []passkeyJSON{}}
		for _, p := range ps {
			out.Passkeys = append(out.Passkeys, toPasskeyJSON(p))
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

// handleBeginPasskeyRegistration answers the options for
// navigator.credentials.create (fresh authentication needed).
func handleBeginPasskeyRegistration(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		options, err := store.BeginPasskeyRegistration(r.Context(), st.org.ID, st.actor)
		if err != nil {
			return err
		}
		writeOptions(w, options)
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
func handleFinishPasskeyRegistration(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in passkeyRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		if len(in.Credential) == 0 || in.Credential[0] != '{' {
			return kluis.Invalid(map[string]string{"credential": "must be the browser's answer, an object"})
		}
		st := state(r)
		p, codes, err := store.FinishPasskeyRegistration(r.Context(), st.org.ID, st.actor, in.Name, in.Credential)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, passkeyAnswer{Passkey: toPasskeyJSON(p), RecoveryCodes: codes})
		return nil
	}
}

func handleDeletePasskey(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		if err := store.DeletePasskey(r.Context(), st.org.ID, st.actor, r.PathValue("id")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

type challengeRequest struct {
	Challenge string `json:"challenge"`
}

// handleBeginPasskeyLogin answers the options for navigator.credentials.get
// for the second step of a login.
func handleBeginPasskeyLogin(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in challengeRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		options, err := store.BeginPasskeyLogin(r.Context(), state(r).org.ID, in.Challenge)
		if err != nil {
			return err
		}
		writeOptions(w, options)
		return nil
	}
}

// handleBeginPasskeyReauth answers the options for navigator.credentials.get
// for a re-authentication.
func handleBeginPasskeyReauth(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		options, err := store.BeginPasskeyReauth(r.Context(), st.org.ID, st.actor)
		if err != nil {
			return err
		}
		writeOptions(w, options)
		return nil
	}
}

// answerCode is the code a store method checks: a WebAuthn assertion as
// its JSON, any other method's code as typed.
func answerCode(method, code string, assertion json.RawMessage) (string, error) {
	if method != "webauthn" {
		return code, nil
	}
	if len(assertion) == 0 || assertion[0] != '{' {
		return "", kluis.Invalid(map[string]string{"assertion": "must be the browser's answer, an object"})
	}
	return string(assertion), nil
}
