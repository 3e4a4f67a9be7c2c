package httpserver

import (
	"cmp"
	"net/http"
	"strconv"
	"time"

	"github.com/kluis/kluis"
)

// Projects, their trash, grants and groups in the API (R2, R6, R7, R9,
// R12). Every handler calls one service method, which asks the rights
// engine; nothing here decides who may do what.

type projectJSON struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	CreatedAt time.Time  `json:"created_at"`
	Rights    []string   `json:"rights"`
	DeletedAt *time.Time `json:"deleted_at,omitempty"`
	PurgeAt   *time.Time `json:"purge_at,omitempty"`
}

func toProjectJSON(p kluis.Project) projectJSON {
	j := projectJSON{ID: string(p.ID), Name: p.Name, CreatedAt: p.CreatedAt, Rights: p.Rights.Names()}
	if !p.DeletedAt.IsZero() {
		d, purge := p.DeletedAt, p.PurgeAt
		j.DeletedAt, j.PurgeAt = &d, &purge
	}
	return j
}

type projectAnswer struct {
	Project projectJSON `json:"project"`
}

type projectsAnswer struct {
	Projects []projectJSON `json:"projects"`
	// Next is the cursor of the next page (?after=), empty on the last.
	Next string `json:"next,omitempty"`
}

type projectRequest struct {
	Name string `json:"name"`
}

func projectID(r *http.Request) kluis.ProjectID { return kluis.ProjectID(r.PathValue("id")) }

func handleCreateProject(projects kluis.ProjectService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in projectRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		p, err := projects.CreateProject(r.Context(), st.org.ID, st.actor, kluis.ProjectInput{Name: in.Name})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, projectAnswer{toProjectJSON(p)})
		return nil
	}
}

// handleListProjects lists a page of the projects the caller may view:
// ?limit= (1…500, default 100) and ?after= (the previous page's next).
func handleListProjects(projects kluis.ProjectService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		q := r.URL.Query()
		f := kluis.ProjectFilter{After: kluis.ProjectID(q.Get("after"))}
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > kluis.MaxProjectPage {
				return kluis.Invalid(map[string]string{"limit": "must be a number from 1 to " + strconv.Itoa(kluis.MaxProjectPage)})
			}
			f.Limit = n
		}
		if f.After != "" && !kluis.ValidID(string(f.After)) {
			return kluis.Invalid(map[string]string{"after": "must be a project id"})
		}
		st := state(r)
		list, err := projects.FindProjects(r.Context(), st.org.ID, st.actor, f)
		if err != nil {
			return err
		}
		out := projectsAnswer{Projects: make([]projectJSON, 0, len(list))}
		for _, p := range list {
			out.Projects = append(out.Projects, toProjectJSON(p))
		}
		if len(list) > 0 && len(list) == cmp.Or(f.Limit, kluis.DefaultProjectPage) {
			out.Next = string(list[len(list)-1].ID)
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

func handleGetProject(projects kluis.ProjectService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		p, err := projects.FindProject(r.Context(), st.org.ID, st.actor, projectID(r))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, projectAnswer{toProjectJSON(p)})
		return nil
	}
}

func handleUpdateProject(projects kluis.ProjectService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in projectRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		p, err := projects.UpdateProject(r.Context(), st.org.ID, st.actor, projectID(r), kluis.ProjectInput{Name: in.Name})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, projectAnswer{toProjectJSON(p)})
		return nil
	}
}

func handleDeleteProject(projects kluis.ProjectService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		if err := projects.DeleteProject(r.Context(), st.org.ID, st.actor, projectID(r)); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

func handleListTrash(projects kluis.ProjectService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		list, err := projects.FindTrash(r.Context(), st.org.ID, st.actor)
		if err != nil {
			return err
		}
		out := projectsAnswer{Projects: make([]projectJSON, 0, len(list))}
		for _, p := range list {
			out.Projects = append(out.Projects, toProjectJSON(p))
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

func handleUndeleteProject(projects kluis.ProjectService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		p, err := projects.UndeleteProject(r.Context(), st.org.ID, st.actor, projectID(r))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, projectAnswer{toProjectJSON(p)})
		return nil
	}
}

type grantJSON struct {
	Subject  string `json:"subject"`
	Relation string `json:"relation"`
}

type grantsAnswer struct {
	Grants []grantJSON `json:"grants"`
}

type grantRequest struct {
	Relation string `json:"relation"`
}

func handleListGrants(grants kluis.GrantService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		list, err := grants.FindGrants(r.Context(), st.org.ID, st.actor, projectID(r))
		if err != nil {
			return err
		}
		out := grantsAnswer{Grants: make([]grantJSON, 0, len(list))}
		for _, g := range list {
			out.Grants = append(out.Grants, grantJSON{Subject: g.Subject.String(), Relation: string(g.Relation)})
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

func handleSetGrant(grants kluis.GrantService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in grantRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		// A malformed subject is judged by the service, after the rights
		// check, so it answers as a valid one would for a hidden project.
		sub, _ := kluis.ParseSubject(r.PathValue("subject"))
		st := state(r)
		if err := grants.SetGrant(r.Context(), st.org.ID, st.actor, projectID(r), kluis.Grant{Subject: sub, Relation: kluis.Relation(in.Relation)}); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

func handleRemoveGrant(grants kluis.GrantService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		sub, _ := kluis.ParseSubject(r.PathValue("subject"))
		st := state(r)
		if err := grants.RemoveGrant(r.Context(), st.org.ID, st.actor, projectID(r), sub); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

type groupJSON struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	Members   []string  `json:"members"`
}

func toGroupJSON(g kluis.Group) groupJSON {
	j := groupJSON{ID: string(g.ID), Name: g.Name, CreatedAt: g.CreatedAt, Members: make([]string, 0, len(g.Members))}
	for _, m := range g.Members {
		j.Members = append(j.Members, string(m))
	}
	return j
}

type groupAnswer struct {
	Group groupJSON `json:"group"`
}

type groupsAnswer struct {
	Groups []groupJSON `json:"groups"`
}

type groupRequest struct {
	Name string `json:"name"`
}

func groupID(r *http.Request) kluis.GroupID { return kluis.GroupID(r.PathValue("id")) }

func handleCreateGroup(groups kluis.GroupService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in groupRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		g, err := groups.CreateGroup(r.Context(), st.org.ID, st.actor, kluis.GroupInput{Name: in.Name})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, groupAnswer{toGroupJSON(g)})
		return nil
	}
}

func handleListGroups(groups kluis.GroupService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		list, err := groups.FindGroups(r.Context(), st.org.ID, st.actor)
		if err != nil {
			return err
		}
		out := groupsAnswer{Groups: make([]groupJSON, 0, len(list))}
		for _, g := range list {
			out.Groups = append(out.Groups, toGroupJSON(g))
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

func handleDeleteGroup(groups kluis.GroupService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		if err := groups.DeleteGroup(r.Context(), st.org.ID, st.actor, groupID(r)); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// handleGroupMember puts a person in a group (add) or takes them out.
func handleGroupMember(groups kluis.GroupService, add bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		change := groups.RemoveGroupMember
		if add {
			change = groups.AddGroupMember
		}
		if err := change(r.Context(), st.org.ID, st.actor, groupID(r), kluis.UserID(r.PathValue("user"))); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}
