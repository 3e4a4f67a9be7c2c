package backups_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/backup"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqldump"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/backups"
)

const day = 24 * time.Hour

// holding is what a target holds: backup ids (by manifest), the ids of key
// store objects, and chunk object names.
type holding struct {
	backups, keys []string
	chunks        map[string]bool
	// data are the ids that have a data stream or any other object under
	// backups/<id>/.
	data map[string]bool
}

func held(t *testing.T, target backup.Target) holding {
	t.Helper()
	ctx := context.Background()
	h := holding{chunks: map[string]bool{}, data: map[string]bool{}}
	objs, err := target.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		switch {
		case strings.HasPrefix(o.Name, "chunks/"):
			h.chunks[o.Name] = true
		case strings.HasPrefix(o.Name, "keys/"):
			id, ok := backup.IDFromName(o.Name)
			if !ok {
				t.Fatalf("a stray object %s", o.Name)
			}
			h.keys = append(h.keys, id)
		case strings.HasSuffix(o.Name, "/manifest.age"):
			id, _ := backup.IDFromName(o.Name)
			h.backups = append(h.backups, id)
		case strings.HasPrefix(o.Name, "backups/"):
			h.data[strings.Split(o.Name, "/")[1]] = true
		default:
			t.Fatalf("a stray object %s", o.Name)
		}
	}
	sort.Strings(h.backups)
	sort.Strings(h.keys)
	return h
}

// platformEvents returns the targets of the platform chain's events of
// action, in order, with their outcome ("target/outcome").
func platformEvents(t *testing.T, env *kluistest.Env, action string) []string {
	t.Helper()
	var out []string
	for _, row := range env.Query(t, `SELECT target, outcome FROM audit_events WHERE chain = '`+audit.PlatformChain+`' AND action = '`+action+`' ORDER BY seq`) {
		out = append(out, string(row[0])+"/"+string(row[1]))
	}
	return out
}

// chunksNamed is the union of the chunk objects the manifests of ids name.
func chunksNamed(t *testing.T, r *rig, ids []string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, id := range ids {
		m, err := backups.ReadManifest(context.Background(), r.target, []age.Identity{r.identity}, id)
		if err != nil {
			t.Fatalf("manifest of %s: %v", id, err)
		}
		for _, c := range m.Chunks {
			out[c.Name] = true
		}
	}
	return out
}

func idTime(t *testing.T, id string) time.Time {
	t.Helper()
	at, err := backup.IDTime(id)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

// TestExpireOverThreeYears: three simulated years of backups every 7 to 10
// days, each followed by Expire, leave on the target exactly the backups the
// retention rules keep — none older than the maximum age — key store
// objects only from the last 30 days and the newest, and only the chunks the
// remaining backups name. The record says expired, with one backup.expire
// event for each, and what is left verifies and restores (R31 R32).
func TestExpireOverThreeYears(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		r := newRig(t, env)
		o, boss, _, p := fill(t, env, "acme")
		rules := backup.DefaultRetention
		began, start := time.Now(), env.Clock.Now()
		var all []string
		everChunks := map[string]bool{}
		returned := map[string]bool{}
		for i := 0; env.Clock.Now().Sub(start) < 3*365*day; i++ {
			// A file that changes every time: its earlier chunks stay only
			// in older backups, and go with them.
			body := strings.Repeat(fmt.Sprintf("rolling content %d ", i), 2000)
			if _, _, err := env.Projects.PutFile(ctx, o.ID, boss, p, kluis.FileWrite{Path: "rolling.txt", Body: strings.NewReader(body)}); err != nil {
				t.Fatal(err)
			}
			b, err := r.engine.Run(ctx, kluis.CLIActor)
			if err != nil {
				t.Fatalf("Run %d: %v", i, err)
			}
			all = append(all, b.ID)
			for c := range held(t, r.target).chunks {
				everChunks[c] = true
			}
			gone, err := r.engine.Expire(ctx)
			if err != nil {
				t.Fatalf("Expire after %s: %v", b.ID, err)
			}
			for _, id := range gone {
				if returned[id] {
					t.Fatalf("Expire removed %s twice", id)
				}
				returned[id] = true
			}
			// The target holds what the rules keep over every backup taken.
			now := env.Clock.Now()
			times := make([]time.Time, len(all))
			for j, id := range all {
				times[j] = idTime(t, id)
			}
			var want []string
			for j, k := range rules.Keep(now, times) {
				if k {
					want = append(want, all[j])
				}
			}
			h := held(t, r.target)
			if strings.Join(h.backups, " ") != strings.Join(want, " ") {
				t.Fatalf("after backup %d (%s) the target holds\n%v\nthe rules keep\n%v", i, b.ID, h.backups, want)
			}
			if len(h.keys) == 0 || h.keys[len(h.keys)-1] != b.ID {
				t.Fatalf("after backup %d the key store objects are %v, want %s among them", i, h.keys, b.ID)
			}
			for _, id := range h.keys[:len(h.keys)-1] {
				if now.Sub(idTime(t, id)) > backup.KeysMaxAge {
					t.Fatalf("after backup %d key store object %s is older than %v", i, id, backup.KeysMaxAge)
				}
			}
			if i%10 == 9 {
				named := chunksNamed(t, r, h.backups)
				for c := range named {
					if !h.chunks[c] {
						t.Fatalf("after backup %d chunk object %s of a kept backup is gone", i, c)
					}
				}
				if len(named) != len(h.chunks) {
					t.Fatalf("after backup %d the target holds %d chunk objects, its backups name %d", i, len(h.chunks), len(named))
				}
			}
			env.Clock.Advance(time.Duration(7+(i*5)%4) * day)
		}
		elapsed := time.Since(began)
		now := env.Clock.Now()
		h := held(t, r.target)
		t.Logf("%s: %d backups over %v, %d kept, %d key store objects, %d of %d chunk objects left, in %v",
			env.Engine, len(all), now.Sub(start).Round(day), len(h.backups), len(h.keys), len(h.chunks), len(everChunks), elapsed.Round(time.Millisecond))
		if len(all) < 100 {
			t.Fatalf("only %d backups simulated", len(all))
		}
		// One more expiry, at the end of the last interval.
		if _, err := r.engine.Expire(ctx); err != nil {
			t.Fatal(err)
		}
		h = held(t, r.target)

		// Nothing older than the maximum age; monthlies reach back nearly
		// that far.
		for _, id := range h.backups {
			if age := now.Sub(idTime(t, id)); age > rules.MaxAge {
				t.Errorf("backup %s is %v old, older than the maximum age", id, age)
			}
		}
		if oldest := now.Sub(idTime(t, h.backups[0])); oldest < 600*day {
			t.Errorf("the oldest backup left is %v old, want the monthlies of two years", oldest)
		}
		if h.backups[len(h.backups)-1] != all[len(all)-1] {
			t.Errorf("the newest backup %s is gone", all[len(all)-1])
		}
		kept := map[string]bool{}
		for _, id := range h.backups {
			kept[id] = true
		}
		for id := range h.data {
			if !kept[id] {
				t.Errorf("objects of expired backup %s are left", id)
			}
		}
		for _, id := range h.backups {
			if !h.data[id] {
				t.Errorf("backup %s has no data stream", id)
			}
		}

		// Key store objects: only those younger than KeysMaxAge, and the
		// newest.
		if len(h.keys) == 0 || h.keys[len(h.keys)-1] != all[len(all)-1] {
			t.Fatalf("key store objects %v, want the newest backup's among them", h.keys)
		}
		for _, id := range h.keys[:len(h.keys)-1] {
			if age := now.Sub(idTime(t, id)); age > backup.KeysMaxAge {
				t.Errorf("key store object %s is %v old, older than %v", id, age, backup.KeysMaxAge)
			}
		}
		if len(h.keys) > 5 {
			t.Errorf("%d key store objects left, want at most the last 30 days' (%v)", len(h.keys), h.keys)
		}

		// Chunks: exactly those the remaining manifests name.
		named := chunksNamed(t, r, h.backups)
		for c := range h.chunks {
			if !named[c] {
				t.Errorf("chunk object %s is named by no remaining backup", c)
			}
		}
		for c := range named {
			if !h.chunks[c] {
				t.Errorf("chunk object %s of a remaining backup is missing", c)
			}
		}
		if len(h.chunks) >= len(everChunks) {
			t.Errorf("%d chunk objects left of %d ever written: none was collected", len(h.chunks), len(everChunks))
		}

		// The record: kept backups ok, the others expired, each with one
		// backup.expire event.
		recs, err := r.engine.Backups(ctx, kluis.CLIActor, 0)
		if err != nil {
			t.Fatal(err)
		}
		status := map[string]kluis.Backup{}
		for _, b := range recs {
			status[b.ID] = b
		}
		var expired []string
		for _, id := range all {
			b, ok := status[id]
			switch {
			case !ok:
				t.Errorf("backup %s has no record", id)
			case kept[id] && b.Status != kluis.BackupOK:
				t.Errorf("kept backup %s is recorded %q", id, b.Status)
			case !kept[id]:
				if b.Status != kluis.BackupExpired {
					t.Errorf("expired backup %s is recorded %q", id, b.Status)
				}
				for _, c := range b.Copies {
					if c.Status != "deleted" {
						t.Errorf("a copy of expired backup %s is recorded %q", id, c.Status)
					}
				}
				if !returned[id] {
					t.Errorf("Expire never reported removing %s", id)
				}
				expired = append(expired, id+"/success")
			}
		}
		if len(returned) != len(expired) {
			t.Errorf("Expire reported %d removals, %d backups are expired", len(returned), len(expired))
		}
		events := platformEvents(t, env, "backup.expire")
		sort.Strings(events)
		if strings.Join(events, " ") != strings.Join(expired, " ") {
			t.Errorf("backup.expire events\n%v\nwant one for each expired backup\n%v", events, expired)
		}
		if n := len(platformEvents(t, env, "backup.delete")); n != 0 {
			t.Errorf("%d backup.delete events, want none: retention is not deletion on request", n)
		}
		res, err := env.Audit.VerifyChains(ctx, audit.PlatformChain)
		if err != nil || len(res) != 1 || !res[0].OK {
			t.Errorf("the platform chain does not verify: %+v, %v", res, err)
		}

		// What is left is whole: every backup verifies, and the oldest —
		// whose own key store object is long gone — restores with the
		// newest one.
		for _, id := range h.backups {
			v, err := r.engine.Verify(ctx, kluis.CLIActor, id)
			if err != nil || v.Damaged {
				t.Errorf("backup %s after expiry: %+v, %v", id, v, err)
			}
		}
		dir := filepath.Join(t.TempDir(), "restored")
		rep, err := backups.RestoreInstance(ctx, r.target, []age.Identity{r.identity}, h.backups[0], backups.Into{DataDir: dir})
		if err != nil {
			t.Fatalf("restoring the oldest backup left: %v", err)
		}
		if rep.KeysID != all[len(all)-1] {
			t.Errorf("the restore used key store object %s, want the newest, %s", rep.KeysID, all[len(all)-1])
		}
		a := restored(t, dir, "")
		if got := readFile(t, a, o.ID, boss, p, "docs/filea.txt"); got != "secret plans of acme" {
			t.Errorf("the oldest backup restores the file as %q", got)
		}
	})
}

// TestDeleteOnRequestRemovesTheBackup: a backup deleted on request is gone
// from the target with the chunks only it held, recorded as deleted and
// audited as backup.delete; the others stay whole (R31).
func TestDeleteOnRequestRemovesTheBackup(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		r := newRig(t, env)
		o, boss, _, p := fill(t, env, "acme")
		put := func(body string) {
			t.Helper()
			if _, _, err := env.Projects.PutFile(ctx, o.ID, boss, p, kluis.FileWrite{Path: "draft.txt", Body: strings.NewReader(body)}); err != nil {
				t.Fatal(err)
			}
		}
		run := func() kluis.Backup {
			t.Helper()
			b, err := r.engine.Run(ctx, kluis.CLIActor)
			if err != nil {
				t.Fatal(err)
			}
			env.Clock.Advance(day)
			return b
		}
		first := run()
		put(strings.Repeat("a draft only the second backup holds ", 1000))
		second := run()
		put(strings.Repeat("the final text ", 1000))
		third := run()
		only := chunksNamed(t, r, []string{second.ID})
		for c := range chunksNamed(t, r, []string{first.ID, third.ID}) {
			delete(only, c)
		}
		if len(only) == 0 {
			t.Fatal("the second backup holds no chunk of its own")
		}

		if err := r.engine.Delete(ctx, kluis.CLIActor, second.ID); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		h := held(t, r.target)
		if strings.Join(h.backups, " ") != first.ID+" "+third.ID || h.data[second.ID] {
			t.Fatalf("after deleting %s the target holds %v (data %v)", second.ID, h.backups, h.data)
		}
		for c := range only {
			if h.chunks[c] {
				t.Errorf("chunk %s of the deleted backup is still there", c)
			}
		}
		named := chunksNamed(t, r, h.backups)
		if len(named) != len(h.chunks) {
			t.Errorf("%d chunk objects, the remaining backups name %d", len(h.chunks), len(named))
		}
		for c := range named {
			if !h.chunks[c] {
				t.Errorf("chunk %s of a remaining backup is gone", c)
			}
		}
		b, err := r.engine.Backup(ctx, kluis.CLIActor, second.ID)
		if err != nil || b.Status != kluis.BackupDeleted {
			t.Errorf("the deleted backup's record: %+v, %v", b, err)
		}
		for _, id := range []string{first.ID, third.ID} {
			if b, err := r.engine.Backup(ctx, kluis.CLIActor, id); err != nil || b.Status != kluis.BackupOK {
				t.Errorf("backup %s: %+v, %v", id, b, err)
			}
			if v, err := r.engine.Verify(ctx, kluis.CLIActor, id); err != nil || v.Damaged {
				t.Errorf("backup %s after the deletion: %+v, %v", id, v, err)
			}
		}
		if got := platformEvents(t, env, "backup.delete"); strings.Join(got, " ") != second.ID+"/success" {
			t.Errorf("backup.delete events %v, want one for %s", got, second.ID)
		}
		if gone, err := r.engine.Expire(ctx); err != nil || len(gone) != 0 {
			t.Errorf("Expire after the deletion: %v, %v; want nothing to do", gone, err)
		}
		if got := platformEvents(t, env, "backup.expire"); len(got) != 0 {
			t.Errorf("backup.expire events %v, want none", got)
		}
		for _, id := range []string{second.ID, "20200101-000000-abcdef", "../keys/x", ""} {
			if err := r.engine.Delete(ctx, kluis.CLIActor, id); !errors.Is(err, backups.ErrUnknownBackup) {
				t.Errorf("Delete(%q): %v, want ErrUnknownBackup", id, err)
			}
		}
		if _, err := r.engine.Verify(ctx, kluis.CLIActor, second.ID); !errors.Is(err, backups.ErrUnknownBackup) {
			t.Errorf("Verify of the deleted backup: %v, want ErrUnknownBackup", err)
		}
	})
}

// keyRows returns the rows of the key store's table keys that the key
// store object of backup id holds, opened with the operator's identity.
func keyRows(t *testing.T, r *rig, id string) []map[string]any {
	t.Helper()
	rc, err := backup.Decrypt(context.Background(), r.target, backup.KeysName(id), []age.Identity{r.identity}, backup.Written{})
	if err != nil {
		t.Fatalf("opening key store object %s: %v", id, err)
	}
	defer rc.Close()
	return tableRows(t, rc, "keys")
}

// tableRows reads one table of a sqldump stream.
func tableRows(t *testing.T, in io.Reader, table string) []map[string]any {
	t.Helper()
	rd := sqldump.NewReader(in)
	var out []map[string]any
	found := false
	for {
		name, cols, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if name != table {
			continue
		}
		found = true
		for {
			row, err := rd.Row(len(cols))
			if err != nil {
				t.Fatal(err)
			}
			if row == nil {
				break
			}
			m := map[string]any{}
			for i, c := range cols {
				m[c] = row[i]
			}
			out = append(out, m)
		}
	}
	if !found {
		t.Fatalf("the stream holds no table %s", table)
	}
	return out
}

// personKeys sorts the key rows of owner into live ones (with key bytes)
// and destroyed ones (tombstones).
func personKeys(t *testing.T, rows []map[string]any, owner kluis.UserID) (live, destroyed int) {
	t.Helper()
	for _, row := range rows {
		if row["owner_id"] != string(owner) {
			continue
		}
		wrapped, _ := row["wrapped"].([]byte)
		switch {
		case row["state"] == "destroyed" && row["wrapped"] == nil:
			destroyed++
		case row["state"] == "destroyed":
			t.Errorf("a destroyed key of %s keeps %d key bytes", owner, len(wrapped))
		default:
			live++
		}
	}
	return live, destroyed
}

// sealedUser returns a person's sealed e-mail address as the data stream of
// backup id holds it.
func sealedUser(t *testing.T, r *rig, id string, user kluis.UserID) []byte {
	t.Helper()
	rc, err := backup.Decrypt(context.Background(), r.target, backup.DataName(id), []age.Identity{r.identity}, backup.Written{})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	for _, row := range tableRows(t, rc, "users") {
		if row["id"] == string(user) {
			b, ok := row["email"].([]byte)
			if !ok || len(b) == 0 {
				t.Fatalf("the e-mail address is stored as %T", row["email"])
			}
			return b
		}
	}
	t.Fatalf("backup %s holds no user %s", id, user)
	return nil
}

// TestErasureReachesBackupsAfterTheKeyWindow: a person erased after a
// backup is restored from no backup. Restoring the older backup uses the
// newest key store object, in which their key is destroyed, so they stay
// erased even while the older key store object still exists; once the
// key-backup window (30 days) has passed, no key store object on the target
// holds their key at all, and their sealed data in every older backup can no
// longer be opened by anyone (R5 R28 R31).
func TestErasureReachesBackupsAfterTheKeyWindow(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		r := newRig(t, env)
		o, boss, member, p := fill(t, env, "acme")
		const kimEmail = "kim.jansen@acme.example"
		kim := member.UserID
		first, err := r.engine.Run(ctx, kluis.CLIActor)
		if err != nil {
			t.Fatal(err)
		}
		if live, _ := personKeys(t, keyRows(t, r, first.ID), kim); live == 0 {
			t.Fatal("the first key store object holds no key of the person: the test proves nothing")
		}
		sealedKim, sealedBoss := sealedUser(t, r, first.ID, kim), sealedUser(t, r, first.ID, boss.UserID)

		if err := env.Users.DeleteUser(ctx, o.ID, boss, kim); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		env.Clock.Advance(day)
		second, err := r.engine.Run(ctx, kluis.CLIActor)
		if err != nil {
			t.Fatal(err)
		}
		if gone, err := r.engine.Expire(ctx); err != nil || len(gone) != 0 {
			t.Fatalf("Expire: %v, %v", gone, err)
		}
		if live, destroyed := personKeys(t, keyRows(t, r, second.ID), kim); live != 0 || destroyed == 0 {
			t.Fatalf("the key store object after the erasure holds %d live and %d destroyed keys of the person", live, destroyed)
		}
		// Inside the window the older key store object still holds the key:
		// that is the window, and what the restore must not use.
		if live, _ := personKeys(t, keyRows(t, r, first.ID), kim); live == 0 {
			t.Fatal("the first key store object is gone or changed inside the window")
		}

		check := func(t *testing.T, when string, wantKeys string) {
			dir := filepath.Join(t.TempDir(), "restored")
			rep, err := backups.RestoreInstance(ctx, r.target, []age.Identity{r.identity}, first.ID, backups.Into{DataDir: dir})
			if err != nil {
				t.Fatalf("%s: restoring the first backup: %v", when, err)
			}
			if rep.KeysID != wantKeys || rep.ErasedUsers != 1 || rep.ErasedProjects != 0 {
				t.Errorf("%s: restore report keys %s, erased %d people and %d projects; want keys %s and one person",
					when, rep.KeysID, rep.ErasedUsers, rep.ErasedProjects, wantKeys)
			}
			a := restored(t, dir, "")
			people, err := a.Users.FindUsers(ctx, o.ID, boss)
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range people {
				if u.ID == kim || u.Email == kimEmail {
					t.Errorf("%s: the erased person is listed after the restore", when)
				}
			}
			if len(people) != 1 || people[0].ID != boss.UserID {
				t.Errorf("%s: %d people after the restore, want the manager alone", when, len(people))
			}
			if _, _, err := kluistest.Login(ctx, a.SignIn, o.ID, kimEmail, kluistest.Password); err == nil {
				t.Errorf("%s: the erased person signs in to the restored instance", when)
			}
			if _, _, err := kluistest.Login(ctx, a.SignIn, o.ID, "boss@acme.example", kluistest.Password); err != nil {
				t.Errorf("%s: the manager cannot sign in to the restored instance: %v", when, err)
			}
			if got := readFile(t, a, o.ID, boss, p, "docs/filea.txt"); got != "secret plans of acme" {
				t.Errorf("%s: the restored file holds %q", when, got)
			}
			// The person's sealed fields in the older backup cannot be
			// opened with the restored key store; the manager's can.
			root, err := keys.LoadRoot(filepath.Join(dir, "keys", "root"))
			if err != nil {
				t.Fatal(err)
			}
			ks, err := keys.OpenStore(ctx, filepath.Join(dir, "keys", "keys.db"), root, nil, keys.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer ks.Close()
			if got, err := ks.Open(ctx, sqlstore.UserField(o.ID, kim, sqlstore.ColEmail), sealedKim); !errors.Is(err, keys.ErrKeyDestroyed) {
				t.Errorf("%s: the erased person's e-mail address opens (%q, %v)", when, got, err)
			}
			if got, err := ks.Open(ctx, sqlstore.UserField(o.ID, boss.UserID, sqlstore.ColEmail), sealedBoss); err != nil || string(got) != "boss@acme.example" {
				t.Errorf("%s: the manager's e-mail address: %q, %v", when, got, err)
			}
			// The organisation's log keeps the person's events, their
			// address erased.
			var invites, shown int
			err = a.Audit.ExportAudit(ctx, o.ID, boss, kluis.AuditFilter{}, func(e kluis.AuditEvent) error {
				if strings.Contains(string(e.Details), kimEmail) || strings.Contains(e.Client, kimEmail) {
					t.Errorf("%s: the restored log shows the erased person's address in %s", when, e.Action)
				}
				if e.Action == "user.invite" && e.Target == "user:"+string(kim) {
					invites++
					if !strings.Contains(string(e.Details), kluis.Erased) {
						t.Errorf("%s: the invitation's details %s, want the address erased", when, e.Details)
					}
				}
				if strings.Contains(string(e.Details), "boss@acme.example") {
					shown++
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if invites != 1 || shown == 0 {
				t.Errorf("%s: %d invitations of the person, %d events showing the manager's address; want 1 and some", when, invites, shown)
			}
		}

		// Inside the window: the older key store object exists, the restore
		// still takes the newest.
		check(t, "inside the window", second.ID)

		// Past the window, a new backup and expiry: no key store object on
		// the target holds the person's key any more.
		env.Clock.Advance(31 * day)
		third, err := r.engine.Run(ctx, kluis.CLIActor)
		if err != nil {
			t.Fatal(err)
		}
		if gone, err := r.engine.Expire(ctx); err != nil || len(gone) != 0 {
			t.Fatalf("Expire: %v, %v; want the data backups kept", gone, err)
		}
		h := held(t, r.target)
		if strings.Join(h.backups, " ") != first.ID+" "+second.ID+" "+third.ID {
			t.Fatalf("backups %v, want all three kept (dailies)", h.backups)
		}
		if strings.Join(h.keys, " ") != third.ID {
			t.Errorf("key store objects %v, want only the newest", h.keys)
		}
		for _, id := range h.keys {
			live, destroyed := personKeys(t, keyRows(t, r, id), kim)
			if live != 0 || destroyed == 0 {
				t.Errorf("key store object %s holds %d live and %d destroyed keys of the erased person", id, live, destroyed)
			}
			if live, _ := personKeys(t, keyRows(t, r, id), boss.UserID); live == 0 {
				t.Errorf("key store object %s holds no live key of the manager", id)
			}
		}
		check(t, "past the window", third.ID)
	})
}

// TestVerifyPastTheKeyWindow: a backup whose own key store object expired
// verifies with the newest key store object, which a restore uses; damage
// to that one, or its absence, is reported (R32).
func TestVerifyPastTheKeyWindow(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		r := newRig(t, env)
		fill(t, env, "acme")
		first, err := r.engine.Run(ctx, kluis.CLIActor)
		if err != nil {
			t.Fatal(err)
		}
		env.Clock.Advance(31 * day)
		second, err := r.engine.Run(ctx, kluis.CLIActor)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.engine.Expire(ctx); err != nil {
			t.Fatal(err)
		}
		if h := held(t, r.target); strings.Join(h.keys, " ") != second.ID || len(h.backups) != 2 {
			t.Fatalf("backups %v and key store objects %v, want both backups and the newest key store", h.backups, h.keys)
		}
		for _, id := range []string{first.ID, second.ID} {
			if v, err := r.engine.Verify(ctx, kluis.CLIActor, id); err != nil || v.Damaged {
				t.Errorf("backup %s: %+v, %v; want intact", id, v, err)
			}
		}
		path := filepath.Join(r.target.Root(), filepath.FromSlash(backup.KeysName(second.ID)))
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		damaged := bytes.Clone(raw)
		damaged[len(damaged)-20] ^= 1
		for _, c := range []struct {
			name  string
			apply func()
		}{
			{"a changed bit in the newest key store", func() { os.WriteFile(path, damaged, 0o600) }},
			{"no key store left", func() { os.Remove(path) }},
		} {
			c.apply()
			for _, id := range []string{first.ID, second.ID} {
				v, err := r.engine.Verify(ctx, kluis.CLIActor, id)
				if err != nil || !v.Damaged {
					t.Errorf("%s: backup %s: %+v, %v; want damaged", c.name, id, v, err)
				}
			}
		}
	})
}

// fullTarget is a real folder target whose writes fail while full is set,
// as on a full disk or an exhausted quota; it still lists and deletes.
type fullTarget struct {
	backup.Target
	full atomic.Bool
}

func (f *fullTarget) Put(ctx context.Context, name string, r io.Reader) error {
	if f.full.Load() {
		return errors.New("no space left on the device")
	}
	return f.Target.Put(ctx, name, r)
}

// TestExpireKeepsWhatATargetStillNeeds: while one target takes no new
// backups, retention leaves it its own newest backups — another target's
// rules do not remove them — and once it takes backups again, what no
// target's rules keep goes from both (R30 R31).
func TestExpireKeepsWhatATargetStillNeeds(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		near, err := backup.OpenDir(t.TempDir(), "NL")
		if err != nil {
			t.Fatal(err)
		}
		farDir, err := backup.OpenDir(t.TempDir(), "DE")
		if err != nil {
			t.Fatal(err)
		}
		far := &fullTarget{Target: farDir}
		r := newRig(t, env, near, far)
		fill(t, env, "acme")
		var farHad []string
		step := func(full bool) {
			t.Helper()
			far.full.Store(full)
			b, err := r.engine.Run(ctx, kluis.CLIActor)
			if full != (err != nil) || (full && b.Status != kluis.BackupPartial) {
				t.Fatalf("Run with the far target full=%v: %s, %v", full, b.Status, err)
			}
			if !full {
				farHad = append(farHad, b.ID)
			}
			if _, err := r.engine.Expire(ctx); err != nil {
				t.Fatal(err)
			}
			env.Clock.Advance(day)
		}
		for d := 0; d < 5; d++ {
			step(false)
		}
		for d := 0; d < 20; d++ {
			step(true)
		}
		// The far target's five backups are its newest: its rules keep
		// them all, whatever the near target's rules say.
		if got := held(t, farDir).backups; strings.Join(got, " ") != strings.Join(farHad, " ") {
			t.Fatalf("the far target holds %v, want its five backups %v", got, farHad)
		}
		for d := 0; d < 20; d++ {
			step(false)
		}
		// Back in step: each target holds exactly what its own rules or the
		// other's keep, and nothing older than the maximum age.
		now := env.Clock.Now()
		holdings := map[string][]string{}
		kept := map[string]bool{}
		for _, target := range []backup.Target{near, farDir} {
			ids := held(t, target).backups
			holdings[target.Name()] = ids
			times := make([]time.Time, len(ids))
			for i, id := range ids {
				times[i] = idTime(t, id)
			}
			for i, k := range backup.DefaultRetention.Keep(now, times) {
				if k {
					kept[ids[i]] = true
				}
			}
		}
		for name, ids := range holdings {
			for _, id := range ids {
				if !kept[id] {
					t.Errorf("%s still holds %s, which no target's rules keep", name, id)
				}
			}
		}
		// Its fifth backup is the newest of its week there (the weeklies
		// reach back eight weeks), although not on the near target.
		farHolds := strings.Join(holdings[farDir.Name()], " ")
		if !strings.Contains(farHolds, farHad[4]) || !strings.HasSuffix(farHolds, farHad[len(farHad)-1]) {
			t.Errorf("the far target holds %v, want among them %s and its newest", holdings[farDir.Name()], farHad[4])
		}
	})
}

// stuckTarget is a real folder target whose deletions fail while stuck is
// set, as when a target is down or refuses deletes.
type stuckTarget struct {
	backup.Target
	stuck atomic.Bool
}

func (s *stuckTarget) Delete(ctx context.Context, name string) error {
	if s.stuck.Load() {
		return errors.New("connection refused")
	}
	return s.Target.Delete(ctx, name)
}

// TestDeleteThatATargetRefusesIsNotRecordedDone (R31): while one target
// cannot delete, deleting a backup removes it from the other, says which
// target still holds it, and leaves the record and the audit chain saying
// nothing was deleted; once the target works again, the deletion goes
// through and is recorded once.
func TestDeleteThatATargetRefusesIsNotRecordedDone(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		near, err := backup.OpenDir(t.TempDir(), "NL")
		if err != nil {
			t.Fatal(err)
		}
		farDir, err := backup.OpenDir(t.TempDir(), "DE")
		if err != nil {
			t.Fatal(err)
		}
		far := &stuckTarget{Target: farDir}
		r := newRig(t, env, near, far)
		fill(t, env, "acme")
		b, err := r.engine.Run(ctx, kluis.CLIActor)
		if err != nil {
			t.Fatal(err)
		}
		far.stuck.Store(true)
		err = r.engine.Delete(ctx, kluis.CLIActor, b.ID)
		if err == nil || !strings.Contains(err.Error(), farDir.Name()) {
			t.Fatalf("Delete with the far target stuck: %v, want an error naming %s", err, farDir.Name())
		}
		if got := held(t, near).backups; len(got) != 0 {
			t.Errorf("the near target still holds %v", got)
		}
		if got := held(t, farDir).backups; strings.Join(got, " ") != b.ID {
			t.Errorf("the far target holds %v, want %s still", got, b.ID)
		}
		if rec, err := r.engine.Backup(ctx, kluis.CLIActor, b.ID); err != nil || rec.Status != kluis.BackupOK {
			t.Errorf("the record after a half deletion: %+v, %v; want it still ok", rec, err)
		}
		if got := platformEvents(t, env, "backup.delete"); len(got) != 0 {
			t.Errorf("backup.delete events %v, want none yet", got)
		}

		far.stuck.Store(false)
		if err := r.engine.Delete(ctx, kluis.CLIActor, b.ID); err != nil {
			t.Fatalf("Delete once the target works: %v", err)
		}
		if got := held(t, farDir).backups; len(got) != 0 {
			t.Errorf("the far target still holds %v", got)
		}
		if rec, err := r.engine.Backup(ctx, kluis.CLIActor, b.ID); err != nil || rec.Status != kluis.BackupDeleted {
			t.Errorf("the record: %+v, %v; want deleted", rec, err)
		}
		if got := platformEvents(t, env, "backup.delete"); strings.Join(got, " ") != b.ID+"/success" {
			t.Errorf("backup.delete events %v, want one for %s", got, b.ID)
		}
	})
}
