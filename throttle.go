package kluis

import (
	"context"
	"time"
)

// UnlockTTL is how long a mailed unlock link works.
const UnlockTTL = time.Hour

// AddressBlock is a client address the brute-force protection counts, as
// the operator sees it: a reference, never the address (R26).
type AddressBlock struct {
	Ref       string
	Blocks    int       // blocks in the current series
	Until     time.Time // zero: not blocked now
	Permanent bool
	UpdatedAt time.Time
}

// ThrottleService is what people may do about the brute-force protection
// (R18, R43): managers lift a person's sign-in lock, the operator settles
// address blocks.
type ThrottleService interface {
	// UnlockUser lifts a person's sign-in lock. Managers only. Errors:
	// forbidden, not_found.
	UnlockUser(ctx context.Context, org OrgID, actor Actor, id UserID) error
	// UserLocked tells until when a person's sign-in is locked (zero: not
	// locked). Managers only. Errors: forbidden, not_found.
	UserLocked(ctx context.Context, org OrgID, actor Actor, id UserID) (time.Time, error)
	// AddressBlocks lists the addresses blocked now or for good. The
	// operator. Errors: forbidden.
	AddressBlocks(ctx context.Context, actor Actor) ([]AddressBlock, error)
	// LiftAddressBlock ends a block. Errors: forbidden, not_found.
	LiftAddressBlock(ctx context.Context, actor Actor, ref string) error
	// KeepAddressBlock makes a block permanent. Errors: forbidden,
	// not_found.
	KeepAddressBlock(ctx context.Context, actor Actor, ref string) error
}
