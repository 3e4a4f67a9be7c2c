package sqlstore

import (
	"context"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlmigrate"
)

// AppendThenFail appends an event in a write transaction and then fails it,
// to prove a rolled-back change leaves no audit event.
func (s *Core) AppendThenFail(ctx context.Context, org kluis.OrgID, failure error) error {
	return s.Write(ctx, OrgChain(org), func(t *Tx) error {
		if err := t.Append(ctx, OrgChain(org), kluis.CLIActor, "test.rolled_back", "", "success", nil); err != nil {
			return err
		}
		return failure
	})
}

// MigrateTo applies the migrations up to version only, as an older kluis did.
func (db *DB) MigrateTo(ctx context.Context, version int) error {
	r, ms, err := db.migrator()
	if err != nil {
		return err
	}
	var keep []sqlmigrate.Migration
	for _, m := range ms {
		if m.Version <= version {
			keep = append(keep, m)
		}
	}
	_, err = r.Apply(ctx, keep)
	return err
}
