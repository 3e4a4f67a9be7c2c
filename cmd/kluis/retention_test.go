package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/auditlog"
)

// TestAuditVerifyStaysGreenAfterPruning (R25): after the retention job
// pruned every organisation's events older than 730 days (two years on),
// `kluis audit verify` — what the daily audit_verify job runs — still
// finds every chain intact; deleting the oldest remaining event by hand
// then breaks that chain, and so does deleting the prune record.
func TestAuditVerifyStaysGreenAfterPruning(t *testing.T) {
	t.Parallel()
	s := setupChains(t, sqlstore.SQLite)
	clock := kluistest.NewClockAt(time.Now().UTC().Add(731 * 24 * time.Hour))
	st := openStoreAt(t, s.dir, s.dsn, clock.Now)
	ctx := context.Background()
	r, err := st.Retention.RunRetention(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.AuditPruned == 0 {
		t.Fatalf("%+v: nothing pruned two years on", r)
	}
	if _, err := st.Audit.Checkpoint(ctx, auditlog.DefaultCheckpointPolicy, true); err != nil {
		t.Fatal(err)
	}
	if res := cli(t, s.env, "", "audit", "verify", "--data", s.dir); res.code != 0 {
		t.Fatalf("audit verify after pruning: %s, want exit 0", res)
	}
	s.exec(t, `DELETE FROM audit_events WHERE chain = '{acme}' AND seq = (SELECT MIN(seq) FROM audit_events WHERE chain = '{acme}')`)
	res := cli(t, s.env, "", "audit", "verify", "--data", s.dir)
	if res.code != 1 || !strings.Contains(res.stdout, s.chain["acme"]+": BROKEN") {
		t.Fatalf("audit verify after deleting the oldest remaining event: %s, want acme broken", res)
	}
	s.exec(t, `DELETE FROM audit_prunes WHERE chain = '{beta}'`)
	res = cli(t, s.env, "", "audit", "verify", "--org", "beta", "--data", s.dir)
	if res.code != 1 || !strings.Contains(res.stdout, "BROKEN at sequence 1") {
		t.Fatalf("audit verify without beta's prune record: %s, want broken at 1", res)
	}
}
