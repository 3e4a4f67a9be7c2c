package kluis

import (
	"context"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ProjectID identifies a project inside one organisation.
type ProjectID string

// GroupID identifies a group of people inside one organisation.
type GroupID string

// Relation is what a grant makes its subject of a project (R2, R6). The
// relations are ordered viewer < editor < owner; runner may start a project
// and includes viewer; owner includes every right.
type Relation string

// The relations a grant can give.
const (
	RelViewer Relation = "viewer"
	RelRunner Relation = "runner"
	RelEditor Relation = "editor"
	RelOwner  Relation = "owner"
)

// Valid reports whether r is a known relation.
func (r Relation) Valid() bool {
	return r == RelViewer || r == RelRunner || r == RelEditor || r == RelOwner
}

// Right is one action on a project that the rights engine decides (R6).
type Right uint8

// The rights on a project, as bits of a Rights set.
const (
	RightView Right = 1 << iota
	RightEdit
	RightStart
	RightGrant
	RightDelete
)

// rightNames are the rights in the order a project's rights list shows them.
var rightNames = []struct {
	r    Right
	name string
}{{RightView, "view"}, {RightEdit, "edit"}, {RightStart, "start"}, {RightGrant, "grant"}, {RightDelete, "delete"}}

// Rights is a set of rights.
type Rights uint8

// AllRights is every right on a project: an owner's.
const AllRights = Rights(RightView | RightEdit | RightStart | RightGrant | RightDelete)

// Has reports whether the set holds right r.
func (s Rights) Has(r Right) bool { return s&Rights(r) != 0 }

// Covers reports whether s holds every right of o: a granter may give no
// more than they hold.
func (s Rights) Covers(o Rights) bool { return s&o == o }

// Names lists the set as the API shows it: view, edit, start, grant, delete.
func (s Rights) Names() []string {
	out := []string{}
	for _, n := range rightNames {
		if s.Has(n.r) {
			out = append(out, n.name)
		}
	}
	return out
}

// RelationRights is what a relation allows.
func RelationRights(r Relation) Rights {
	switch r {
	case RelViewer:
		return Rights(RightView)
	case RelRunner:
		return Rights(RightView | RightStart)
	case RelEditor:
		return Rights(RightView | RightEdit)
	case RelOwner:
		return AllRights
	}
	return 0
}

// The values of Policy.ProjectAccess: who decides about project content.
const (
	// ProjectAccessManagers: managers hold every right on every project of
	// the organisation and grant anyone any right (Tygron's way).
	ProjectAccessManagers = "managers"
	// ProjectAccessOwners: managers administer accounts but hold no right
	// on project content unless granted by an owner, and cannot give
	// themselves one, by grant or by joining a group (R7; Pluform's way).
	ProjectAccessOwners = "owners"
)

// Trash bounds: how long a deleted project waits before its key is
// destroyed (R12). Policy.TrashDays moves within them.
const (
	DefaultTrashDays = 30
	MaxTrashDays     = 90
)

// ProjectRights is what actor may do to a project of org under the
// organisation's project access policy, given the rights its grants
// (direct and through groups) give: under "managers" a manager holds every
// right; otherwise only granted rights count. The one rule every project
// route passes (R2, R6, R7).
func ProjectRights(a Actor, org OrgID, access string, granted Rights) Rights {
	if !a.IsOrgUser(org) {
		return 0
	}
	if a.IsManager(org) {
		return ManagerProjectRights(access) | granted
	}
	return granted
}

// ManagerProjectRights is what a manager may do to any project of their
// organisation by the policy alone: everything under "managers", nothing
// under "owners".
func ManagerProjectRights(access string) Rights {
	if access == ProjectAccessOwners {
		return 0
	}
	return AllRights
}

// CanCreateProject: every signed-in member of the organisation may create a
// project, and becomes its owner.
func CanCreateProject(a Actor, org OrgID) bool { return a.IsOrgUser(org) }

// CanManageGroups: managers create and delete groups and change who is in
// them.
func CanManageGroups(a Actor, org OrgID) bool { return a.IsManager(org) }

// SubjectKind is what a grant is given to.
type SubjectKind string

// The kinds of grant subject.
const (
	SubjectUser  SubjectKind = "user"
	SubjectGroup SubjectKind = "group"
)

// Subject is who a grant is given to: a person or a group, written
// "user:ID" or "group:ID".
type Subject struct {
	Kind SubjectKind
	ID   string
}

// Valid reports whether s names a person or a group by a well-formed id.
func (s Subject) Valid() bool {
	return (s.Kind == SubjectUser || s.Kind == SubjectGroup) && ValidID(s.ID)
}

// String is the subject as the API writes it.
func (s Subject) String() string { return string(s.Kind) + ":" + s.ID }

// ParseSubject reads "user:ID" or "group:ID". Errors: invalid_input naming
// subject.
func ParseSubject(s string) (Subject, error) {
	kind, id, ok := strings.Cut(s, ":")
	sub := Subject{Kind: SubjectKind(kind), ID: id}
	if !ok || !sub.Valid() {
		return Subject{}, Invalid(map[string]string{"subject": "must be user:ID or group:ID"})
	}
	return sub, nil
}

// Project is a project as its caller sees it: Rights is what the caller
// may do to it.
type Project struct {
	ID        ProjectID
	Name      string
	CreatedAt time.Time
	Rights    Rights
	// DeletedAt and PurgeAt are set for a project in the trash: at PurgeAt
	// its key is destroyed and its content collected (R12).
	DeletedAt time.Time
	PurgeAt   time.Time
}

// ProjectInput is a project's changeable fields.
type ProjectInput struct {
	Name string
}

// Normalize returns the input with the name trimmed and in NFC.
func (in ProjectInput) Normalize() ProjectInput {
	in.Name = NormalizeName(in.Name)
	return in
}

// Validate checks a normalised input: a name of 1 to 200 characters
// without control characters. Errors: invalid_input naming name.
func (in ProjectInput) Validate() error {
	return validLabel("name", in.Name, 200)
}

// validLabel checks a short human label such as a project's or a group's
// name.
func validLabel(field, s string, maxChars int) error {
	switch {
	case s == "":
		return Invalid(map[string]string{field: "is required"})
	case !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxChars:
		return Invalid(map[string]string{field: "must be at most " + strconv.Itoa(maxChars) + " characters"})
	case strings.ContainsFunc(s, unicode.IsControl):
		return Invalid(map[string]string{field: "must not contain control characters"})
	}
	return nil
}

// ProjectFilter pages through the projects a person may see, ordered by id
// (time of creation).
type ProjectFilter struct {
	After ProjectID // the last id of the previous page
	Limit int       // 1…MaxProjectPage; 0 means DefaultProjectPage
}

// Project list page sizes.
const (
	DefaultProjectPage = 100
	MaxProjectPage     = 500
)

// Grant is one relationship of a subject to a project.
type Grant struct {
	Subject  Subject
	Relation Relation
}

// Group is a named set of people of one organisation; a grant to a group
// holds for each of its members.
type Group struct {
	ID        GroupID
	Name      string
	CreatedAt time.Time
	Members   []UserID
}

// GroupInput is a new group.
type GroupInput struct {
	Name string
}

// Normalize returns the input with the name trimmed and in NFC.
func (in GroupInput) Normalize() GroupInput {
	in.Name = NormalizeName(in.Name)
	return in
}

// Validate checks a normalised input. Errors: invalid_input naming name.
func (in GroupInput) Validate() error { return validLabel("name", in.Name, 100) }

// ProjectService keeps an organisation's projects (R9, R12): every method
// decides with ProjectRights, answers not_found to a caller who may not
// view the project (or when it is in the trash) and forbidden to one who
// may view but not act, and records each denial as access.denied.
type ProjectService interface {
	// CreateProject makes a project owned by the caller. Errors:
	// unauthenticated, forbidden, invalid_input.
	CreateProject(ctx context.Context, org OrgID, actor Actor, in ProjectInput) (Project, error)
	// FindProjects lists the projects the caller may view, a page at a
	// time; it never loads one the caller cannot see.
	FindProjects(ctx context.Context, org OrgID, actor Actor, f ProjectFilter) ([]Project, error)
	// FindProject returns one project. Errors: not_found.
	FindProject(ctx context.Context, org OrgID, actor Actor, id ProjectID) (Project, error)
	// UpdateProject renames a project (owner). Errors: not_found,
	// forbidden, invalid_input.
	UpdateProject(ctx context.Context, org OrgID, actor Actor, id ProjectID, in ProjectInput) (Project, error)
	// DeleteProject moves a project to the trash (owner). Errors:
	// not_found, forbidden.
	DeleteProject(ctx context.Context, org OrgID, actor Actor, id ProjectID) error
	// FindTrash lists the projects in the trash the caller may bring back
	// (managers under "managers": all of them), with their purge dates.
	FindTrash(ctx context.Context, org OrgID, actor Actor) ([]Project, error)
	// UndeleteProject brings a project back from the trash (owner).
	// Errors: not_found, forbidden.
	UndeleteProject(ctx context.Context, org OrgID, actor Actor, id ProjectID) (Project, error)
}

// GrantService gives and takes rights on a project (R2, R6, R7). No grant
// exceeds the granter's own rights, and a project keeps at least one owner.
type GrantService interface {
	// FindGrants lists a project's grants (viewer). Errors: not_found.
	FindGrants(ctx context.Context, org OrgID, actor Actor, id ProjectID) ([]Grant, error)
	// SetGrant gives subject a relation to the project, replacing any
	// earlier one (granter: the grant right). Errors: not_found, forbidden,
	// invalid_input, conflict (the last owner).
	SetGrant(ctx context.Context, org OrgID, actor Actor, id ProjectID, g Grant) error
	// SetGrantByEmail is SetGrant for the person of the organisation with
	// that e-mail address, for granters who do not know the person's id
	// (members cannot list the organisation's people). The address goes in
	// a form or request body, never a URL. Errors: as SetGrant; an address
	// of nobody in the organisation is invalid_input naming email.
	SetGrantByEmail(ctx context.Context, org OrgID, actor Actor, id ProjectID, email string, rel Relation) error
	// RemoveGrant takes subject's relation away. Errors: not_found,
	// forbidden, conflict (the last owner).
	RemoveGrant(ctx context.Context, org OrgID, actor Actor, id ProjectID, s Subject) error
}

// GroupService keeps an organisation's groups (managers). Under the
// "owners" policy a manager cannot join a group that would give them a
// project right.
type GroupService interface {
	// CreateGroup makes a group. Errors: forbidden, invalid_input.
	CreateGroup(ctx context.Context, org OrgID, actor Actor, in GroupInput) (Group, error)
	// FindGroups lists the groups with their members. Errors: forbidden.
	FindGroups(ctx context.Context, org OrgID, actor Actor) ([]Group, error)
	// DeleteGroup removes a group and its grants. Errors: forbidden,
	// not_found.
	DeleteGroup(ctx context.Context, org OrgID, actor Actor, id GroupID) error
	// AddGroupMember puts a person in a group. Errors: forbidden,
	// not_found.
	AddGroupMember(ctx context.Context, org OrgID, actor Actor, id GroupID, user UserID) error
	// RemoveGroupMember takes a person out of a group. Errors: forbidden,
	// not_found.
	RemoveGroupMember(ctx context.Context, org OrgID, actor Actor, id GroupID, user UserID) error
}
