package httpserver

import (
	"net/http"
	"strconv"

	"github.com/kluis/kluis"
)

// Pages for a project's versions and history (R10, R11): who saved which
// version when, what each holds, what changed between two, and going back
// to one (a new version: history is never rewritten).

// versionRow is one version as the history shows it.
type versionRow struct {
	kluis.Version
	Who  string // the author's name, or "a deleted person (ref)"
	Page string // the version's own page
	Zip  string // the API's ZIP of it
}

func newVersionRow(h projectHead, v kluis.Version, l local) versionRow {
	row := versionRow{Version: v, Who: v.AuthorName, Page: h.Base + "/versions/" + strconv.Itoa(v.Number), Zip: h.API + "/versions/" + strconv.Itoa(v.Number) + "/zip"}
	switch {
	case kluis.IsSupportAuthor(v.Author):
		row.Who = l.T("project.support")
	case row.Who == "":
		// The author's account is gone (R5, R34): a deleted person, told
		// apart from others by a short reference to their former id.
		row.Who = l.T("person.deleted_ref", kluis.DeletedPersonRef(v.Author))
	}
	return row
}

type versionsPage struct {
	projectHead
	Versions []versionRow
}

// versionsView is what the history reads: the project and its versions.
type versionsView struct {
	projects kluis.ProjectService
	versions kluis.VersionService
}

func (v versionsView) show(w http.ResponseWriter, r *http.Request, p *pageData, status int) error {
	st := state(r)
	ctx := r.Context()
	pr, err := v.projects.FindProject(ctx, st.org.ID, st.actor, projectID(r))
	if err != nil {
		return err
	}
	list, err := v.versions.FindVersions(ctx, st.org.ID, st.actor, pr.ID)
	if err != nil {
		return err
	}
	data := versionsPage{projectHead: newProjectHead(p.Org, pr, "versions")}
	for _, ver := range list {
		data.Versions = append(data.Versions, newVersionRow(data.projectHead, ver, p.L))
	}
	p.title("versions.title", pr.Name)
	p.Data = data
	return renderPage(w, r, p, status, "versions")
}

func handleVersionsPage(v versionsView) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		return v.show(w, r, p, http.StatusOK)
	}
}

// handleCreateVersionForm saves the working tree as a new version
// (editors).
func handleCreateVersionForm(v versionsView) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		if _, err := v.versions.CreateVersion(r.Context(), st.org.ID, st.actor, projectID(r), form.Get("message")); err != nil {
			if !p.showError(err) {
				return err
			}
			p.Form = form
			return v.show(w, r, p, http.StatusBadRequest)
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/projects/"+string(projectID(r))+"/versions", "version_saved")
	}
}

// handleRestoreVersionForm makes version n's tree the working tree again,
// as a new version (editors).
func handleRestoreVersionForm(v versionsView) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		n, err := versionNumber(r)
		if err != nil {
			return err
		}
		st := state(r)
		if _, err := v.versions.RestoreVersion(r.Context(), st.org.ID, st.actor, projectID(r), n); err != nil {
			return err
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/projects/"+string(projectID(r))+"/versions", "version_restored")
	}
}

type versionPage struct {
	projectHead
	Version versionRow
	Table   fileTable
	// Against is the version compared with (0: none, this is the first);
	// Diff what changed from it to this one.
	Against int
	Diff    kluis.Diff
	Others  []option // the versions to compare with
}

// versionView is what one version's page reads: the project, the
// version's tree and the comparison with another version.
type versionView struct {
	projects kluis.ProjectService
	files    kluis.FileService
	versions kluis.VersionService
}

// handleVersionPage shows one version: who saved it when, its files, and
// what changed since the version before it, or since ?against=M.
func handleVersionPage(v versionView) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		n, err := versionNumber(r)
		if err != nil {
			return err
		}
		st := state(r)
		ctx := r.Context()
		pr, err := v.projects.FindProject(ctx, st.org.ID, st.actor, projectID(r))
		if err != nil {
			return err
		}
		list, err := v.versions.FindVersions(ctx, st.org.ID, st.actor, pr.ID)
		if err != nil {
			return err
		}
		data := versionPage{projectHead: newProjectHead(p.Org, pr, "versions")}
		found, before := false, 0
		for _, ver := range list {
			if ver.Number == n {
				found = true
				data.Version = newVersionRow(data.projectHead, ver, p.L)
			} else if ver.Number < n && ver.Number > before {
				before = ver.Number
			}
		}
		if !found {
			return kluis.ErrNotFound
		}
		data.Against = before
		if a := r.URL.Query().Get("against"); a != "" {
			m, err := strconv.Atoi(a)
			if err != nil || m < 1 || m == n {
				return kluis.Invalid(map[string]string{"against": "must be the number of another version"})
			}
			data.Against = m
		}
		for _, ver := range list {
			if ver.Number != n {
				label := p.L.T("version.label", ver.Number)
				if ver.Message != "" {
					label = p.L.T("version.label_message", ver.Number, shorten(ver.Message, 60))
				}
				data.Others = append(data.Others, option{Value: strconv.Itoa(ver.Number), Label: label, Selected: ver.Number == data.Against})
			}
		}
		if data.Against > 0 {
			if data.Diff, err = v.versions.DiffVersions(ctx, st.org.ID, st.actor, pr.ID, n, data.Against); err != nil {
				return err
			}
		}
		tree, err := v.files.FindTree(ctx, st.org.ID, st.actor, pr.ID, n, "")
		if err != nil {
			return err
		}
		names, err := knownPeople(r, p, list)
		if err != nil {
			return err
		}
		data.Table = fileTable{L: p.L, ID: "version-files", Labelledby: "files-h"}
		for _, f := range tree {
			data.Table.Files = append(data.Table.Files, fileRow{FileInfo: f, Who: names.of(f.ModifiedBy), Download: data.API + "/versions/" + strconv.Itoa(n) + "/files/" + escapePath(f.Path)})
		}
		p.title("version.title", pr.Name, n)
		p.Data = data
		return renderPage(w, r, p, http.StatusOK, "version")
	}
}

// shorten cuts s to at most n characters, marking the cut.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
