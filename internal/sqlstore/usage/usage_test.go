package usage_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/kluistest"
)

var admin = kluis.Actor{Realm: kluis.RealmOperator, OperatorID: "0190a0a0-0000-7000-8000-0000000000d1", OperatorRole: kluis.OperatorAdmin}

// TestUsageCountersAddUpAcrossFlushesAndSmallCountsAreLeftOut (R37): two
// flushes (two nodes, or one node twice) add to the same counter; a count
// below five is never shown; only operator admins read; a feature that
// looks like a path with an id, an address or a number is refused and
// nothing of its batch is added.
func TestUsageCountersAddUpAcrossFlushesAndSmallCountsAreLeftOut(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		day := env.Clock.Now().UTC().Format("2006-01-02")
		other := env.Clock.Now().UTC().AddDate(0, 0, -1).Format("2006-01-02")
		for _, batch := range [][]kluis.UsageCount{
			{{Day: day, Feature: "GET /o/{org}/projects", Count: 3}, {Day: day, Feature: "signin.totp", Count: 4}},
			{{Day: day, Feature: "GET /o/{org}/projects", Count: 4}, {Day: other, Feature: "signin.totp", Count: 5}},
		} {
			if err := env.Usage.RecordUsage(ctx, batch); err != nil {
				t.Fatal(err)
			}
		}
		for _, bad := range []string{
			"GET /o/acme/projects/0190a0a0-0000-7000-8000-000000000001",
			"GET /o/{org}/users/jan@example.org",
			"GET /api/v1/orgs/{org}/projects/12345",
			"client 192.0.2.10",
			"/o/{org}/projects",
		} {
			err := env.Usage.RecordUsage(ctx, []kluis.UsageCount{{Day: day, Feature: "GET /o/{org}/account", Count: 9}, {Day: day, Feature: bad, Count: 9}})
			var ke *kluis.Error
			if !errors.As(err, &ke) || ke.Code != kluis.EInvalid {
				t.Errorf("feature %q: got %v, want invalid_input", bad, err)
			}
		}
		for _, who := range []kluis.Actor{
			{Realm: kluis.RealmOperator, OperatorID: "0190a0a0-0000-7000-8000-0000000000d2", OperatorRole: kluis.OperatorSupport},
			{Realm: kluis.RealmOperator, OperatorID: "0190a0a0-0000-7000-8000-0000000000d3", OperatorRole: kluis.OperatorSecurity},
			{},
		} {
			if _, err := env.Usage.UsageStatistics(ctx, who, time.Time{}, time.Time{}); !errors.Is(err, kluis.ErrForbidden) {
				t.Errorf("statistics as %+v: got %v, want forbidden", who, err)
			}
		}
		r, err := env.Usage.UsageStatistics(ctx, admin, time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		want := []kluis.UsageCount{{Day: other, Feature: "signin.totp", Count: 5}, {Day: day, Feature: "GET /o/{org}/projects", Count: 7}}
		if len(r.Counts) != len(want) {
			t.Fatalf("counts: got %+v, want %+v (signin.totp's 4 of today left out, no refused batch)", r.Counts, want)
		}
		for i := range want {
			if r.Counts[i] != want[i] {
				t.Errorf("count %d: got %+v, want %+v", i, r.Counts[i], want[i])
			}
		}
		if r.To != day {
			t.Errorf("the default range ends %s, want today %s", r.To, day)
		}
		only, err := env.Usage.UsageStatistics(ctx, admin, env.Clock.Now().AddDate(0, 0, -1), env.Clock.Now().AddDate(0, 0, -1))
		if err != nil || len(only.Counts) != 1 || only.Counts[0].Day != other {
			t.Errorf("yesterday alone: got %+v, %v", only, err)
		}
		if _, err := env.Usage.UsageStatistics(ctx, admin, env.Clock.Now(), env.Clock.Now().AddDate(0, 0, -1)); err == nil {
			t.Errorf("a range that ends before it starts was accepted")
		}
	})
}
