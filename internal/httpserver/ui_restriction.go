package httpserver

import (
	"net/http"

	"github.com/kluis/kluis"
)

// Restriction of processing on the pages (issue 15, R34): the person on My
// account, a manager on the person's page.

// handleRestrictionForm restricts or lifts the restriction of the caller
// (self) or of the person of the path, and goes back to the page it came
// from. A refusal is shown as the error page.
func handleRestrictionForm(restrictions kluis.RestrictionService, self, restrict bool) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		if _, err := formValues(r); err != nil {
			return err
		}
		st := state(r)
		id, back := st.actor.UserID, "/o/"+p.Org.Slug+"/account"
		if !self {
			id = userID(r)
			back = "/o/" + p.Org.Slug + "/users/" + string(id)
		}
		do := restrictions.LiftRestriction
		if restrict {
			do = restrictions.RestrictProcessing
		}
		if err := do(r.Context(), st.org.ID, st.actor, id); err != nil {
			return err
		}
		if restrict {
			return redirect(w, r, back, "restricted")
		}
		return redirect(w, r, back, "restriction_lifted")
	}
}
