package content

import (
	"context"
	"errors"
	"fmt"
)

// Blobs keeps sealed chunks by project and address. [Dir] keeps them in a
// folder; the scale-out engines keep them in a database table or a bucket.
// Implementations are safe for concurrent use. They see only sealed bytes
// and never open them.
//
// Every method refuses a project id that is not a lower-case UUID with
// [ErrBadProject], and a blob of more than [MaxBlobSize] bytes.
type Blobs interface {
	// Put stores sealed at address in project. It is durable when Put
	// returns. Putting an address that is already there succeeds and may
	// keep either copy (both are the same chunk, sealed twice).
	Put(ctx context.Context, project string, address Address, sealed []byte) error
	// Get returns the blob at address, or an error wrapping [ErrNotFound].
	Get(ctx context.Context, project string, address Address) ([]byte, error)
	// Has reports whether there is a blob at address.
	Has(ctx context.Context, project string, address Address) (bool, error)
	// Delete removes the blob at address; a missing one is not an error.
	Delete(ctx context.Context, project string, address Address) error
	// DeleteProject removes every blob of project; a project without blobs
	// is not an error. The caller stops writing to the project first.
	DeleteProject(ctx context.Context, project string) error
}

// MaxSealOverhead bounds how many bytes a [Sealer] may add to a chunk, and
// MaxBlobSize is therefore the largest blob: a blob larger than that is not
// a sealed chunk, and is refused rather than read into memory.
const (
	MaxSealOverhead = 1024
	MaxBlobSize     = MaxChunkSize + MaxSealOverhead
)

// Errors of Blobs.
var (
	// ErrNotFound means there is no blob at the address asked for.
	ErrNotFound = errors.New("content: no such blob")
	// ErrBadProject means a project id is not a lower-case UUID (such as
	// kluis.NewID makes), the only ids that can name a folder safely.
	ErrBadProject = errors.New("content: invalid project id")
)

// CheckProject returns an error wrapping [ErrBadProject] unless project
// has the shape of a lower-case UUID: 8-4-4-4-12 hexadecimal digits.
func CheckProject(project string) error {
	if len(project) != 36 {
		return fmt.Errorf("%w: %q", ErrBadProject, truncate(project))
	}
	for i := 0; i < len(project); i++ {
		c := project[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return fmt.Errorf("%w: %q", ErrBadProject, project)
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return fmt.Errorf("%w: %q", ErrBadProject, project)
			}
		}
	}
	return nil
}

// truncate keeps error messages short whatever a caller passed.
func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
