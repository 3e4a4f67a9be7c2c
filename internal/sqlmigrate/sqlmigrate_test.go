package sqlmigrate_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"testing/fstest"

	_ "modernc.org/sqlite"

	"github.com/kluis/kluis/internal/sqlmigrate"
)

var files = fstest.MapFS{
	"m/001_init.sql": {Data: []byte("CREATE TABLE a (x INTEGER);")},
	"m/002_more.sql": {Data: []byte("CREATE TABLE b (y INTEGER);")},
}

func open(t *testing.T) *sql.DB {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "m.db")+"?_busy_timeout=10000&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Concurrent runners apply each migration exactly once; a second run applies
// none; a database ahead of the binary is refused.
func TestApplyOnceAndRefuseNewer(t *testing.T) {
	ms, err := sqlmigrate.Load(files, "m")
	if err != nil || len(ms) != 2 || ms[0].Version != 1 || ms[1].Version != 2 {
		t.Fatalf("Load: got %+v, %v", ms, err)
	}
	db := open(t)
	r := sqlmigrate.Runner{DB: db, Table: "schema_migrations"}
	var wg sync.WaitGroup
	counts := make([]int, 4)
	for i := range counts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := r.Apply(context.Background(), ms)
			if err != nil {
				t.Error(err)
			}
			counts[i] = n
		}()
	}
	wg.Wait()
	if total := counts[0] + counts[1] + counts[2] + counts[3]; total != 2 {
		t.Fatalf("applied %v migrations in total, want 2", counts)
	}
	if v, ok, err := r.Version(context.Background()); v != 2 || !ok || err != nil {
		t.Fatalf("Version: got %d %v %v, want 2", v, ok, err)
	}
	if _, err := r.Apply(context.Background(), ms[:1]); !errors.Is(err, sqlmigrate.ErrNewer) {
		t.Fatalf("older binary: got %v, want ErrNewer", err)
	}
}

func TestLoadRefusesBadNames(t *testing.T) {
	if _, err := sqlmigrate.Load(fstest.MapFS{"m/init.sql": {}}, "m"); err == nil {
		t.Fatal("a file without a number was accepted")
	}
}
