package httpserver

import (
	"net/http"

	"github.com/kluis/kluis"
)

// Restriction of processing (issue 15, R34) and the operator's maintenance
// announcements (R3, R40, R45).

// handleRestriction restricts (restrict) or lifts the restriction of the
// caller (self) or of the person of the path's {id} → 204.
func handleRestriction(restrictions kluis.RestrictionService, self, restrict bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		id := st.actor.UserID
		if !self {
			id = userID(r)
		}
		do := restrictions.LiftRestriction
		if restrict {
			do = restrictions.RestrictProcessing
		}
		if err := do(r.Context(), st.org.ID, st.actor, id); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

type announcementRequest struct {
	Title string `json:"title"`
	Body  string `json:"body"`
}

type announcementAnswer struct {
	Recipients int `json:"recipients"`
}

// handleSendAnnouncement posts a maintenance announcement to everyone who
// opted in → 200 {recipients}: a count, never who.
func handleSendAnnouncement(announcements kluis.AnnouncementService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in announcementRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		n, err := announcements.SendAnnouncement(r.Context(), state(r).actor, kluis.Announcement{Title: in.Title, Body: in.Body})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, announcementAnswer{Recipients: n})
		return nil
	}
}
