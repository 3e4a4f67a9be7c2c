package kluis

import (
	"context"
	"io"
	"strings"
)

// PersonalDataService is a person's rights over the data kluis holds about
// them (R4, R5, R34): a copy of all of it, structured and machine-readable
// (access and portability), and the erasure of their own account. The
// archive's layout is docs/PERSONAL-EXPORT.md; it travels inside the
// archive as README.md with a JSON Schema for every file.
type PersonalDataService interface {
	// ExportMe writes everything held about the signed-in person to w as a
	// ZIP archive, streaming. The caller authenticated freshly in a
	// session (an API token or a support session never does). Recorded as
	// user.export before the first byte. Errors before the first byte:
	// unauthenticated, reauth_required; an error after it cuts the
	// archive short.
	ExportMe(ctx context.Context, org OrgID, actor Actor, w io.Writer) error
	// ExportUser writes the same archive about one person of the
	// organisation, for a manager who authenticated freshly: a recorded
	// read (user.export) of that person. Errors before the first byte:
	// forbidden, reauth_required, not_found, processing_restricted (while
	// the person's processing is restricted only they take their data).
	ExportUser(ctx context.Context, org OrgID, actor Actor, id UserID, w io.Writer) error
	// EraseMe deletes the signed-in person's account after a fresh
	// authentication: their sessions end, their personal data goes and
	// their key is destroyed, so no copy of their sealed data opens again;
	// the organisation's projects stay. Recorded as user.erase. Errors:
	// unauthenticated, reauth_required, conflict (the last manager, or the
	// last owner of a project: ErrLastOwner).
	EraseMe(ctx context.Context, org OrgID, actor Actor) error
}

// ErrLastOwner refuses a person's erasure of their own account while they
// are the only owner of a project that is not in the trash: they hand it
// over (grant another person owner) or delete it first.
var ErrLastOwner = &Error{Code: EConflict, Message: "you are the only owner of a project: make someone else an owner or delete the project first",
	Fields: map[string]string{"projects": "you are the only owner of at least one project"}}

// CanExportPerson: a person takes their own export; a manager takes any of
// their organisation's people's (R4, R34). Support staff never do, whatever
// their grant (R22): a support actor is no user of the organisation.
func CanExportPerson(a Actor, org OrgID, id UserID) bool {
	return a.IsOrgUser(org) && (a.UserID == id || a.Role == RoleManager)
}

// CanEraseSelf: a signed-in person of the organisation erases their own
// account, in a session (never through an API token, which is never a
// fresh authentication, nor a support session).
func CanEraseSelf(a Actor, org OrgID) bool { return a.IsOrgUser(org) && !a.ViaToken() }

// DeletedPersonRef is how kluis names a person whose account is gone where
// their work stays (a project version's author, an audit event's actor): a
// short reference of the last eight characters of their former id. The id
// is random (UUIDv7: its first part is the account's creation time, which
// the reference leaves out), so the reference tells two deleted people
// apart without saying anything about who they were; the full id stays in
// the API's author fields and the audit chain.
func DeletedPersonRef(id UserID) string {
	s := strings.ReplaceAll(string(id), "-", "")
	if len(s) < 8 {
		return s
	}
	return s[len(s)-8:]
}
