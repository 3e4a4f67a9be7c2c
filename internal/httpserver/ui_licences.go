package httpserver

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kluis/kluis"
)

// Pages of licences and project activity (R13): a manager's licence page
// with the activity log, Start and Stop on a project's page, and the
// operator's page of one organisation (its licence, usage and activity
// without people).

// usageRow is one limit with what is used of it.
type usageRow struct {
	Key   string // the limit's text key
	Used  string
	Limit string // "" for no limit
	Over  bool   // used reaches or passes the limit
}

func usageRows(p *pageData, v kluis.LicenceView) []usageRow {
	l, u := v.Licence, v.Usage
	row := func(key string, used int64, limit *int64) usageRow {
		r := usageRow{Key: key, Used: strconv.FormatInt(used, 10)}
		if limit != nil {
			r.Limit, r.Over = strconv.FormatInt(*limit, 10), used >= *limit
		}
		return r
	}
	wide := func(v *int) *int64 {
		if v == nil {
			return nil
		}
		n := int64(*v)
		return &n
	}
	return []usageRow{
		row("licence.users", int64(u.Users), wide(l.MaxUsers)),
		row("licence.projects", int64(u.Projects), wide(l.MaxProjects)),
		row("licence.active_projects", int64(u.ActiveProjects), wide(l.MaxActiveProjects)),
		row("licence.storage_bytes", u.StorageBytes, l.MaxStorageBytes),
	}
}

// periodRow is one activity period as a page shows it.
type periodRow struct {
	Project string
	Who     string // empty in the operator's view
	From    time.Time
	To      *time.Time
}

type licencePage struct {
	Usage   []usageRow
	EndsAt  *time.Time // the first moment the licence no longer holds
	Timeout int
	Periods []periodRow
	Who     bool // the periods name people (the manager's view)
	Base    string
}

// licenceView is what the manager's licence page reads.
type licenceView struct {
	licences kluis.LicenceService
	projects kluis.ProjectService
	users    kluis.UserService
}

// handleLicencePage shows a manager the licence, usage against each limit
// and the activity log: who, which project, from, to.
func handleLicencePage(v licenceView) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		ctx := r.Context()
		lic, err := v.licences.GetLicence(ctx, st.org.ID, st.actor)
		if err != nil {
			return err
		}
		periods, err := v.licences.ListActivity(ctx, st.org.ID, st.actor, kluis.ActivityFilter{})
		if err != nil {
			return err
		}
		people, err := v.users.FindUsers(ctx, st.org.ID, st.actor)
		if err != nil {
			return err
		}
		names := map[kluis.UserID]string{}
		for _, u := range people {
			names[u.ID] = cmpOr(u.Name, p.L.T("project.someone"))
		}
		// Project names as far as the manager may see them (under "owners"
		// not at all): the others show their id.
		projects := map[kluis.ProjectID]string{}
		list, err := v.projects.FindProjects(ctx, st.org.ID, st.actor, kluis.ProjectFilter{Limit: kluis.MaxProjectPage})
		if err != nil {
			return err
		}
		for _, pr := range list {
			projects[pr.ID] = pr.Name
		}
		data := licencePage{Usage: usageRows(p, lic), EndsAt: lic.Licence.EndsAt, Timeout: lic.Licence.ActivityTimeoutMinutes, Who: true}
		for _, a := range periods {
			who := names[a.User]
			if who == "" {
				who = p.L.T("licence.former_user")
			}
			data.Periods = append(data.Periods, periodRow{Project: cmpOr(projects[a.Project], string(a.Project)), Who: who, From: a.From, To: a.To})
		}
		p.title("licence.title")
		p.Data = data
		return renderPage(w, r, p, http.StatusOK, "licence")
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// handleStartProjectForm starts the project (the start right).
func handleStartProjectForm(licences kluis.LicenceService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		if _, _, err := licences.StartProject(r.Context(), st.org.ID, st.actor, projectID(r)); err != nil {
			return err
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/projects/"+string(projectID(r)), "project_started")
	}
}

// handleStopProjectForm stops the project (the start right).
func handleStopProjectForm(licences kluis.LicenceService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		if err := licences.StopProject(r.Context(), st.org.ID, st.actor, projectID(r)); err != nil {
			return err
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/projects/"+string(projectID(r)), "project_stopped")
	}
}

// operatorOrgView is what the operator's page of one organisation reads.
type operatorOrgView struct {
	orgs     kluis.OrgService
	licences kluis.LicenceService
}

type operatorOrgPage struct {
	licencePage
	Org     kluis.Org
	CanEdit bool
	// Holdings links to what the backups hold for the organisation (R31).
	Holdings bool
}

// licenceForm is the licence as the operator's form holds it: an empty
// field is no limit; the end date is the last day the licence holds.
func licenceForm(l kluis.Licence) url.Values {
	f := url.Values{}
	for name, v := range map[string]*int{"max_users": l.MaxUsers, "max_projects": l.MaxProjects, "max_active_projects": l.MaxActiveProjects} {
		if v != nil {
			f.Set(name, strconv.Itoa(*v))
		}
	}
	if l.MaxStorageBytes != nil {
		f.Set("max_storage_bytes", strconv.FormatInt(*l.MaxStorageBytes, 10))
	}
	if l.EndsAt != nil {
		f.Set("ends_on", l.EndsAt.Add(-24*time.Hour).Format(time.DateOnly))
	}
	f.Set("activity_timeout_minutes", strconv.Itoa(l.ActivityTimeoutMinutes))
	return f
}

// parseLicenceForm reads the operator's form. Errors: invalid_input.
func parseLicenceForm(f url.Values) (kluis.Licence, error) {
	var l kluis.Licence
	bad := map[string]string{}
	num := func(name string) *int64 {
		s := strings.TrimSpace(f.Get(name))
		if s == "" {
			return nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			bad[name] = "must be 0 or more, or null for no limit"
			return nil
		}
		return &n
	}
	narrow := func(v *int64) *int {
		if v == nil {
			return nil
		}
		n := int(min(*v, 1<<31))
		return &n
	}
	l.MaxUsers, l.MaxProjects, l.MaxActiveProjects = narrow(num("max_users")), narrow(num("max_projects")), narrow(num("max_active_projects"))
	l.MaxStorageBytes = num("max_storage_bytes")
	if s := strings.TrimSpace(f.Get("activity_timeout_minutes")); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			bad["activity_timeout_minutes"] = "must be 1 to " + strconv.Itoa(kluis.MaxActivityTimeout)
		}
		l.ActivityTimeoutMinutes = n
	}
	if s := strings.TrimSpace(f.Get("ends_on")); s != "" {
		d, err := time.Parse(time.DateOnly, s)
		if err != nil {
			bad["ends_on"] = "must be a date"
		} else {
			end := d.Add(24 * time.Hour)
			l.EndsAt = &end
		}
	}
	if len(bad) > 0 {
		return l, kluis.Invalid(bad)
	}
	return l, nil
}

func (v operatorOrgView) show(w http.ResponseWriter, r *http.Request, p *pageData, status int) error {
	st := state(r)
	ctx := r.Context()
	org, err := v.orgs.FindOrgBySlug(ctx, r.PathValue("org"))
	if err != nil {
		return err
	}
	lic, err := v.licences.GetLicence(ctx, org.ID, st.actor)
	if err != nil {
		return err
	}
	periods, err := v.licences.ListActivityAnonymous(ctx, org.ID, st.actor, kluis.ActivityFilter{})
	if err != nil {
		return err
	}
	data := operatorOrgPage{Org: org, CanEdit: kluis.CanManageLicences(st.actor), Holdings: kluis.CanSeeBackupHoldings(st.actor, org.ID),
		licencePage: licencePage{Usage: usageRows(p, lic), EndsAt: lic.Licence.EndsAt, Timeout: lic.Licence.ActivityTimeoutMinutes, Base: "/operator/orgs/" + org.Slug}}
	for _, a := range periods {
		data.Periods = append(data.Periods, periodRow{Project: string(a.Project), From: a.From, To: a.To})
	}
	if p.Form.Get("activity_timeout_minutes") == "" {
		p.Form = licenceForm(lic.Licence)
	}
	p.Title = org.Name
	p.Data = data
	return renderPage(w, r, p, status, "operator_org")
}

// handleOperatorOrgPage shows the operator an organisation's licence, usage
// and activity without people (admins and support).
func handleOperatorOrgPage(v operatorOrgView) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		return v.show(w, r, p, http.StatusOK)
	}
}

// handleLicenceForm sets the licence (operator admins).
func handleLicenceForm(v operatorOrgView) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		org, err := v.orgs.FindOrgBySlug(r.Context(), r.PathValue("org"))
		if err != nil {
			return err
		}
		l, err := parseLicenceForm(form)
		if err == nil {
			_, err = v.licences.SetLicence(r.Context(), org.ID, state(r).actor, l)
		}
		if err != nil {
			if !p.showError(err) {
				return err
			}
			p.Form = form
			return v.show(w, r, p, http.StatusBadRequest)
		}
		return redirect(w, r, "/operator/orgs/"+org.Slug, "saved")
	}
}
