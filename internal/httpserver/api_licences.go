package httpserver

import (
	"net/http"
	"time"

	"github.com/kluis/kluis"
)

// Licences and project activity in the API (R13). The licence's path
// serves both realms (orgOrOperator): the organisation's managers, and the
// operator's admins and support; the service decides with the rules.

type licenceJSON struct {
	MaxUsers               *int       `json:"max_users"`
	MaxProjects            *int       `json:"max_projects"`
	MaxActiveProjects      *int       `json:"max_active_projects"`
	MaxStorageBytes        *int64     `json:"max_storage_bytes"`
	EndsAt                 *time.Time `json:"ends_at"`
	ActivityTimeoutMinutes int        `json:"activity_timeout_minutes"`
}

type licenceUsageJSON struct {
	Users          int   `json:"users"`
	Projects       int   `json:"projects"`
	ActiveProjects int   `json:"active_projects"`
	StorageBytes   int64 `json:"storage_bytes"`
}

type licenceAnswer struct {
	licenceJSON
	Usage licenceUsageJSON `json:"usage"`
}

func toLicenceAnswer(v kluis.LicenceView) licenceAnswer {
	l, u := v.Licence, v.Usage
	return licenceAnswer{
		licenceJSON: licenceJSON{MaxUsers: l.MaxUsers, MaxProjects: l.MaxProjects, MaxActiveProjects: l.MaxActiveProjects,
			MaxStorageBytes: l.MaxStorageBytes, EndsAt: l.EndsAt, ActivityTimeoutMinutes: l.ActivityTimeoutMinutes},
		Usage: licenceUsageJSON{Users: u.Users, Projects: u.Projects, ActiveProjects: u.ActiveProjects, StorageBytes: u.StorageBytes},
	}
}

func handleGetLicence(licences kluis.LicenceService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		v, err := licences.GetLicence(r.Context(), st.org.ID, st.actor)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, toLicenceAnswer(v))
		return nil
	}
}

// handleSetLicence replaces the licence: a field left out is null (no
// limit), a timeout left out is the default.
func handleSetLicence(licences kluis.LicenceService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in licenceJSON
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		v, err := licences.SetLicence(r.Context(), st.org.ID, st.actor, kluis.Licence{
			MaxUsers: in.MaxUsers, MaxProjects: in.MaxProjects, MaxActiveProjects: in.MaxActiveProjects,
			MaxStorageBytes: in.MaxStorageBytes, EndsAt: in.EndsAt, ActivityTimeoutMinutes: in.ActivityTimeoutMinutes,
		})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, toLicenceAnswer(v))
		return nil
	}
}

type activityJSON struct {
	ID        string    `json:"id"`
	Project   string    `json:"project"`
	StartedAt time.Time `json:"started_at"`
}

type activityAnswer struct {
	Activity activityJSON `json:"activity"`
}

// handleStartProject opens an activity period: 201, or 200 with the
// caller's period that already runs.
func handleStartProject(licences kluis.LicenceService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		p, started, err := licences.StartProject(r.Context(), st.org.ID, st.actor, projectID(r))
		if err != nil {
			return err
		}
		status := http.StatusOK
		if started {
			status = http.StatusCreated
		}
		writeJSON(w, status, activityAnswer{activityJSON{ID: string(p.ID), Project: string(p.Project), StartedAt: p.From}})
		return nil
	}
}

func handleStopProject(licences kluis.LicenceService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		if err := licences.StopProject(r.Context(), st.org.ID, st.actor, projectID(r)); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

type periodJSON struct {
	Project string     `json:"project"`
	User    string     `json:"user"`
	From    time.Time  `json:"from"`
	To      *time.Time `json:"to"`
}

type anonPeriodJSON struct {
	Project string     `json:"project"`
	From    time.Time  `json:"from"`
	To      *time.Time `json:"to"`
}

type periodsAnswer[T any] struct {
	Periods []T `json:"periods"`
}

// activityFilter reads ?since= and ?until= (RFC 3339).
func activityFilter(r *http.Request) (kluis.ActivityFilter, error) {
	var f kluis.ActivityFilter
	bad := map[string]string{}
	for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := r.URL.Query().Get(name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				bad[name] = "must be an RFC 3339 time"
				continue
			}
			*dst = t
		}
	}
	if len(bad) > 0 {
		return f, kluis.Invalid(bad)
	}
	return f, nil
}

// handleListActivity is the managers' activity log: who, which project,
// from, to.
func handleListActivity(licences kluis.LicenceService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		f, err := activityFilter(r)
		if err != nil {
			return err
		}
		st := state(r)
		list, err := licences.ListActivity(r.Context(), st.org.ID, st.actor, f)
		if err != nil {
			return err
		}
		out := periodsAnswer[periodJSON]{Periods: []periodJSON{}}
		for _, p := range list {
			out.Periods = append(out.Periods, periodJSON{Project: string(p.Project), User: string(p.User), From: p.From, To: p.To})
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

// handleListActivityAnonymous is the operator's view of the same periods:
// no one's id or name.
func handleListActivityAnonymous(orgs kluis.OrgService, licences kluis.LicenceService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		f, err := activityFilter(r)
		if err != nil {
			return err
		}
		st := state(r)
		org, err := orgs.FindOrgBySlug(r.Context(), r.PathValue("org"))
		if err != nil {
			return err
		}
		list, err := licences.ListActivityAnonymous(r.Context(), org.ID, st.actor, f)
		if err != nil {
			return err
		}
		out := periodsAnswer[anonPeriodJSON]{Periods: []anonPeriodJSON{}}
		for _, p := range list {
			out.Periods = append(out.Periods, anonPeriodJSON{Project: string(p.Project), From: p.From, To: p.To})
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}
