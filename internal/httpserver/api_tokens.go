package httpserver

import (
	"net/http"
	"time"

	"github.com/kluis/kluis"
)

// Personal API tokens and the e-mail address change (R14, R45) in the API.

type tokenJSON struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Scope      string     `json:"scope"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

func toTokenJSON(t kluis.APIToken) tokenJSON {
	j := tokenJSON{ID: string(t.ID), Name: t.Name, Scope: string(t.Scope), CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt}
	if !t.LastUsedAt.IsZero() {
		u := t.LastUsedAt
		j.LastUsedAt = &u
	}
	return j
}

type tokensAnswer struct {
	Tokens []tokenJSON `json:"tokens"`
}

type tokenRequest struct {
	Name      string    `json:"name"`
	Scope     string    `json:"scope"`
	ExpiresAt time.Time `json:"expires_at"`
}

// tokenCreated is the one answer that carries a token's secret.
type tokenCreated struct {
	Token  tokenJSON `json:"token"`
	Secret string    `json:"secret"`
}

// handleListTokens lists the caller's live tokens, never their secrets.
func handleListTokens(tokens kluis.TokenService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		list, err := tokens.FindAPITokens(r.Context(), st.org.ID, st.actor)
		if err != nil {
			return err
		}
		out := tokensAnswer{Tokens: make([]tokenJSON, 0, len(list))}
		for _, t := range list {
			out.Tokens = append(out.Tokens, toTokenJSON(t))
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

// handleCreateToken makes a token: 201 with its secret, shown this once.
func handleCreateToken(tokens kluis.TokenService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in tokenRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		tok, secret, err := tokens.CreateAPIToken(r.Context(), st.org.ID, st.actor, kluis.TokenInput{Name: in.Name, Scope: kluis.TokenScope(in.Scope), ExpiresAt: in.ExpiresAt})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, tokenCreated{Token: toTokenJSON(tok), Secret: secret})
		return nil
	}
}

// handleRevokeToken ends one of the caller's tokens.
func handleRevokeToken(tokens kluis.TokenService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		if err := tokens.RevokeAPIToken(r.Context(), st.org.ID, st.actor, kluis.TokenID(r.PathValue("id"))); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

type emailChangeRequest struct {
	Email string `json:"email"`
}

// handleRequestEmailChange answers 202 {} and mails the link to the new
// address; the same whether or not the address is someone else's.
func handleRequestEmailChange(accounts kluis.AccountService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in emailChangeRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		if err := accounts.RequestEmailChange(r.Context(), st.org.ID, st.actor, in.Email); err != nil {
			return err
		}
		writeJSON(w, http.StatusAccepted, struct{}{})
		return nil
	}
}

type emailChangeConfirm struct {
	Token string `json:"token"`
}

// handleConfirmEmailChange confirms a new address with the mailed link's
// token, in a session of the person who asked.
func handleConfirmEmailChange(accounts kluis.AccountService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in emailChangeConfirm
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		if err := accounts.ConfirmEmailChange(r.Context(), st.org.ID, st.actor, in.Token); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}
