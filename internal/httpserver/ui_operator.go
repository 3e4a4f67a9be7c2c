package httpserver

import (
	"net/http"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Pages for operator staff: organisations only. Operators have no page, as
// no route, to an organisation's users or log (R22).

type orgsPage struct {
	Orgs []kluis.Org
	// LoginsStopped: every login of the instance is stopped (R19).
	LoginsStopped bool
}

func showOrgs(w http.ResponseWriter, r *http.Request, p *pageData, store *sqlstore.Store, status int) error {
	orgs, err := store.FindOrgs(r.Context(), state(r).actor)
	if err != nil {
		return err
	}
	stopped, _, err := store.InstanceLoginsStopped(r.Context(), state(r).actor)
	if err != nil {
		return err
	}
	p.title("orgs.title")
	p.Data = orgsPage{Orgs: orgs, LoginsStopped: stopped}
	return renderPage(w, r, p, status, "orgs")
}

func handleOrgsPage(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		p.Form.Set("language", string(p.L.Lang))
		return showOrgs(w, r, p, store, http.StatusOK)
	}
}

// handleCreateOrgForm creates an organisation and mails its manager an
// invitation. The link is not shown: it is the manager's, not the
// operator's.
func handleCreateOrgForm(store *sqlstore.Store) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		in := sqlstore.NewOrg{Slug: form.Get("slug"), Name: form.Get("name"), Language: form.Get("language"),
			ManagerEmail: form.Get("manager_email"), ManagerName: form.Get("manager_name")}
		if _, _, err := store.CreateOrg(r.Context(), state(r).actor, in); err != nil {
			if !p.showError(err) {
				return err
			}
			p.Form = form
			return showOrgs(w, r, p, store, http.StatusBadRequest)
		}
		return redirect(w, r, "/operator", "org_created")
	}
}
