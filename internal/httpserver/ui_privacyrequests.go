package httpserver

import (
	"maps"
	"net/http"
	"slices"

	"github.com/kluis/kluis"
)

// The privacy pages (issue 15, R34): the organisation's privacy page that
// tells its people their rights (every signed-in person; its managers
// also edit what it says), a person's own requests with the form to file
// one, and the managers' register where requests are handled.

type privacyPage struct {
	Settings kluis.PrivacySettings
}

func showPrivacy(w http.ResponseWriter, r *http.Request, p *pageData, privacy kluis.PrivacyRequestService, status int) error {
	st := state(r)
	s, err := privacy.FindPrivacySettings(r.Context(), st.org.ID, st.actor)
	if err != nil {
		return err
	}
	if p.Form.Get("authority_name") == "" && p.Fields == nil {
		p.Form.Set("contact", s.Contact)
		p.Form.Set("authority_name", s.AuthorityName)
		p.Form.Set("authority_url", s.AuthorityURL)
	}
	p.title("privacy.title")
	p.Data = privacyPage{Settings: s}
	return renderPage(w, r, p, status, "privacy")
}

// handlePrivacyPage shows the organisation's privacy page.
func handlePrivacyPage(privacy kluis.PrivacyRequestService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		return showPrivacy(w, r, p, privacy, http.StatusOK)
	}
}

// handlePrivacySettingsForm is the managers' change of what the privacy
// page says.
func handlePrivacySettingsForm(privacy kluis.PrivacyRequestService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		_, err = privacy.UpdatePrivacySettings(r.Context(), st.org.ID, st.actor, kluis.PrivacySettings{
			Contact: form.Get("contact"), AuthorityName: form.Get("authority_name"), AuthorityURL: form.Get("authority_url"),
		})
		if kluis.ErrorCode(err) == kluis.EInvalid {
			p.showError(err)
			p.Form = form
			return showPrivacy(w, r, p, privacy, http.StatusBadRequest)
		}
		if err != nil {
			return err
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/privacy", "privacy_saved")
	}
}

type requestsPage struct {
	Requests []kluis.PrivacyRequest
	Types    []string
	// Register pages only: the filter shown and its choices.
	Show     string
	Shows    []string
	Statuses []string
}

func requestTypes() []string {
	var out []string
	for _, t := range kluis.PrivacyRequestTypes {
		out = append(out, string(t))
	}
	return out
}

func showMyRequests(w http.ResponseWriter, r *http.Request, p *pageData, privacy kluis.PrivacyRequestService, status int) error {
	st := state(r)
	list, err := privacy.FindPrivacyRequests(r.Context(), st.org.ID, st.actor, true)
	if err != nil {
		return err
	}
	p.title("dsr.my.title")
	p.Data = requestsPage{Requests: list, Types: requestTypes()}
	return renderPage(w, r, p, status, "privacy_requests")
}

// handleMyRequestsPage lists the person's own requests with the form to
// file one.
func handleMyRequestsPage(privacy kluis.PrivacyRequestService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		return showMyRequests(w, r, p, privacy, http.StatusOK)
	}
}

// handleFileRequestForm files one of the person's own requests.
func handleFileRequestForm(privacy kluis.PrivacyRequestService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		_, err = privacy.FilePrivacyRequest(r.Context(), st.org.ID, st.actor, kluis.PrivacyRequestInput{Type: kluis.PrivacyRequestType(form.Get("type"))})
		if code := kluis.ErrorCode(err); code == kluis.EInvalid || code == kluis.EConflict {
			p.showError(err)
			p.Form = form
			return showMyRequests(w, r, p, privacy, errorStatus(code))
		}
		if err != nil {
			return err
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/privacy/requests", "dsr_filed")
	}
}

// The register's filters.
var registerShows = []string{"open", "overdue", "all"}

func showRegister(w http.ResponseWriter, r *http.Request, p *pageData, privacy kluis.PrivacyRequestService, status int) error {
	st := state(r)
	if !kluis.CanHandlePrivacyRequests(st.actor, st.org.ID) {
		return kluis.ErrForbidden
	}
	show := r.URL.Query().Get("show")
	if show == "" {
		show = "open"
	}
	list, err := privacy.FindPrivacyRequests(r.Context(), st.org.ID, st.actor, false)
	if err != nil {
		return err
	}
	var shown []kluis.PrivacyRequest
	for _, q := range list {
		switch {
		case show == "open" && q.Status.Closed(), show == "overdue" && !q.Overdue:
			continue
		}
		shown = append(shown, q)
	}
	var statuses []string
	for _, s := range kluis.PrivacyRequestStatuses {
		statuses = append(statuses, string(s))
	}
	p.title("dsr.register.title")
	p.Wide = true
	p.Data = requestsPage{Requests: shown, Types: requestTypes(), Show: show, Shows: registerShows, Statuses: statuses}
	return renderPage(w, r, p, status, "privacy_register")
}

// handleRegisterPage is the managers' register: open requests first by
// default, or the overdue ones, or all.
func handleRegisterPage(privacy kluis.PrivacyRequestService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		return showRegister(w, r, p, privacy, http.StatusOK)
	}
}

// handleUpdateRequestForm is a manager's handling of one request: its
// status and outcome; the manager becomes its handler.
func handleUpdateRequestForm(privacy kluis.PrivacyRequestService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		status := kluis.PrivacyRequestStatus(form.Get("status"))
		outcome := form.Get("outcome")
		u := kluis.PrivacyRequestUpdate{Status: &status, Outcome: &outcome}
		switch form.Get("extend_months") {
		case "":
		case "1", "2":
			n := int(form.Get("extend_months")[0] - '0')
			u.ExtendMonths = &n
		default:
			n := -1 // refused by the service, as the API's would be
			u.ExtendMonths = &n
		}
		_, err = privacy.UpdatePrivacyRequest(r.Context(), st.org.ID, st.actor, kluis.PrivacyRequestID(r.PathValue("id")), u)
		if kluis.ErrorCode(err) == kluis.EInvalid {
			p.showError(err)
			// The register holds a form per request: the problem goes
			// above them all, in words.
			for _, name := range slices.Sorted(maps.Keys(p.Fields)) {
				p.Error += " " + p.L.T("field."+name) + ": " + p.Fields[name]
			}
			return showRegister(w, r, p, privacy, http.StatusBadRequest)
		}
		if err != nil {
			return err
		}
		back := "/o/" + p.Org.Slug + "/privacy/register"
		if show := form.Get("show"); show == "overdue" || show == "all" {
			back += "?show=" + show
		}
		return redirect(w, r, back, "dsr_updated")
	}
}
