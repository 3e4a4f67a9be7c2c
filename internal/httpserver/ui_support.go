package httpserver

import (
	"net/http"
	"strconv"
	"time"

	"github.com/kluis/kluis"
)

// Pages of support access by consent (R22): the managers' support page
// (grants with every use, support's requests, letting support in), the
// operator's support page of an organisation (asking, opening a session),
// and the operator admins' list of operators (R8).

// supportView is what the managers' support page reads.
type supportView struct {
	support  kluis.SupportService
	projects kluis.ProjectService
	users    kluis.UserService
}

type supportPage struct {
	Grants   []kluis.SupportGrant
	Requests []kluis.SupportRequest
	// Scopes are what the manager may let support into: the organisation
	// and the projects they hold the grant right on.
	Scopes []option
	// Names are the organisation's people by audit name, to show who
	// granted and approved.
	Names map[string]string
	Me    string
}

func (v supportView) show(w http.ResponseWriter, r *http.Request, p *pageData, status int) error {
	st := state(r)
	ctx := r.Context()
	grants, requests, err := v.support.SupportGrants(ctx, st.org.ID, st.actor)
	if err != nil {
		return err
	}
	data := supportPage{Grants: grants, Requests: requests, Names: map[string]string{}, Me: st.actor.AuditName()}
	people, err := v.users.FindUsers(ctx, st.org.ID, st.actor)
	if err != nil {
		return err
	}
	for _, u := range people {
		data.Names["user:"+string(u.ID)] = u.Name
	}
	data.Scopes = []option{{Value: string(kluis.SupportOrgScope), Label: p.L.T("support.scope_org")}}
	projects, err := v.projects.FindProjects(ctx, st.org.ID, st.actor, kluis.ProjectFilter{Limit: 200})
	if err != nil {
		return err
	}
	for _, pr := range projects {
		if pr.Rights.Has(kluis.RightGrant) {
			data.Scopes = append(data.Scopes, option{Value: string(kluis.SupportProjectScope(pr.ID)), Label: p.L.T("support.scope_project", pr.Name)})
		}
	}
	p.title("support.title")
	p.Wide = true
	if p.Form.Get("days") == "" {
		p.Form.Set("days", "1")
	}
	p.Data = data
	return renderPage(w, r, p, status, "support")
}

func handleSupportPage(v supportView) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		return v.show(w, r, p, http.StatusOK)
	}
}

// supportEnd is the end of a grant a form asks for: in whole days from
// now, 1 to 14.
func supportEnd(days string, now time.Time) time.Time {
	n, err := strconv.Atoi(days)
	if err != nil || n < 1 {
		return time.Time{}
	}
	return now.Add(time.Duration(n) * 24 * time.Hour)
}

// supportForm runs one of the support page's forms: a fresh
// authentication first when the service asks for one, the service's
// input errors shown on the page.
func (v supportView) supportForm(w http.ResponseWriter, r *http.Request, p *pageData, form map[string][]string, notice string, act func() error) error {
	err := act()
	switch {
	case kluis.ErrorCode(err) == kluis.EReauthRequired:
		return redirect(w, r, state(r).realm.Account+"/reauth", "reauth_first")
	case err != nil:
		if !p.showError(err) {
			return err
		}
		p.Form = form
		return v.show(w, r, p, http.StatusBadRequest)
	}
	return redirect(w, r, "/o/"+p.Org.Slug+"/support", notice)
}

func handleGrantSupportForm(v supportView) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		return v.supportForm(w, r, p, form, "support_granted", func() error {
			_, err := v.support.GrantSupport(r.Context(), st.org.ID, st.actor, kluis.SupportGrantInput{
				Scope: kluis.SupportScope(form.Get("scope")), Right: kluis.SupportRight(form.Get("right")),
				Reason: form.Get("reason"), ExpiresAt: supportEnd(form.Get("days"), time.Now()),
			})
			return err
		})
	}
}

func handleRevokeSupportForm(v supportView) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		if err := v.support.RevokeSupportGrant(r.Context(), st.org.ID, st.actor, kluis.SupportGrantID(r.PathValue("id"))); err != nil {
			return err
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/support", "support_revoked")
	}
}

func handleApproveSupportGrantForm(v supportView) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		return v.supportForm(w, r, p, nil, "support_approved", func() error {
			_, err := v.support.ApproveSupportGrant(r.Context(), st.org.ID, st.actor, kluis.SupportGrantID(r.PathValue("id")))
			return err
		})
	}
}

func handleDecideSupportRequestForm(v supportView, approve bool) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		id := kluis.SupportRequestID(r.PathValue("id"))
		if !approve {
			return v.supportForm(w, r, p, form, "support_refused", func() error {
				return v.support.RefuseSupportRequest(r.Context(), st.org.ID, st.actor, id)
			})
		}
		return v.supportForm(w, r, p, form, "support_approved", func() error {
			_, err := v.support.ApproveSupportRequest(r.Context(), st.org.ID, st.actor, id, supportEnd(form.Get("days"), time.Now()))
			return err
		})
	}
}

// handleEndSupportForm ends a support session: back to the operator's
// support page of the organisation.
func handleEndSupportForm(support kluis.SupportService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		if st.actor.Support == nil {
			return errNotForSupport
		}
		if err := support.EndSupportSession(r.Context(), st.actor); err != nil {
			return err
		}
		http.SetCookie(w, clearCookie(supportCookie))
		return redirect(w, r, "/operator/orgs/"+p.Org.Slug+"/support", "support_ended")
	}
}

// The operator's side.

type operatorSupportPage struct {
	Slug     string
	Grants   []kluis.SupportGrant
	Requests []kluis.SupportRequest
}

func showOperatorSupport(w http.ResponseWriter, r *http.Request, p *pageData, support kluis.SupportService, status int) error {
	slug := r.PathValue("org")
	grants, requests, err := support.OperatorSupportGrants(r.Context(), state(r).actor, slug)
	if err != nil {
		return err
	}
	p.title("operator_support.title", slug)
	p.Wide = true
	if p.Form.Get("scope") == "" {
		p.Form.Set("scope", string(kluis.SupportOrgScope))
	}
	p.Data = operatorSupportPage{Slug: slug, Grants: grants, Requests: requests}
	return renderPage(w, r, p, status, "operator_support")
}

func handleOperatorSupportPage(support kluis.SupportService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		return showOperatorSupport(w, r, p, support, http.StatusOK)
	}
}

func handleRequestSupportForm(support kluis.SupportService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		slug := r.PathValue("org")
		if _, err := support.RequestSupport(r.Context(), state(r).actor, slug, kluis.SupportScope(form.Get("scope")),
			kluis.SupportRight(form.Get("right")), form.Get("reason")); err != nil {
			if !p.showError(err) {
				return err
			}
			p.Form = form
			return showOperatorSupport(w, r, p, support, http.StatusBadRequest)
		}
		return redirect(w, r, "/operator/orgs/"+slug+"/support", "support_requested")
	}
}

// handleOpenSupportForm opens a support session and gives the browser its
// cookie: the organisation's pages then open with the grant's rights,
// under the support banner.
func handleOpenSupportForm(support kluis.SupportService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		slug := r.PathValue("org")
		sess, err := support.OpenSupportSession(r.Context(), state(r).actor, slug, kluis.SupportGrantID(form.Get("grant")))
		if err != nil {
			return err
		}
		http.SetCookie(w, &http.Cookie{Name: supportCookie, Value: sess.Token, Path: "/", Expires: sess.ExpiresAt,
			Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		return redirect(w, r, "/o/"+slug+"/projects", "")
	}
}

type operatorsPage struct {
	Operators []kluis.OperatorInfo
}

// handleOperatorsPage lists the operators with role and last sign-in
// (operator admins, R8).
func handleOperatorsPage(operators kluis.OperatorService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		list, err := operators.FindOperators(r.Context(), state(r).actor)
		if err != nil {
			return err
		}
		p.title("operators.title")
		p.Data = operatorsPage{Operators: list}
		return renderPage(w, r, p, http.StatusOK, "operators")
	}
}
