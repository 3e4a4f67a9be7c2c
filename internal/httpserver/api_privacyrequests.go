package httpserver

import (
	"net/http"
	"time"

	"github.com/kluis/kluis"
)

// The register of data-subject requests and the privacy settings (issue
// 15, R34) in the API.

type privacyRequestJSON struct {
	ID          string    `json:"id"`
	Type        string    `json:"type"`
	Subject     string    `json:"subject"`
	SubjectName *string   `json:"subject_name"`
	ReceivedAt  time.Time `json:"received_at"`
	DueAt       time.Time `json:"due_at"`
	Overdue     bool      `json:"overdue"`
	Status      string    `json:"status"`
	Handler     *string   `json:"handler"`
	HandlerName *string   `json:"handler_name"`
	Outcome     *string   `json:"outcome"`
	UpdatedAt   time.Time `json:"updated_at"`
	// ExtendedMonths is by how many months the due date was extended.
	ExtendedMonths int `json:"extended_months"`
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func toPrivacyRequestJSON(r kluis.PrivacyRequest) privacyRequestJSON {
	return privacyRequestJSON{
		ID: string(r.ID), Type: string(r.Type), Subject: string(r.Subject), SubjectName: optional(r.SubjectName),
		ReceivedAt: r.ReceivedAt, DueAt: r.DueAt, Overdue: r.Overdue, Status: string(r.Status),
		Handler: optional(string(r.Handler)), HandlerName: optional(r.HandlerName), Outcome: optional(r.Outcome), UpdatedAt: r.UpdatedAt,
		ExtendedMonths: r.ExtendedMonths,
	}
}

type privacyRequestsAnswer struct {
	Requests []privacyRequestJSON `json:"requests"`
}

type privacyRequestAnswer struct {
	Request privacyRequestJSON `json:"request"`
}

type filePrivacyRequestJSON struct {
	Type    string `json:"type"`
	Subject string `json:"subject"`
}

type updatePrivacyRequestJSON struct {
	Status       *string `json:"status"`
	Handler      *string `json:"handler"`
	Outcome      *string `json:"outcome"`
	ExtendMonths *int    `json:"extend_months"`
}

// handleListPrivacyRequests lists the register for a manager, the caller's
// own requests for anyone else (and for a manager with ?mine=true).
func handleListPrivacyRequests(privacy kluis.PrivacyRequestService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		mine := false
		switch r.URL.Query().Get("mine") {
		case "", "false":
		case "true":
			mine = true
		default:
			return kluis.Invalid(map[string]string{"mine": "must be true or false"})
		}
		list, err := privacy.FindPrivacyRequests(r.Context(), st.org.ID, st.actor, mine)
		if err != nil {
			return err
		}
		out := privacyRequestsAnswer{Requests: make([]privacyRequestJSON, 0, len(list))}
		for _, p := range list {
			out.Requests = append(out.Requests, toPrivacyRequestJSON(p))
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

// handleFilePrivacyRequest files a request: 201 with it.
func handleFilePrivacyRequest(privacy kluis.PrivacyRequestService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in filePrivacyRequestJSON
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		p, err := privacy.FilePrivacyRequest(r.Context(), st.org.ID, st.actor, kluis.PrivacyRequestInput{Type: kluis.PrivacyRequestType(in.Type), Subject: kluis.UserID(in.Subject)})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, privacyRequestAnswer{Request: toPrivacyRequestJSON(p)})
		return nil
	}
}

// handleUpdatePrivacyRequest is a manager's handling of a request.
func handleUpdatePrivacyRequest(privacy kluis.PrivacyRequestService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in updatePrivacyRequestJSON
		if err := decode(r, &in); err != nil {
			return err
		}
		var u kluis.PrivacyRequestUpdate
		if in.Status != nil {
			s := kluis.PrivacyRequestStatus(*in.Status)
			u.Status = &s
		}
		if in.Handler != nil {
			h := kluis.UserID(*in.Handler)
			u.Handler = &h
		}
		u.Outcome, u.ExtendMonths = in.Outcome, in.ExtendMonths
		st := state(r)
		p, err := privacy.UpdatePrivacyRequest(r.Context(), st.org.ID, st.actor, kluis.PrivacyRequestID(r.PathValue("id")), u)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, privacyRequestAnswer{Request: toPrivacyRequestJSON(p)})
		return nil
	}
}

type privacySettingsJSON struct {
	Contact       string `json:"contact"`
	AuthorityName string `json:"authority_name"`
	AuthorityURL  string `json:"authority_url"`
}

// handleGetPrivacySettings tells every person of the organisation its
// privacy contact and supervisory authority.
func handleGetPrivacySettings(privacy kluis.PrivacyRequestService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		s, err := privacy.FindPrivacySettings(r.Context(), st.org.ID, st.actor)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, privacySettingsJSON{Contact: s.Contact, AuthorityName: s.AuthorityName, AuthorityURL: s.AuthorityURL})
		return nil
	}
}

// handleSetPrivacySettings sets them (managers).
func handleSetPrivacySettings(privacy kluis.PrivacyRequestService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in privacySettingsJSON
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		s, err := privacy.UpdatePrivacySettings(r.Context(), st.org.ID, st.actor, kluis.PrivacySettings{Contact: in.Contact, AuthorityName: in.AuthorityName, AuthorityURL: in.AuthorityURL})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, privacySettingsJSON{Contact: s.Contact, AuthorityName: s.AuthorityName, AuthorityURL: s.AuthorityURL})
		return nil
	}
}
