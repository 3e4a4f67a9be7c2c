package httpserver

import (
	"net/http"

	"github.com/kluis/kluis"
)

type inboxPage struct {
	Notices []kluis.Notice
}

// handleInboxPage shows the person's own notices, newest first (issue 13).
func handleInboxPage(inbox kluis.InboxService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		list, err := inbox.FindNotices(r.Context(), st.org.ID, st.actor)
		if err != nil {
			return err
		}
		p.title("inbox.title")
		p.Data = inboxPage{Notices: list}
		return renderPage(w, r, p, http.StatusOK, "inbox")
	}
}

// handleReadNoticeForm marks one notice read and goes back to the inbox.
func handleReadNoticeForm(inbox kluis.InboxService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		if err := inbox.MarkNoticeRead(r.Context(), st.org.ID, st.actor, kluis.NoticeID(r.PathValue("id"))); err != nil {
			return err
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/inbox", "")
	}
}

type erasePage struct {
	Org kluis.Org
}

// showErase renders the operator's erasure form for an organisation.
func showErase(w http.ResponseWriter, r *http.Request, p *pageData, orgs kluis.OrgService, status int) error {
	if !kluis.CanEraseOnRequest(state(r).actor) {
		return kluis.ErrForbidden
	}
	o, err := orgs.FindOrgBySlug(r.Context(), r.PathValue("org"))
	if err != nil {
		return err
	}
	p.title("erase.title")
	p.Data = erasePage{Org: o}
	return renderPage(w, r, p, status, "erase")
}

// handleErasePage is the operator admin's form to erase one person when
// the organisation asks (R5).
func handleErasePage(orgs kluis.OrgService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		return showErase(w, r, p, orgs, http.StatusOK)
	}
}

// handleEraseForm erases the person; the address is neither shown again
// nor kept in the form after success.
func handleEraseForm(orgs kluis.OrgService, users kluis.UserService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		if !kluis.CanEraseOnRequest(st.actor) {
			return kluis.ErrForbidden
		}
		o, err := orgs.FindOrgBySlug(r.Context(), r.PathValue("org"))
		if err != nil {
			return err
		}
		if err := users.EraseOnRequest(r.Context(), st.actor, o.ID, form.Get("email"), form.Get("reason")); err != nil {
			if !p.showError(err) {
				return err
			}
			p.Form = form
			status := http.StatusBadRequest
			switch kluis.ErrorCode(err) {
			case kluis.EConflict:
				status = http.StatusConflict
			case kluis.ENotFound:
				status = http.StatusNotFound
			}
			return showErase(w, r, p, orgs, status)
		}
		return redirect(w, r, "/operator", "erased")
	}
}
