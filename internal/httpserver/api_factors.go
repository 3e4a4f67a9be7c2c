package httpserver

import (
	"net/http"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

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
func handleResetFactors(store *sqlstore.Store) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		if err := store.ResetFactors(r.Context(), st.org.ID, st.actor, userID(r)); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// handleResetFactorsForm is the user page's reset.
func handleResetFactorsForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		id := userID(r)
		err := store.ResetFactors(r.Context(), st.org.ID, st.actor, id)
		if kluis.ErrorCode(err) == kluis.EReauthRequired {
			return redirect(w, r, "/o/"+p.Org.Slug+"/account/reauth", "reauth_first")
		}
		if err != nil {
			return err
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/users/"+string(id), "factors_reset")
	}
}
