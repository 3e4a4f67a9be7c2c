package backups

import (
	"context"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"
	"github.com/kluis/kluis/internal/backup"
)

// The key-backup window. A backup's own key store object expires after
// KeysMaxAge (Expire), while its data may be kept for two years: so that a
// key destroyed by an erasure is gone from every backup after that window.
// A restore opens any backup with the newest key store object on its target
// (NewestKeys). What verification must check is therefore that key store:
// the backup's own object while it exists, and the newest one, which must be
// no older than the backup and open whole.

// checkKeys checks the key store objects a restore of m from t needs, and
// returns how many objects it checked.
func checkKeys(ctx context.Context, t backup.Target, identities []age.Identity, m backup.Manifest) (int, error) {
	n := 0
	switch err := backup.Check(ctx, t, m.Keys.Name, m.Keys); {
	case err == nil:
		n++
	case !errors.Is(err, backup.ErrNotExist):
		return n, err
	}
	newest, err := NewestKeys(ctx, t)
	if err != nil || newest < m.ID {
		return n, fmt.Errorf("%w: no key store object as new as the backup is left to restore it with", backup.ErrDamaged)
	}
	if newest == m.ID && n == 1 {
		return n, nil // its own, checked above
	}
	// The newest may belong to a backup deleted since: no manifest records
	// its checksum, so it is read whole and age authenticates every chunk.
	rc, err := backup.Decrypt(ctx, t, backup.KeysName(newest), identities, backup.Written{})
	if err != nil {
		return n, err
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return n, err
	}
	return n + 1, nil
}
