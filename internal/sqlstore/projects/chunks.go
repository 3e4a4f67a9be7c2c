package projects

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/content"
	"github.com/kluis/kluis/internal/sqlstore"
)

// The chunks of a project's content (DESIGN §8). Sealed chunks live in a
// content.Blobs: a folder in embedded mode (content.Dir), the content_blobs
// table with PostgreSQL (dbBlobs). content_chunks lists what the store holds,
// chunk_refs which file or version uses each chunk; the collector deletes
// chunks that nothing uses.
//
// An upload stores its chunks before its file refers to them, and may find
// chunks already there; the collector must not delete such a chunk in
// between. Uploads and collections of one project therefore exclude each
// other: an upload is registered (content_uploads) and a collection claimed
// (content_collections) under the organisation's chain lock, each refusing
// while the other is there. Rows left by a crash expire.

const (
	// uploadLease is how long a registered upload keeps the collector away
	// from its project; an upload that takes longer loses nothing but the
	// guarantee (its file's chunks are checked when it commits).
	uploadLease = 24 * time.Hour
	// collectionLease bounds one collection of one project.
	collectionLease = 10 * time.Minute
	// collectGrace keeps freshly stored chunks: the collector leaves a
	// chunk stored in the last hour alone whatever refers to it.
	collectGrace = time.Hour
)

// dbBlobs keeps sealed chunks in the database (content_blobs), for the
// PostgreSQL engine where every node must see every chunk.
type dbBlobs struct{ db *sqlstore.DB }

var (
	_ content.Blobs      = dbBlobs{}
	_ content.PutLimiter = dbBlobs{}
)

// MaxConcurrentPuts is 1: each blob is one INSERT that commits and syncs on
// its own, and the driver copies the blob twice on its way in, so puts at
// once cost memory and buy little.
func (dbBlobs) MaxConcurrentPuts() int { return 1 }

func (b dbBlobs) Put(ctx context.Context, project string, a content.Address, sealed []byte) error {
	if err := content.CheckProject(project); err != nil {
		return err
	}
	_, err := b.db.BlobExec(ctx, `INSERT INTO content_blobs (project_id, address, data) VALUES (?, ?, ?) ON CONFLICT (project_id, address) DO NOTHING`,
		project, a[:], sealed)
	return err
}

func (b dbBlobs) Get(ctx context.Context, project string, a content.Address) ([]byte, error) {
	if err := content.CheckProject(project); err != nil {
		return nil, err
	}
	var data []byte
	err := b.db.BlobRow(ctx, `SELECT data FROM content_blobs WHERE project_id = ? AND address = ?`, project, a[:]).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", content.ErrNotFound, a)
	}
	return data, err
}

func (b dbBlobs) Has(ctx context.Context, project string, a content.Address) (bool, error) {
	if err := content.CheckProject(project); err != nil {
		return false, err
	}
	var n int
	err := b.db.ReadRow(ctx, `SELECT COUNT(*) FROM content_blobs WHERE project_id = ? AND address = ?`, project, a[:]).Scan(&n)
	return n > 0, err
}

func (b dbBlobs) Delete(ctx context.Context, project string, a content.Address) error {
	if err := content.CheckProject(project); err != nil {
		return err
	}
	_, err := b.db.WriteExec(ctx, `DELETE FROM content_blobs WHERE project_id = ? AND address = ?`, project, a[:])
	return err
}

func (b dbBlobs) DeleteProject(ctx context.Context, project string) error {
	if err := content.CheckProject(project); err != nil {
		return err
	}
	_, err := b.db.WriteExec(ctx, `DELETE FROM content_blobs WHERE project_id = ?`, project)
	return err
}

// DBBlobs returns the content store that keeps sealed chunks in the
// database itself, as the PostgreSQL engine does.
func DBBlobs(db *sqlstore.DB) content.Blobs { return dbBlobs{db: db} }

// errBusy answers an upload that waited too long for a collection of its
// project to end.
var errBusy = kluis.Errorf(kluis.EConflict, "the project's storage is being tidied; try again in a moment")

// beginUpload registers an upload of project (under the organisation's
// chain lock, after the rights check in check), waiting briefly while a
// collection of the project runs. It returns the registration's id.
func (s *Service) beginUpload(ctx context.Context, org kluis.OrgID, project kluis.ProjectID, check func(*sqlstore.Tx) error) (string, error) {
	for attempt := 0; ; attempt++ {
		id, busy := "", false
		err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
			if err := check(t); err != nil {
				return err
			}
			var n int
			if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM content_collections WHERE project_id = ? AND until > ?`,
				project, sqlstore.Micros(t.Now())).Scan(&n); err != nil {
				return err
			}
			if busy = n > 0; busy {
				return nil
			}
			id = kluis.NewID(t.Now())
			_, err := t.Exec(ctx, `INSERT INTO content_uploads (id, project_id, started_at) VALUES (?, ?, ?)`, id, project, sqlstore.Micros(t.Now()))
			return err
		})
		if err != nil || !busy {
			return id, err
		}
		if attempt == 50 {
			return "", errBusy
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// endUpload forgets a failed upload, recording the chunks it stored so the
// collector can take them.
func (s *Service) endUpload(ctx context.Context, org kluis.OrgID, project kluis.ProjectID, id string, stored []content.Address) {
	ctx = context.WithoutCancel(ctx)
	err := s.core.Write(ctx, "", func(t *sqlstore.Tx) error {
		if err := recordChunks(ctx, t, project, stored); err != nil {
			return err
		}
		_, err := t.Exec(ctx, `DELETE FROM content_uploads WHERE id = ?`, id)
		return err
	})
	if err != nil {
		s.core.Log().Warn("an ended upload stays registered until it expires", "err", err.Error())
	}
}

// recordChunks notes chunks as held by the content store.
func recordChunks(ctx context.Context, t *sqlstore.Tx, project kluis.ProjectID, addrs []content.Address) error {
	for _, a := range addrs {
		if _, err := t.Exec(ctx, `INSERT INTO content_chunks (project_id, address, size, touched_at) VALUES (?, ?, 0, ?)
			ON CONFLICT (project_id, address) DO UPDATE SET touched_at = excluded.touched_at`, project, a[:], sqlstore.Micros(t.Now())); err != nil {
			return err
		}
	}
	return nil
}

// sizeChunks notes the content size of the manifest's chunks where it is
// not known yet (a chunk recorded by a failed upload, or before sizes were
// kept): the licence's storage counts each chunk once by it (R13).
func sizeChunks(ctx context.Context, t *sqlstore.Tx, project kluis.ProjectID, m content.FileManifest) error {
	for _, c := range m.Chunks {
		if _, err := t.Exec(ctx, `UPDATE content_chunks SET size = ? WHERE project_id = ? AND address = ? AND size = 0`,
			int64(c.Size), project, c.Address[:]); err != nil {
			return err
		}
	}
	return nil
}

// holdChunks makes holder (a file "f:…" or a version "v:N") the user of
// exactly the chunks of the manifests given.
func holdChunks(ctx context.Context, t *sqlstore.Tx, project kluis.ProjectID, holder string, ms ...content.FileManifest) error {
	if _, err := t.Exec(ctx, `DELETE FROM chunk_refs WHERE project_id = ? AND holder = ?`, project, holder); err != nil {
		return err
	}
	seen := map[content.Address]bool{}
	for _, m := range ms {
		for _, c := range m.Chunks {
			if seen[c.Address] {
				continue
			}
			seen[c.Address] = true
			if _, err := t.Exec(ctx, `INSERT INTO chunk_refs (project_id, address, holder) VALUES (?, ?, ?)`, project, c.Address[:], holder); err != nil {
				return err
			}
		}
	}
	return nil
}

// CollectChunks deletes the chunks that no file or version uses any more
// and that were stored more than an hour ago, project by project, never
// while an upload of the project runs. It returns how many it deleted. It
// runs under a job lease (kluis serve's maintenance loop).
func (s *Service) CollectChunks(ctx context.Context) (int, error) {
	type proj struct {
		id  kluis.ProjectID
		org kluis.OrgID
	}
	var todo []proj
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		rows, err := t.Query(ctx, `SELECT DISTINCT c.project_id, p.org_id FROM content_chunks c JOIN projects p ON p.id = c.project_id
			WHERE c.touched_at < ? AND NOT EXISTS (SELECT 1 FROM chunk_refs r WHERE r.project_id = c.project_id AND r.address = c.address)`,
			sqlstore.Micros(t.Now().Add(-collectGrace)))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var p proj
			if err := rows.Scan(&p.id, &p.org); err != nil {
				return err
			}
			todo = append(todo, p)
		}
		return rows.Err()
	})
	if err != nil {
		return 0, err
	}
	deleted := 0
	for _, p := range todo {
		n, err := s.collect(ctx, p.org, p.id)
		deleted += n
		if err != nil {
			return deleted, err
		}
	}
	return deleted, nil
}

// collect deletes one project's unused chunks, if no upload of it runs.
func (s *Service) collect(ctx context.Context, org kluis.OrgID, project kluis.ProjectID) (int, error) {
	var garbage []content.Address
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		var n int
		if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM content_uploads WHERE project_id = ? AND started_at > ?`,
			project, sqlstore.Micros(t.Now().Add(-uploadLease))).Scan(&n); err != nil || n > 0 {
			return err
		}
		rows, err := t.Query(ctx, `SELECT address FROM content_chunks c WHERE c.project_id = ? AND c.touched_at < ?
			AND NOT EXISTS (SELECT 1 FROM chunk_refs r WHERE r.project_id = c.project_id AND r.address = c.address)`,
			project, sqlstore.Micros(t.Now().Add(-collectGrace)))
		if err != nil {
			return err
		}
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				rows.Close()
				return err
			}
			garbage = append(garbage, content.Address(b))
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(garbage) == 0 {
			return err
		}
		_, err = t.Exec(ctx, `INSERT INTO content_collections (project_id, until) VALUES (?, ?)
			ON CONFLICT (project_id) DO UPDATE SET until = excluded.until`, project, sqlstore.Micros(t.Now().Add(collectionLease)))
		return err
	})
	if err != nil || len(garbage) == 0 {
		return 0, err
	}
	deleted := 0
	for _, a := range garbage {
		if err := s.blobs.Delete(ctx, string(project), a); err != nil {
			break
		}
		deleted++
	}
	err = s.core.Write(ctx, "", func(t *sqlstore.Tx) error {
		for _, a := range garbage[:deleted] {
			if _, err := t.Exec(ctx, `DELETE FROM content_chunks WHERE project_id = ? AND address = ?`, project, a[:]); err != nil {
				return err
			}
		}
		_, err := t.Exec(ctx, `DELETE FROM content_collections WHERE project_id = ?`, project)
		return err
	})
	return deleted, err
}

// ForgetContent deletes the content rows of every project of org, in the
// transaction that deletes the organisation (whose projects, files and
// versions go with it by foreign key), and returns the projects, whose
// blobs DropBlobs removes once it has committed.
func ForgetContent(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID) ([]kluis.ProjectID, error) {
	rows, err := t.Query(ctx, `SELECT id FROM projects WHERE org_id = ?`, org)
	if err != nil {
		return nil, err
	}
	var ids []kluis.ProjectID
	for rows.Next() {
		var id kluis.ProjectID
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, id := range ids {
		for _, q := range []string{
			`DELETE FROM chunk_refs WHERE project_id = ?`,
			`DELETE FROM content_chunks WHERE project_id = ?`,
			`DELETE FROM content_blobs WHERE project_id = ?`,
			`DELETE FROM content_uploads WHERE project_id = ?`,
			`DELETE FROM content_collections WHERE project_id = ?`,
		} {
			if _, err := t.Exec(ctx, q, id); err != nil {
				return nil, err
			}
		}
	}
	return ids, nil
}

// DropBlobs removes the blobs of projects that are gone. Their keys are
// destroyed, so a failure leaves only unreadable bytes; it is logged.
func (s *Service) DropBlobs(ctx context.Context, ids []kluis.ProjectID) {
	for _, id := range ids {
		if err := s.blobs.DeleteProject(context.WithoutCancel(ctx), string(id)); err != nil {
			s.core.Log().Warn("a deleted project's chunks stay in the content store, unreadable (their key is destroyed)", "err", err.Error())
		}
	}
}
