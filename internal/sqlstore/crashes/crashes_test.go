package crashes_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/kluistest"
)

var (
	admin    = kluis.Actor{Realm: kluis.RealmOperator, OperatorID: "0190a0a0-0000-7000-8000-0000000000c1", OperatorRole: kluis.OperatorAdmin}
	security = kluis.Actor{Realm: kluis.RealmOperator, OperatorID: "0190a0a0-0000-7000-8000-0000000000c2", OperatorRole: kluis.OperatorSecurity}
	support  = kluis.Actor{Realm: kluis.RealmOperator, OperatorID: "0190a0a0-0000-7000-8000-0000000000c3", OperatorRole: kluis.OperatorSupport}
)

// platformActions counts the platform chain's events by action.
func platformActions(t *testing.T, env *kluistest.Env) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, r := range env.Query(t, `SELECT action FROM audit_events WHERE chain = '`+audit.PlatformChain+`'`) {
		out[string(r[0])]++
	}
	return out
}

// TestCrashReportsAreForOperatorAdminsOnlyAndEveryReadingIsAudited (R38):
// admins list and open reports; security and support staff and people of
// an organisation are refused (and the refusal recorded); each opening is a
// crash.read event in the platform chain.
func TestCrashReportsAreForOperatorAdminsOnlyAndEveryReadingIsAudited(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		_, manager := env.NewOrg(t, kluistest.Name("crash"))
		id, err := env.Crashes.RecordCrash(ctx, kluis.CrashInput{Route: "GET /o/{org}/projects/{id}", RequestID: "0123456789abcdef01234567", Panic: "index out of range [3] with length 3", Stack: []byte("goroutine 7 [running]:\nmain.handler()")})
		if err != nil {
			t.Fatal(err)
		}
		for _, who := range []kluis.Actor{security, support, manager, {}} {
			if _, err := env.Crashes.CrashReports(ctx, who); !errors.Is(err, kluis.ErrForbidden) {
				t.Errorf("listing as %+v: got %v, want forbidden", who, err)
			}
			if _, err := env.Crashes.CrashReport(ctx, who, id); !errors.Is(err, kluis.ErrForbidden) {
				t.Errorf("opening as %+v: got %v, want forbidden", who, err)
			}
		}
		list, err := env.Crashes.CrashReports(ctx, admin)
		if err != nil || len(list) != 1 || list[0].ID != id || list[0].Message != "" || list[0].Stack != "" {
			t.Fatalf("admin's list: got %+v, %v; want the one report without message or stack", list, err)
		}
		c, err := env.Crashes.CrashReport(ctx, admin, id)
		if err != nil {
			t.Fatal(err)
		}
		if c.Route != "GET /o/{org}/projects/{id}" || c.RequestID != "0123456789abcdef01234567" || c.Message != "index out of range [3] with length 3" || !strings.Contains(c.Stack, "main.handler()") {
			t.Errorf("the report: got %+v", c)
		}
		if _, err := env.Crashes.CrashReport(ctx, admin, "0190a0a0-0000-7000-8000-0000000000ff"); !errors.Is(err, kluis.ErrNotFound) {
			t.Errorf("an unknown report: got %v, want not_found", err)
		}
		got := platformActions(t, env)
		if got["crash.record"] != 1 || got["crash.read"] < 1 {
			t.Errorf("platform chain: %v, want crash.record once and crash.read", got)
		}
		denied := len(env.Query(t, `SELECT action FROM audit_events WHERE action IN ('crash.list', 'crash.read') AND outcome = 'denied'`))
		if denied < 6 {
			t.Errorf("%d refusals recorded, want one per refused operator call (6)", denied)
		}
	})
}

// TestCrashReportsAreDeletedThirtyDaysAfterTheCrash (R38, on the movable
// clock): a report stays for 30 days, not a moment less, then the expiry
// deletes it and records crash.expire with the count.
func TestCrashReportsAreDeletedThirtyDaysAfterTheCrash(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		old, err := env.Crashes.RecordCrash(ctx, kluis.CrashInput{Route: "job:project_purge", Panic: "first"})
		if err != nil {
			t.Fatal(err)
		}
		env.Clock.Advance(10 * 24 * time.Hour)
		young, err := env.Crashes.RecordCrash(ctx, kluis.CrashInput{Route: "job:project_purge", Panic: "second"})
		if err != nil {
			t.Fatal(err)
		}
		env.Clock.Advance(20*24*time.Hour - time.Minute) // the first is 30 days less a minute old
		if n, err := env.Crashes.ExpireCrashReports(ctx); err != nil || n != 0 {
			t.Fatalf("before 30 days: %d deleted, %v; want none", n, err)
		}
		if got := platformActions(t, env)["crash.expire"]; got != 0 {
			t.Errorf("%d crash.expire events before anything expired, want 0", got)
		}
		env.Clock.Advance(2 * time.Minute)
		if n, err := env.Crashes.ExpireCrashReports(ctx); err != nil || n != 1 {
			t.Fatalf("after 30 days: %d deleted, %v; want the first", n, err)
		}
		if _, err := env.Crashes.CrashReport(ctx, admin, old); !errors.Is(err, kluis.ErrNotFound) {
			t.Errorf("the expired report: got %v, want not_found", err)
		}
		if _, err := env.Crashes.CrashReport(ctx, admin, young); err != nil {
			t.Errorf("the younger report: %v, want it kept", err)
		}
		rows := env.Query(t, `SELECT details FROM audit_events WHERE action = 'crash.expire'`)
		if len(rows) != 1 || !strings.Contains(string(rows[0][0]), `"deleted":1`) {
			t.Errorf("crash.expire events: %q, want one naming 1 deleted", rows)
		}
		env.Clock.Advance(10 * 24 * time.Hour)
		if n, err := env.Crashes.ExpireCrashReports(ctx); err != nil || n != 1 {
			t.Fatalf("the second after its 30 days: %d deleted, %v", n, err)
		}
		if rows := env.Query(t, `SELECT id FROM crash_reports`); len(rows) != 0 {
			t.Errorf("%d reports left, want none", len(rows))
		}
	})
}
