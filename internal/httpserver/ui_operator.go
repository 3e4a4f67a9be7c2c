package httpserver

import (
	"net/http"

	"github.com/kluis/kluis"
)

// Pages for operator staff: organisations only. Operators have no page, as
// no route, to an organisation's users or log (R22). Their sign-in and
// account pages are the users' handlers in the operator's realm.

type orgsPage struct {
	Orgs []kluis.Org
	// LoginsStopped: every login of the instance is stopped (R19).
	LoginsStopped bool
}

func showOrgs(w http.ResponseWriter, r *http.Request, p *pageData, orgs kluis.OrgService, logins kluis.LoginsService, status int) error {
	list, err := orgs.FindOrgs(r.Context(), state(r).actor)
	if err != nil {
		return err
	}
	stopped, _, err := logins.InstanceLoginsStopped(r.Context(), state(r).actor)
	if err != nil {
		return err
	}
	p.title("orgs.title")
	p.Data = orgsPage{Orgs: list, LoginsStopped: stopped}
	return renderPage(w, r, p, status, "orgs")
}

func handleOrgsPage(orgs kluis.OrgService, logins kluis.LoginsService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		p.Form.Set("language", string(p.L.Lang))
		return showOrgs(w, r, p, orgs, logins, http.StatusOK)
	}
}

// handleCreateOrgForm creates an organisation and mails its manager an
// invitation. The link is not shown: it is the manager's, not the
// operator's.
func handleCreateOrgForm(orgs kluis.OrgService, logins kluis.LoginsService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		in := kluis.NewOrg{Slug: form.Get("slug"), Name: form.Get("name"), Language: form.Get("language"),
			ManagerEmail: form.Get("manager_email"), ManagerName: form.Get("manager_name")}
		if _, _, err := orgs.CreateOrg(r.Context(), state(r).actor, in); err != nil {
			if !p.showError(err) {
				return err
			}
			p.Form = form
			return showOrgs(w, r, p, orgs, logins, http.StatusBadRequest)
		}
		return redirect(w, r, "/operator", "org_created")
	}
}

// handleInstanceLoginsForm stops or resumes every login of the instance
// (R19); stopping asks for a fresh authentication first.
func handleInstanceLoginsForm(logins kluis.LoginsService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		enabled, err := loginsSwitch(r)
		if err != nil {
			return err
		}
		_, err = logins.SetInstanceLogins(r.Context(), state(r).actor, enabled)
		if kluis.ErrorCode(err) == kluis.EReauthRequired {
			return redirect(w, r, "/operator/account/reauth", "reauth_first")
		}
		if err != nil {
			return err
		}
		notice := "instance_logins_stopped"
		if enabled {
			notice = "logins_resumed"
		}
		return redirect(w, r, "/operator", notice)
	}
}

// loginsSwitch reads the form of a logins switch (R19): enabled true or
// false.
func loginsSwitch(r *http.Request) (bool, error) {
	form, err := formValues(r)
	if err != nil {
		return false, err
	}
	switch form.Get("enabled") {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, kluis.Errorf(kluis.EInvalid, "the form could not be read")
}
