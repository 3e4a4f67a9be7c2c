package kluis

import (
	"context"
	"time"
)

// Reencryption is the state of an organisation's re-encryption after a key
// rotation (R28): the data sealed under retired key versions is sealed
// again under the new ones, in small steps, resumably.
type Reencryption struct {
	Org         OrgID
	Slug        string
	KeyVersion  string // the organisation key version rotated to
	StartedAt   time.Time
	Phase       string // the table being visited; "" when finished
	Done        int64  // rows visited in this pass
	Resealed    int64  // rows re-encrypted, all passes
	FinishedAt  time.Time
	SettledAt   time.Time // when every process seals with the new versions
	PassStarted time.Time
}

// Finished reports whether no row but audit rows uses the retired versions.
func (r Reencryption) Finished() bool { return !r.FinishedAt.IsZero() }

// RetiredUse counts, per organisation, the rows whose ciphertext uses a key
// version that is not active: data rows, which a finished re-encryption
// leaves none of, and audit rows, which keep theirs (the chain hashes them).
type RetiredUse struct {
	Org   OrgID
	Slug  string
	Data  int64
	Audit int64
}

// KeyService is the operator's key management over the data (R28):
// rotating an organisation's keys, re-encrypting what they sealed, and
// showing what still uses retired versions. The key store itself (root key,
// wrapping, destruction) is internal/keys.
type KeyService interface {
	// RotateOrgKey makes new versions of an organisation's keys and starts
	// its re-encryption; it returns the new organisation key version.
	// Errors: forbidden, not_found.
	RotateOrgKey(ctx context.Context, actor Actor, slug string) (int, error)
	// Reencrypt advances every unfinished re-encryption, reporting
	// progress, and returns their states.
	Reencrypt(ctx context.Context, progress func(Reencryption)) ([]Reencryption, error)
	// Reencryptions returns the state of every re-encryption.
	Reencryptions(ctx context.Context) ([]Reencryption, error)
	// RetiredUses counts the rows under retired key versions, per
	// organisation (a full read, for the command line).
	RetiredUses(ctx context.Context) ([]RetiredUse, error)
}
