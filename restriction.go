package kluis

import "context"

// EProcessingRestricted refuses a change to the data of a person whose
// processing is restricted (R34, GDPR Art. 18); HTTP 409.
const EProcessingRestricted = "processing_restricted"

// ErrProcessingRestricted refuses a change to a restricted person's profile,
// role, status or contact data, and a manager's export of their data (the
// person takes their own). It never names the person.
var ErrProcessingRestricted = &Error{Code: EProcessingRestricted, Message: "processing of this person's data is restricted; lift the restriction first"}

// Restricted reports whether the person's processing is restricted.
func (u User) Restricted() bool { return !u.RestrictedAt.IsZero() }

// CanRestrict: a person restricts (and lifts) the processing of their own
// data; a manager does it for the people of their organisation. Support
// never does: it is the person's right or the controller's decision.
func CanRestrict(a Actor, org OrgID, id UserID) bool {
	return a.IsOrgUser(org) && (a.UserID == id || a.Role == RoleManager)
}

// RestrictionService restricts processing of one person's data (R34): while
// it lasts their data does not change (ErrProcessingRestricted), no mail is
// queued about them but the few a person needs to sign in, and the
// organisation's export leaves their personal values out. Recorded as
// user.restrict and user.lift_restriction in the organisation's chain.
type RestrictionService interface {
	// RestrictProcessing restricts processing of the person's data; again
	// changes nothing. Errors: unauthenticated, forbidden, not_found.
	RestrictProcessing(ctx context.Context, org OrgID, actor Actor, id UserID) error
	// LiftRestriction ends the restriction; lifting an unrestricted person
	// changes nothing. Errors: unauthenticated, forbidden, not_found.
	LiftRestriction(ctx context.Context, org OrgID, actor Actor, id UserID) error
}

// Withheld is shown in an export to others in place of a personal value of
// a person whose processing is restricted (R34).
const Withheld = "[restricted]"
