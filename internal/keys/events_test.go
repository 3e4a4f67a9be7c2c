package keys_test

import (
	"errors"
	"regexp"
	"testing"

	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/kluistest"
)

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// R28: every key change is recorded in the key store with it, with the actor
// the caller names, in the order the changes committed; another process
// (one started after a crash) finds the same events; marked done, they are
// gone.
func TestKeyChangesAreRecordedWithTheirActor(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		org, user := kluistest.Name("org"), kluistest.Name("user")
		if err := e.store.EnsureUserKey(ctx, org, user, "user:M1"); err != nil {
			t.Fatal(err)
		}
		if err := e.store.EnsureUserKey(ctx, org, user, "user:M1"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.RotateOrgKey(ctx, org, "operator:O1"); err != nil {
			t.Fatal(err)
		}
		if err := e.store.DestroyUserKey(ctx, org, user, "user:M2"); err != nil {
			t.Fatal(err)
		}
		newRoot, err := keys.GenerateRoot()
		if err != nil {
			t.Fatal(err)
		}
		if err := e.store.RotateRoot(ctx, newRoot, "cli"); err != nil {
			t.Fatal(err)
		}

		type row struct {
			action  keys.Action
			kind    keys.Kind
			version int
			actor   string
		}
		want := []row{
			{keys.ActionCreated, keys.KindOrg, 1, "user:M1"},
			{keys.ActionCreated, keys.KindIndex, 1, "user:M1"},
			{keys.ActionCreated, keys.KindUser, 1, "user:M1"}, // once: the second Ensure made nothing
			{keys.ActionRotated, keys.KindOrg, 2, "operator:O1"},
			{keys.ActionRetired, keys.KindOrg, 1, "operator:O1"},
			{keys.ActionRotated, keys.KindUser, 2, "operator:O1"},
			{keys.ActionRetired, keys.KindUser, 1, "operator:O1"},
			{keys.ActionDestroyed, keys.KindUser, 1, "user:M2"},
			{keys.ActionDestroyed, keys.KindUser, 2, "user:M2"},
			{keys.ActionRootRotated, "", 2, "cli"},
		}
		// A process started afterwards, with the new root key, sees them all.
		after := e.open(t, newRoot, keys.Options{})
		got, err := after.PendingEvents(ctx, keys.MaxEventBatch)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("got %d events %+v, want %d", len(got), got, len(want))
		}
		seen := map[string]bool{}
		for i, ev := range got {
			w := want[i]
			// The two destructions come from one query: their order between
			// themselves is the database's.
			if w.action == keys.ActionDestroyed {
				w.version = ev.Version
			}
			if (row{ev.Action, ev.Key.Kind, ev.Version, ev.Actor}) != w {
				t.Errorf("event %d: got %s %s v%d by %q, want %s %s v%d by %q", i, ev.Action, ev.Key.Kind, ev.Version, ev.Actor, w.action, w.kind, w.version, w.actor)
			}
			if !uuidV7.MatchString(ev.EventID) || seen[ev.EventID] {
				t.Errorf("event %d has id %q, want a new UUIDv7", i, ev.EventID)
			}
			seen[ev.EventID] = true
			if ev.At.IsZero() {
				t.Errorf("event %d has no time", i)
			}
			if ev.Action != keys.ActionRootRotated && (ev.Key.Org != org || ev.ID == (keys.KeyID{})) {
				t.Errorf("event %d is about %+v (key %s), want a key of organisation %s", i, ev.Key, ev.ID, org)
			}
		}
		last := got[len(got)-1]
		if last.PreviousRootFingerprint != e.root.Fingerprint() || last.RootFingerprint != newRoot.Fingerprint() || last.Rewrapped < 3 {
			t.Errorf("root rotation event %+v, want both fingerprints and the platform, organisation and index keys re-wrapped", last)
		}
		if got[3].Rewrapped != 1 {
			t.Errorf("the organisation key's rotation re-wrapped %d keys, want 1 (the user key)", got[3].Rewrapped)
		}

		// Oldest first, in bounded batches; marked done, they are gone, and
		// marking again does no harm.
		first, err := after.PendingEvents(ctx, 4)
		if err != nil || len(first) != 4 || first[0].EventID != got[0].EventID || first[3].EventID != got[3].EventID {
			t.Fatalf("a batch of 4: %d events, %v; want the 4 oldest", len(first), err)
		}
		ids := []string{first[0].EventID, first[1].EventID, first[2].EventID, first[3].EventID}
		for range 2 {
			if err := e.store.MarkEventsDone(ctx, ids); err != nil {
				t.Fatal(err)
			}
		}
		rest, err := after.PendingEvents(ctx, keys.MaxEventBatch)
		if err != nil || len(rest) != len(want)-4 || rest[0].EventID != got[4].EventID {
			t.Fatalf("after marking 4 done: %d events, %v; want the other %d", len(rest), err, len(want)-4)
		}
		for _, n := range []int{0, -1, keys.MaxEventBatch + 1} {
			if _, err := after.PendingEvents(ctx, n); err == nil {
				t.Errorf("PendingEvents(%d) succeeded", n)
			}
		}
	})
}

// A key change needs its actor: without one it is refused and nothing
// changes. A key made on first use by Seal or BlindIndex is kluis's own
// doing, recorded as "system"; a change that fails records nothing.
func TestKeyChangesNeedAnActor(t *testing.T) {
	eachEngine(t, func(t *testing.T, e *env) {
		org, user := kluistest.Name("org"), kluistest.Name("user")
		newRoot, err := keys.GenerateRoot()
		if err != nil {
			t.Fatal(err)
		}
		long := string(make([]byte, 256))
		for name, change := range map[string]func(actor string) error{
			"EnsureOrgKey":      func(a string) error { return e.store.EnsureOrgKey(ctx, org, a) },
			"EnsureUserKey":     func(a string) error { return e.store.EnsureUserKey(ctx, org, user, a) },
			"EnsureProjectKey":  func(a string) error { return e.store.EnsureProjectKey(ctx, org, user, a) },
			"EnsurePlatformKey": func(a string) error { return e.store.EnsurePlatformKey(ctx, a) },
			"DestroyUserKey":    func(a string) error { return e.store.DestroyUserKey(ctx, org, user, a) },
			"DestroyProjectKey": func(a string) error { return e.store.DestroyProjectKey(ctx, org, user, a) },
			"DestroyOrgKeys":    func(a string) error { return e.store.DestroyOrgKeys(ctx, org, a) },
			"RotateOrgKey":      func(a string) error { _, err := e.store.RotateOrgKey(ctx, org, a); return err },
			"RotateRoot":        func(a string) error { return e.store.RotateRoot(ctx, newRoot, a) },
		} {
			for _, actor := range []string{"", long} {
				if err := change(actor); err == nil {
					t.Errorf("%s with the actor %q succeeded", name, actor[:min(len(actor), 8)])
				}
			}
		}
		if _, err := e.store.ActiveVersion(ctx, keys.UserKey(org, user)); !errors.Is(err, keys.ErrNoKey) {
			t.Errorf("after the refusals the user key: %v, want ErrNoKey", err)
		}
		if evs := e.events(t); len(evs) != 0 {
			t.Fatalf("the refusals recorded %+v", evs)
		}

		// A failed change (rotating a key never made) records nothing.
		if _, err := e.store.RotateOrgKey(ctx, org, "cli"); !errors.Is(err, keys.ErrNoKey) {
			t.Fatalf("rotating a key never made: %v", err)
		}
		mustSeal(t, e.store, keys.UserKey(org, user), userField(org, user, "name"), "Ada")
		evs := e.events(t)
		if len(evs) != 3 {
			t.Fatalf("a seal that made the keys recorded %d events, want 3 (organisation, index, user key)", len(evs))
		}
		for _, ev := range evs {
			if ev.Action != keys.ActionCreated || ev.Actor != "system" {
				t.Errorf("first use: %s by %q, want key.created by system", ev.Action, ev.Actor)
			}
		}
	})
}
