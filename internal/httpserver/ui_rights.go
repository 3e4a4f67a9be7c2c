package httpserver

import (
	"time"

	"net/http"
	"slices"
	"strings"

	"github.com/kluis/kluis"
)

// Pages for who may do what to a project (R2, R6, R7), and for the groups
// of people that grants can name. The rights engine decides: no grant
// exceeds the granter's own rights, a project keeps an owner, and under the
// "owners" policy a manager cannot give themselves a right.

// relations are the relations a grant can give, in the order the pages
// offer them.
var relations = []kluis.Relation{kluis.RelViewer, kluis.RelRunner, kluis.RelEditor, kluis.RelOwner}

// grantRow is one grant as the rights page shows it.
type grantRow struct {
	Subject  string // user:ID or group:ID, as the forms send it
	Name     string
	Group    bool
	Relation kluis.Relation
	Choices  []option // the relations, this grant's selected
}

type rightsPage struct {
	projectHead
	Grants []grantRow
	// Candidates are the people and groups the grant form offers: for
	// managers everyone, for others those the page can name.
	Candidates []option
	Relations  []option
}

// rightsView is what the rights page reads: the project, its grants, and
// names for them — the organisation's people and groups when the person
// may read those (managers), else the names the project's history gives.
type rightsView struct {
	projects kluis.ProjectService
	grants   kluis.GrantService
	users    kluis.UserService
	groups   kluis.GroupService
	versions kluis.VersionService
	support  kluis.SupportService
}

func relationChoices(p *pageData, selected kluis.Relation) []option {
	out := make([]option, 0, len(relations))
	for _, rel := range relations {
		out = append(out, option{Value: string(rel), Label: p.L.T("relation." + string(rel)), Selected: rel == selected})
	}
	return out
}

func (v rightsView) show(w http.ResponseWriter, r *http.Request, p *pageData, status int) error {
	st := state(r)
	ctx := r.Context()
	pr, err := v.projects.FindProject(ctx, st.org.ID, st.actor, projectID(r))
	if err != nil {
		return err
	}
	list, err := v.grants.FindGrants(ctx, st.org.ID, st.actor, pr.ID)
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
	groupNames := map[string]string{}
	var candidates []option
	if p.Manager {
		// A recorded read (user.list), as on the people page.
		users, err := v.users.FindUsers(ctx, st.org.ID, st.actor)
		if err != nil {
			return err
		}
		for _, u := range users {
			names.names[u.ID] = u.Name
		}
		groups, err := v.groups.FindGroups(ctx, st.org.ID, st.actor)
		if err != nil {
			return err
		}
		for _, g := range groups {
			groupNames[string(g.ID)] = g.Name
			candidates = append(candidates, option{Value: kluis.Subject{Kind: kluis.SubjectGroup, ID: string(g.ID)}.String(), Label: p.L.T("rights.group", g.Name)})
		}
	}
	for id, name := range names.names {
		if id != st.actor.UserID {
			candidates = append(candidates, option{Value: kluis.Subject{Kind: kluis.SubjectUser, ID: string(id)}.String(), Label: name})
		}
	}
	slices.SortFunc(candidates, func(a, b option) int { return strings.Compare(strings.ToLower(a.Label), strings.ToLower(b.Label)) })
	chosen := p.Form.Get("subject")
	for i := range candidates {
		candidates[i].Selected = candidates[i].Value == chosen
	}
	data := rightsPage{projectHead: newProjectHead(p.Org, pr, "rights"), Candidates: candidates}
	rel := kluis.Relation(p.Form.Get("relation"))
	if !rel.Valid() {
		rel = kluis.RelViewer
	}
	data.Relations = relationChoices(p, rel)
	for _, g := range list {
		row := grantRow{Subject: g.Subject.String(), Relation: g.Relation, Group: g.Subject.Kind == kluis.SubjectGroup, Choices: relationChoices(p, g.Relation)}
		if row.Group {
			row.Name = groupNames[g.Subject.ID]
			if row.Name == "" {
				row.Name = p.L.T("rights.a_group")
			}
		} else {
			row.Name = names.of(kluis.UserID(g.Subject.ID))
		}
		data.Grants = append(data.Grants, row)
	}
	p.title("rights.title", pr.Name)
	p.Data = data
	return renderPage(w, r, p, status, "rights")
}

func handleRightsPage(v rightsView) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		return v.show(w, r, p, http.StatusOK)
	}
}

// rightsFailed shows a refusal the page can explain (the last owner, a
// value not accepted) on the rights page; any other error is the error
// page's.
func (v rightsView) failed(w http.ResponseWriter, r *http.Request, p *pageData, form map[string][]string, err error) error {
	if !p.showError(err) {
		return err
	}
	status := http.StatusBadRequest
	if kluis.ErrorCode(err) == kluis.EConflict {
		status = http.StatusConflict
	}
	p.Form = form
	p.Back = "/o/" + p.Org.Slug + "/projects/" + string(projectID(r)) + "/rights"
	return v.show(w, r, p, status)
}

// handleSetGrantForm gives a person or a group a relation to the project,
// replacing the one they had (the grant right).
func handleSetGrantForm(v rightsView) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		rel := kluis.Relation(form.Get("relation"))
		if email := strings.TrimSpace(form.Get("email")); email != "" {
			// Someone the page cannot name: by their address, which
			// stays in the form's body.
			err = v.grants.SetGrantByEmail(r.Context(), st.org.ID, st.actor, projectID(r), email, rel)
		} else {
			// A malformed subject is judged by the service, after the
			// rights check, as in the API.
			sub, _ := kluis.ParseSubject(form.Get("subject"))
			err = v.grants.SetGrant(r.Context(), st.org.ID, st.actor, projectID(r), kluis.Grant{Subject: sub, Relation: rel})
		}
		if err != nil {
			return v.failed(w, r, p, form, err)
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/projects/"+string(projectID(r))+"/rights", "grant_saved")
	}
}

// handleRemoveGrantForm takes a person's or a group's relation away.
func handleRemoveGrantForm(v rightsView) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		sub, _ := kluis.ParseSubject(form.Get("subject"))
		if err := v.grants.RemoveGrant(r.Context(), st.org.ID, st.actor, projectID(r), sub); err != nil {
			return v.failed(w, r, p, nil, err)
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/projects/"+string(projectID(r))+"/rights", "grant_removed")
	}
}

// member is one person of a group, by name.
type member struct {
	ID   kluis.UserID
	Name string
}

// groupRow is one group as the groups page shows it: its members, and the
// people who could join.
type groupRow struct {
	ID         kluis.GroupID
	Name       string
	Members    []member
	Candidates []option
}

type groupsPage struct {
	Groups []groupRow
}

// groupsView is what the groups page reads: the groups and the
// organisation's people (managers).
type groupsView struct {
	groups kluis.GroupService
	users  kluis.UserService
}

func (v groupsView) show(w http.ResponseWriter, r *http.Request, p *pageData, status int) error {
	st := state(r)
	ctx := r.Context()
	groups, err := v.groups.FindGroups(ctx, st.org.ID, st.actor)
	if err != nil {
		return err
	}
	users, err := v.users.FindUsers(ctx, st.org.ID, st.actor)
	if err != nil {
		return err
	}
	slices.SortFunc(users, func(a, b kluis.User) int { return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) })
	names := map[kluis.UserID]string{}
	for _, u := range users {
		names[u.ID] = u.Name
	}
	data := groupsPage{}
	for _, g := range groups {
		row := groupRow{ID: g.ID, Name: g.Name}
		for _, id := range g.Members {
			name := names[id]
			if name == "" {
				name = p.L.T("audit.former_user")
			}
			row.Members = append(row.Members, member{ID: id, Name: name})
		}
		slices.SortFunc(row.Members, func(a, b member) int { return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) })
		for _, u := range users {
			if !slices.Contains(g.Members, u.ID) && u.Status != kluis.StatusDisabled {
				row.Candidates = append(row.Candidates, option{Value: string(u.ID), Label: u.Name})
			}
		}
		data.Groups = append(data.Groups, row)
	}
	p.title("groups.title")
	p.Data = data
	return renderPage(w, r, p, status, "groups")
}

func handleGroupsPage(v groupsView) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		return v.show(w, r, p, http.StatusOK)
	}
}

// handleCreateGroupForm makes a group (managers).
func handleCreateGroupForm(v groupsView) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		if _, err := v.groups.CreateGroup(r.Context(), st.org.ID, st.actor, kluis.GroupInput{Name: form.Get("name")}); err != nil {
			if !p.showError(err) {
				return err
			}
			p.Form = form
			return v.show(w, r, p, http.StatusBadRequest)
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/groups", "group_created")
	}
}

// handleDeleteGroupForm removes a group and its grants (managers).
func handleDeleteGroupForm(groups kluis.GroupService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		if err := groups.DeleteGroup(r.Context(), st.org.ID, st.actor, groupID(r)); err != nil {
			return err
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/groups", "group_deleted")
	}
}

// handleAddGroupMemberForm puts the chosen person in the group (managers).
func handleAddGroupMemberForm(groups kluis.GroupService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		if err := groups.AddGroupMember(r.Context(), st.org.ID, st.actor, groupID(r), kluis.UserID(form.Get("user"))); err != nil {
			return err
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/groups", "member_added")
	}
}

// handleRemoveGroupMemberForm takes a person out of the group (managers).
func handleRemoveGroupMemberForm(groups kluis.GroupService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		if err := groups.RemoveGroupMember(r.Context(), st.org.ID, st.actor, groupID(r), kluis.UserID(r.PathValue("user"))); err != nil {
			return err
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/groups", "member_removed")
	}
}

// handleProjectSupportForm lets support into this one project (R22): the
// project's owners (whoever holds the grant right), after a fresh sign-in;
// the organisation's managers see the grant and its uses on their support
// page.
func handleProjectSupportForm(v rightsView) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		_, err = v.support.GrantSupport(r.Context(), st.org.ID, st.actor, kluis.SupportGrantInput{
			Scope: kluis.SupportProjectScope(projectID(r)), Right: kluis.SupportRight(form.Get("right")),
			Reason: form.Get("reason"), ExpiresAt: supportEnd(form.Get("days"), time.Now()),
		})
		switch {
		case kluis.ErrorCode(err) == kluis.EReauthRequired:
			return redirect(w, r, st.realm.Account+"/reauth", "reauth_first")
		case err != nil:
			return v.failed(w, r, p, form, err)
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/projects/"+string(projectID(r))+"/rights", "support_granted")
	}
}
