package sqlstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Upgrades (docs/OPERATIONS.md): migration 2 rebuilds the tables that held
// personal data in clear. A pre-release database that holds users is refused
// with a clear error and left exactly as it was; an empty one is migrated.
func TestPlaintextDatabaseIsNotUpgradedInPlace(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			for _, withUser := range []bool{true, false} {
				dir := t.TempDir()
				dsn := kluistest.DSN(t, engine)
				db, err := sqlstore.Open(ctx, dir, dsn)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				if err := db.MigrateTo(ctx, 1); err != nil {
					t.Fatal(err)
				}
				if withUser {
					for _, q := range []string{
						`INSERT INTO orgs (id, slug, name, language, created_at, password_min_length, password_require_digit, password_require_upper, session_idle_minutes, session_max_hours)
							VALUES ('o1', 'old', 'Old', 'en', 0, 8, false, false, 30, 12)`,
						`INSERT INTO users (id, org_id, email, email_lookup, name, phone, maintenance_emails, role, status, created_at, updated_at)
							VALUES ('u1', 'o1', 'ada@old.example', 'ada@old.example', 'Ada', '', true, 'manager', 'active', 0, 0)`,
					} {
						kluistest.RawExec(t, engine, dir, dsn, q)
					}
				}
				_, err = db.Migrate(ctx)
				if withUser {
					if !errors.Is(err, sqlstore.ErrPlaintextSchema) {
						t.Fatalf("migrating a pre-release database with users: got %v, want ErrPlaintextSchema", err)
					}
					if err := db.CheckMigrated(ctx); !errors.Is(err, sqlstore.ErrNotMigrated) {
						t.Errorf("after the refusal: %v, want the database still at version 1", err)
					}
					if n := kluistest.RawExec(t, engine, dir, dsn, `UPDATE users SET name = name WHERE email = 'ada@old.example'`); n != 1 {
						t.Errorf("after the refusal the user row is gone (%d rows)", n)
					}
				} else if err != nil {
					t.Fatalf("migrating an empty pre-release database: %v", err)
				}
			}
		})
	}
}
