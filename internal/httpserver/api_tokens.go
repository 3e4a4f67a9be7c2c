package httpserver

import (
	"net/http"
	"strings"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Personal API tokens and the e-mail address change (R14, R45): the API
// handlers, and the part of authentication that knows tokens.

// authenticateOrg resolves an organisation credential for org: a session
// token (bearer or cookie) or a personal API token. A personal API token
// counts only in the Authorization header, never as a cookie, so a page can
// never run on one. A read-only token on a request that may change state is
// refused (and recorded) once the organisation is known to be the URL's.
func (s *server) authenticateOrg(r *http.Request, credential string) (kluis.Actor, kluis.User, kluis.Org, error) {
	if !sqlstore.IsAPIToken(credential) {
		return s.store.AuthenticateOrg(r.Context(), credential)
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		return kluis.Actor{}, kluis.User{}, kluis.Org{}, kluis.ErrUnauthenticated
	}
	actor, user, org, err := s.store.AuthenticateAPIToken(r.Context(), credential)
	if kluis.ErrorCode(err) == kluis.EMFAEnrolmentRequired && org.Slug != r.PathValue("org") {
		return actor, user, org, kluis.ErrNotFound // another organisation's token: R1 first
	}
	write := r.Method != http.MethodGet && r.Method != http.MethodHead
	if err == nil && org.Slug == r.PathValue("org") && !kluis.AllowedByScope(actor, write) {
		return actor, user, org, s.store.RefuseTokenScope(r.Context(), org.ID, actor)
	}
	return actor, user, org, err
}

// errSessionOnly refuses a personal API token on a route that needs a
// person in a session: credentials, factors, tokens, the e-mail address,
// re-authentication and sessions.
var errSessionOnly = kluis.Errorf(kluis.EForbidden, "an API token cannot do this; sign in")

// orgSession is orgUser for routes that need a session: a personal API
// token, whatever its scope, gets forbidden. The store methods behind them
// refuse tokens too (a token is never a fresh authentication); this makes
// the route table say so.
func (s *server) orgSession(next handlerFunc) http.Handler {
	return s.orgUser(func(w http.ResponseWriter, r *http.Request) error {
		if state(r).actor.ViaToken() {
			return errSessionOnly
		}
		return next(w, r)
	})
}

type tokenJSON struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Scope      string     `json:"scope"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

func toTokenJSON(t sqlstore.APIToken) tokenJSON {
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
func handleListTokens(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		list, err := store.FindAPITokens(r.Context(), st.org.ID, st.actor)
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
func handleCreateToken(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in tokenRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		tok, secret, err := store.CreateAPIToken(r.Context(), st.org.ID, st.actor, kluis.TokenInput{Name: in.Name, Scope: kluis.TokenScope(in.Scope), ExpiresAt: in.ExpiresAt})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, tokenCreated{Token: toTokenJSON(tok), Secret: secret})
		return nil
	}
}

// handleRevokeToken ends one of the caller's tokens.
func handleRevokeToken(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		if err := store.RevokeAPIToken(r.Context(), st.org.ID, st.actor, kluis.TokenID(r.PathValue("id"))); err != nil {
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
func handleRequestEmailChange(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in emailChangeRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		if err := store.RequestEmailChange(r.Context(), st.org.ID, st.actor, in.Email); err != nil {
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
func handleConfirmEmailChange(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in emailChangeConfirm
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		if err := store.ConfirmEmailChange(r.Context(), st.org.ID, st.actor, in.Token); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}
