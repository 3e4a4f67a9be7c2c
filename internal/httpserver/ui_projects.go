package httpserver

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/kluis/kluis"
)

// Pages for projects, their files and their trash (docs/UI.md, Projects).
// Each calls the service method the API calls, so the rights engine
// decides: a project the person may not view is the not-found page, an
// action they may not take the error page.

// projectListSize is how many projects the list shows at a time.
const projectListSize = 30

// projectHead is what every page of one project shows above its own part:
// the project, what the person may do to it, and the project's tabs.
type projectHead struct {
	Project kluis.Project
	Base    string // the project's page: /o/{org}/projects/{id}
	API     string // the project's API: /api/v1/orgs/{org}/projects/{id}
	Tab     string // "files", "versions" or "rights"
}

// CanEdit reports whether the person may change the project's files.
func (h projectHead) CanEdit() bool { return h.Project.Rights.Has(kluis.RightEdit) }

// CanGrant reports whether the person may give and take rights.
func (h projectHead) CanGrant() bool { return h.Project.Rights.Has(kluis.RightGrant) }

// IsOwner reports whether the person may rename and delete the project.
func (h projectHead) IsOwner() bool { return h.Project.Rights.Has(kluis.RightDelete) }

func newProjectHead(org kluis.Org, pr kluis.Project, tab string) projectHead {
	return projectHead{
		Project: pr, Tab: tab,
		Base: "/o/" + org.Slug + "/projects/" + string(pr.ID),
		API:  "/api/v1/orgs/" + org.Slug + "/projects/" + string(pr.ID),
	}
}

// escapePath escapes each segment of a path inside a project for a URL.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// people names the people a page mentions, as far as the page can know
// them without reading the organisation's list of people: the person
// themself and the authors of the project's versions. Anyone else is
// "someone".
type people struct {
	names            map[kluis.UserID]string
	someone, support string
}

// knownPeople starts the names with the signed-in person's (none in a
// support session) and the versions' authors'.
func knownPeople(r *http.Request, p *pageData, versions []kluis.Version) (people, error) {
	n := people{names: map[kluis.UserID]string{}, someone: p.L.T("project.someone"), support: p.L.T("project.support")}
	for _, v := range versions {
		if v.AuthorName != "" {
			n.names[v.Author] = v.AuthorName
		}
	}
	st := state(r)
	if st.actor.Support != nil {
		// A support session is no person (R22): only the authors' names.
		return n, nil
	}
	me, err := st.person(r.Context())
	if err != nil {
		return n, err
	}
	n.names[me.ID] = me.Name
	return n, nil
}

// of returns the name of id, "support" for a support session's work
// (R22), or "someone".
func (n people) of(id kluis.UserID) string {
	if kluis.IsSupportAuthor(id) {
		return n.support
	}
	if name, ok := n.names[id]; ok && name != "" {
		return name
	}
	return n.someone
}

type projectsPage struct {
	Projects []kluis.Project
	Next     string // the next page's address, or ""
	Later    bool   // this is not the first page
}

func showProjects(w http.ResponseWriter, r *http.Request, p *pageData, projects kluis.ProjectService, status int) error {
	st := state(r)
	f := kluis.ProjectFilter{Limit: projectListSize}
	if r.Method == http.MethodGet {
		f.After = kluis.ProjectID(r.URL.Query().Get("after"))
	}
	if f.After != "" && !kluis.ValidID(string(f.After)) {
		return kluis.Invalid(map[string]string{"after": "must be a project id"})
	}
	list, err := projects.FindProjects(r.Context(), st.org.ID, st.actor, f)
	if err != nil {
		return err
	}
	data := projectsPage{Projects: list, Later: f.After != ""}
	if len(list) == projectListSize {
		data.Next = "/o/" + p.Org.Slug + "/projects?after=" + url.QueryEscape(string(list[len(list)-1].ID))
	}
	p.title("projects.title")
	p.Data = data
	return renderPage(w, r, p, status, "projects")
}

// handleProjectsPage lists the projects the person may view, a page at a
// time, with the form that creates one.
func handleProjectsPage(projects kluis.ProjectService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		return showProjects(w, r, p, projects, http.StatusOK)
	}
}

// handleCreateProjectForm creates a project owned by the person and opens
// it.
func handleCreateProjectForm(projects kluis.ProjectService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		pr, err := projects.CreateProject(r.Context(), st.org.ID, st.actor, kluis.ProjectInput{Name: form.Get("name")})
		if err != nil {
			if !p.showError(err) {
				return err
			}
			p.Form = form
			return showProjects(w, r, p, projects, http.StatusBadRequest)
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/projects/"+string(pr.ID), "project_created")
	}
}

// fileRow is one file as a project's or a version's tree shows it.
type fileRow struct {
	kluis.FileInfo
	Who      string // who changed it last, by name where the page knows it
	Download string // the API's address of its bytes
}

// fileTable is a tree as the "file-table" template shows it.
type fileTable struct {
	L          local
	ID         string // of the table
	Labelledby string // the id of its heading
	Files      []fileRow
	Delete     string // the delete form's action; "" for no delete buttons
}

type projectPage struct {
	projectHead
	Table  fileTable
	Latest *versionRow // the newest version, or nil
	// CanStart: the caller holds the start right (R13); Running: the
	// project runs; Mine: the caller's own period that runs, or nil.
	CanStart bool
	Running  bool
	Mine     *kluis.ActivityPeriod
}

// projectView is what a project's page reads: the project, its working
// tree, and its versions (the newest, and the names of their authors).
type projectView struct {
	projects kluis.ProjectService
	files    kluis.FileService
	versions kluis.VersionService
	licences kluis.LicenceService
}

// show renders the project's page. On a first visit the rename form holds
// the project's name; shown again after a failed form, what was typed.
func (v projectView) show(w http.ResponseWriter, r *http.Request, p *pageData, status int) error {
	st := state(r)
	ctx := r.Context()
	pr, err := v.projects.FindProject(ctx, st.org.ID, st.actor, projectID(r))
	if err != nil {
		return err
	}
	tree, err := v.files.FindTree(ctx, st.org.ID, st.actor, pr.ID, 0, "")
	if err != nil {
		return err
	}
	versions, err := v.versions.FindVersions(ctx, st.org.ID, st.actor, pr.ID)
	if err != nil {
		return err
	}
	names, err := knownPeople(r, p, versions)
	if err != nil {
		return err
	}
	data := projectPage{projectHead: newProjectHead(p.Org, pr, "files")}
	data.Table = fileTable{L: p.L, ID: "files", Labelledby: "files-h"}
	if data.CanEdit() {
		data.Table.Delete = data.Base + "/files/delete"
	}
	for _, f := range tree {
		data.Table.Files = append(data.Table.Files, fileRow{FileInfo: f, Who: names.of(f.ModifiedBy), Download: data.API + "/files/" + escapePath(f.Path)})
	}
	if data.CanStart = pr.Rights.Has(kluis.RightStart); data.CanStart {
		if data.Mine, data.Running, err = v.licences.FindRunning(ctx, st.org.ID, st.actor, pr.ID); err != nil {
			return err
		}
	}
	if len(versions) > 0 {
		latest := newVersionRow(data.projectHead, versions[0], p.L)
		data.Latest = &latest
	}
	if !p.Form.Has("name") {
		p.Form.Set("name", pr.Name)
	}
	p.Title = pr.Name
	p.Data = data
	return renderPage(w, r, p, status, "project")
}

func handleProjectPage(v projectView) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		return v.show(w, r, p, http.StatusOK)
	}
}

// handleRenameProjectForm renames the project (owners).
func handleRenameProjectForm(v projectView) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		if _, err := v.projects.UpdateProject(r.Context(), st.org.ID, st.actor, projectID(r), kluis.ProjectInput{Name: form.Get("name")}); err != nil {
			if !p.showError(err) {
				return err
			}
			p.Form = form
			return v.show(w, r, p, http.StatusBadRequest)
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/projects/"+string(projectID(r)), "saved")
	}
}

// handleDeleteProjectForm moves the project to the trash (owners).
func handleDeleteProjectForm(projects kluis.ProjectService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		if err := projects.DeleteProject(r.Context(), st.org.ID, st.actor, projectID(r)); err != nil {
			return err
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/trash", "project_deleted")
	}
}

// handleDeleteFileForm removes a file from the working tree (editors). The
// form carries the file's ETag as the page showed it: a file someone
// changed since is not deleted unseen.
func handleDeleteFileForm(files kluis.FileService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		if err := files.DeleteFile(r.Context(), st.org.ID, st.actor, projectID(r), form.Get("path"), form.Get("etag")); err != nil {
			return err
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/projects/"+string(projectID(r)), "file_deleted")
	}
}

type trashPage struct {
	Projects []kluis.Project
}

// handleTrashPage lists the projects in the trash the person may bring
// back, with the day each is purged.
func handleTrashPage(projects kluis.ProjectService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		list, err := projects.FindTrash(r.Context(), st.org.ID, st.actor)
		if err != nil {
			return err
		}
		p.title("trash.title")
		p.Data = trashPage{Projects: list}
		return renderPage(w, r, p, http.StatusOK, "trash")
	}
}

// handleUndeleteProjectForm brings a project back from the trash (owners)
// and opens it.
func handleUndeleteProjectForm(projects kluis.ProjectService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		pr, err := projects.UndeleteProject(r.Context(), st.org.ID, st.actor, projectID(r))
		if err != nil {
			return err
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/projects/"+string(pr.ID), "project_undeleted")
	}
}
