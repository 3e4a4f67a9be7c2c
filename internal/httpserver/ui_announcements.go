package httpserver

import (
	"net/http"

	"github.com/kluis/kluis"
)

// The operator admin's maintenance announcements (issue 15, R3, R40, R45):
// a form with a title and a text, sent to everyone who opted in.

type announcementsPage struct {
	Sent      bool
	Reached   int
	BodyField inputData
}

func showAnnouncements(w http.ResponseWriter, r *http.Request, p *pageData, status int) error {
	if !kluis.CanAnnounce(state(r).actor) {
		return kluis.ErrForbidden
	}
	p.title("announce.title")
	d, _ := p.Data.(announcementsPage)
	d.BodyField = p.Input("body", "textarea", "off")
	p.Data = d
	return renderPage(w, r, p, status, "announcements")
}

// handleAnnouncementsPage shows the form.
func handleAnnouncementsPage() pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		return showAnnouncements(w, r, p, http.StatusOK)
	}
}

// handleAnnouncementForm sends the announcement and shows how many people
// it reached (a count, never who).
func handleAnnouncementForm(announcements kluis.AnnouncementService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		n, err := announcements.SendAnnouncement(r.Context(), state(r).actor, kluis.Announcement{Title: form.Get("title"), Body: form.Get("body")})
		if err != nil {
			if !p.showError(err) {
				return err
			}
			p.Form = form
			return showAnnouncements(w, r, p, http.StatusBadRequest)
		}
		p.Data = announcementsPage{Sent: true, Reached: n}
		return showAnnouncements(w, r, p, http.StatusOK)
	}
}
