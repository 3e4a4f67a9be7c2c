package httpserver

import (
	"net/http"
	"time"

	"github.com/kluis/kluis"
)

type noticeJSON struct {
	ID    string    `json:"id"`
	Kind  string    `json:"kind"`
	At    time.Time `json:"at"`
	Read  bool      `json:"read"`
	Title string    `json:"title"`
	Body  string    `json:"body"`
}

type noticesAnswer struct {
	Notices []noticeJSON `json:"notices"`
}

// handleListNotices lists the caller's own notices (issue 13).
func handleListNotices(inbox kluis.InboxService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		list, err := inbox.FindNotices(r.Context(), st.org.ID, st.actor)
		if err != nil {
			return err
		}
		out := noticesAnswer{Notices: []noticeJSON{}}
		for _, n := range list {
			out.Notices = append(out.Notices, noticeJSON{ID: string(n.ID), Kind: n.Kind, At: n.At, Read: n.Read, Title: n.Title, Body: n.Body})
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

// handleReadNotice marks one of the caller's notices read; another
// person's is not_found.
func handleReadNotice(inbox kluis.InboxService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		if err := inbox.MarkNoticeRead(r.Context(), st.org.ID, st.actor, kluis.NoticeID(r.PathValue("id"))); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

type administratorsJSON struct {
	Managers    int            `json:"managers"`
	MaxManagers *int           `json:"max_managers"`
	Operators   map[string]int `json:"operators"`
}

// handleAdministrators tells managers how many managers and operators of
// each role there are (R8): counts only.
func handleAdministrators(users kluis.UserService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		a, err := users.CountAdministrators(r.Context(), st.org.ID, st.actor)
		if err != nil {
			return err
		}
		out := administratorsJSON{Managers: a.Managers, MaxManagers: a.MaxManagers, Operators: map[string]int{}}
		for _, role := range kluis.OperatorRoles {
			out.Operators[string(role)] = a.Operators[role]
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

type erasureJSON struct {
	Email  string `json:"email"`
	Reason string `json:"reason"`
}

// handleEraseOnRequest is the operator's erasure of one person on the
// organisation's request (R5). The address travels in the body, never in
// the URL, and is not echoed.
func handleEraseOnRequest(orgs kluis.OrgService, users kluis.UserService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in erasureJSON
		if err := decode(r, &in); err != nil {
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
		if err := users.EraseOnRequest(r.Context(), st.actor, o.ID, in.Email, in.Reason); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}
