package throttle_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore/areas"
	"github.com/kluis/kluis/internal/sqlstore/jobs"
)

const securityDesk = "security@operator.example"

// TestOrganisationWideAlarm (R26, R43, DESIGN §6): many identifiers failing
// with few successes raise one alarm — recorded in the organisation's chain,
// mailed to its managers and to the operator's security address without
// personal data — and never lock the organisation; the operator's digest
// counts it once, across two processes.
func TestOrganisationWideAlarm(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "alarmed")
		env.Mail(t)
		// 49 failures over 10 identifiers: no alarm yet.
		for i := range 49 {
			_, _, err := kluistest.LoginFrom(ctx, env.SignIn, o.ID, kluis.Origin{}, fmt.Sprintf("guess%d@alarmed.example", i%10), "Wrong 1 password")
			if code := kluis.ErrorCode(err); code != kluis.EUnauthenticated && code != kluis.ETooManyRequests {
				t.Fatalf("failure %d: %v", i, err)
			}
		}
		if n := countAudit(t, env, o.ID, mgr, "security.alarm"); n != 0 {
			t.Fatalf("alarm after 49 failures: %d", n)
		}
		for i := range 30 {
			kluistest.LoginFrom(ctx, env.SignIn, o.ID, kluis.Origin{}, fmt.Sprintf("guess%d@alarmed.example", i%10), "Wrong 1 password")
		}
		if n := countAudit(t, env, o.ID, mgr, "security.alarm"); n != 1 {
			t.Fatalf("alarms after 79 failures over 10 identifiers: %d, want one (at most one an hour)", n)
		}
		// The organisation is not locked: its manager signs in.
		env.SignedIn(t, o.ID, "boss@alarmed.example")
		var toManager, toDesk string
		for _, m := range env.Mail(t) {
			switch {
			case strings.Contains(m, "To: <boss@alarmed.example>"):
				toManager = m
			case strings.Contains(m, "To: <"+securityDesk+">"):
				toDesk = m
			}
		}
		if !strings.Contains(toManager, "/o/alarmed/audit") {
			t.Errorf("managers' alarm mail %q lacks the link to the audit log", toManager)
		}
		if toDesk == "" || strings.Contains(toDesk, "guess") || strings.Contains(toDesk, "boss") || strings.Contains(toDesk, "http") {
			t.Errorf("operator's alarm mail %q: want one, naming no person and no link", toDesk)
		}

		// The digest: due once, across two processes, as kluis serve runs
		// it (the scheduled job security_digest under its lease).
		other, _ := env.OtherProcess(t, keys.Options{})
		digest := func(a *areas.Areas, node string) bool {
			t.Helper()
			c, err := a.Jobs.Claim(ctx, "security_digest", node, jobs.Every(time.Hour), 5*time.Minute)
			if err != nil || c.Run == "" {
				return false
			}
			made, err := a.Throttle.SecurityDigest(ctx, time.Hour)
			if err != nil || !made {
				t.Fatalf("digest on %s: %v, %v", node, made, err)
			}
			if err := a.Jobs.Finish(ctx, c.Run, kluis.JobOK, "digest mailed"); err != nil {
				t.Fatal(err)
			}
			return true
		}
		if !digest(env.Areas, "node-a") {
			t.Fatal("first digest: not made")
		}
		if digest(other, "node-b") {
			t.Fatal("second node's digest right after: made, want none")
		}
		var mailed string
		for _, m := range env.Mail(t) {
			if strings.Contains(m, "security digest") {
				mailed = m
			}
		}
		for _, want := range []string{"organisation-wide alarms: 1", "  - alarmed", "accounts locked for unknown browsers: "} {
			if !strings.Contains(mailed, want) {
				t.Errorf("digest lacks %q:\n%s", want, mailed)
			}
		}
		for _, never := range []string{"guess", "boss@", "Boss"} {
			if strings.Contains(mailed, never) {
				t.Errorf("digest holds %q", never)
			}
		}
		env.Clock.Advance(61 * time.Minute)
		if !digest(other, "node-b") {
			t.Fatal("digest an hour later on the other node: not made")
		}
	}, kluistest.EnvOptions{SecurityEmail: securityDesk})
}

func countAudit(t *testing.T, env *kluistest.Env, org kluis.OrgID, mgr kluis.Actor, action string) int {
	t.Helper()
	events, _, err := env.Audit.FindAuditEvents(context.Background(), org, mgr, kluis.AuditFilter{Action: action, Limit: 1000})
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	return len(events)
}

// TestOperatorSettlesAddressBlocks (R18, R26): the operator sees blocked
// addresses by reference only, lifts a block or makes it permanent — a
// permanent block holds even for a browser with a device cookie — and each
// step is recorded in the platform chain. Old counters are forgotten.
func TestOperatorSettlesAddressBlocks(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		o, _ := env.NewOrg(t, "blocks")
		addr := netip.MustParseAddr("192.0.2.55")
		ctx, from := context.Background(), kluis.Origin{Client: addr}
		for range 20 {
			kluistest.LoginFrom(ctx, env.SignIn, o.ID, from, "nobody@blocks.example", "Wrong 1 password")
		}
		_, _, err := kluistest.LoginFrom(ctx, env.SignIn, o.ID, from, "boss@blocks.example", kluistest.Password)
		if kluis.ErrorCode(err) != kluis.ETooManyRequests {
			t.Fatalf("right password from a blocked address: %v, want too_many_requests", err)
		}
		blocks, err := env.Throttle.AddressBlocks(context.Background(), kluis.CLIActor)
		if err != nil || len(blocks) != 1 {
			t.Fatalf("blocks %+v, %v; want one", blocks, err)
		}
		ref, _ := env.Throttle.AddressRef(context.Background(), addr)
		if blocks[0].Ref != ref || strings.Contains(ref, "192") {
			t.Fatalf("block ref %q, want %q (no address)", blocks[0].Ref, ref)
		}
		if _, err := env.Throttle.AddressBlocks(context.Background(), kluis.Actor{}); kluis.ErrorCode(err) != kluis.EForbidden {
			t.Errorf("anonymous list: %v, want forbidden", err)
		}
		if err := env.Throttle.LiftAddressBlock(context.Background(), kluis.CLIActor, ref); err != nil {
			t.Fatal(err)
		}
		if _, _, err := kluistest.LoginFrom(ctx, env.SignIn, o.ID, from, "boss@blocks.example", kluistest.Password); err != nil {
			t.Fatalf("after the lift: %v", err)
		}
		if err := env.Throttle.KeepAddressBlock(context.Background(), kluis.CLIActor, ref); err != nil {
			t.Fatal(err)
		}
		env.Clock.Advance(48 * time.Hour)
		if _, _, err := kluistest.LoginFrom(ctx, env.SignIn, o.ID, from, "boss@blocks.example", kluistest.Password); kluis.ErrorCode(err) != kluis.ETooManyRequests {
			t.Fatalf("permanent block two days later: %v, want too_many_requests", err)
		}
		if err := env.Throttle.LiftAddressBlock(context.Background(), kluis.CLIActor, "000000000000"); kluis.ErrorCode(err) != kluis.ENotFound {
			t.Errorf("lifting an unknown reference: %v", err)
		}
		// Counters untouched for a day are forgotten, permanent blocks kept.
		for range 3 {
			kluistest.Login(context.Background(), env.SignIn, o.ID, "someone@blocks.example", "Wrong 1 password")
		}
		env.Clock.Advance(25 * time.Hour)
		if err := env.Throttle.SweepThrottle(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := queryCount(t, env, `SELECT COUNT(*) FROM login_failures`); n != 0 {
			t.Errorf("%d identifier counters left after a quiet day", n)
		}
		if n := queryCount(t, env, `SELECT COUNT(*) FROM address_failures WHERE permanent`); n != 1 {
			t.Errorf("%d permanent blocks left, want 1", n)
		}
		var actions []string
		for _, row := range env.Query(t, `SELECT action FROM audit_events WHERE chain = '`+audit.PlatformChain+`'`) {
			actions = append(actions, string(row[0]))
		}
		joined := strings.Join(actions, " ")
		for _, want := range []string{"throttle.lift", "throttle.permanent"} {
			if !strings.Contains(joined, want) {
				t.Errorf("platform chain lacks %s: %s", want, joined)
			}
		}
	})
}

func queryCount(t *testing.T, env *kluistest.Env, query string) int {
	t.Helper()
	rows := env.Query(t, query)
	n := 0
	fmt.Sscan(string(rows[0][0]), &n)
	return n
}
