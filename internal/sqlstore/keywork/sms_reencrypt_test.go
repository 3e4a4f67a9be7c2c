package keywork_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/kluistest"
)

// R17, R28: the verified number and a queued text message are sealed under
// the person's key (nothing of them, nor the code, in the clear at rest),
// and an organisation key rotation re-encrypts both; the message is then
// still delivered and its code still works.
func TestSMSNumberAndQueueAreSealedAndReencrypted(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "txt")
		m := env.NewMember(t, o, mgr, "m@txt.example", kluis.RoleMember)
		if _, err := env.Factors.StartFactor(ctx, kluis.OrgScope(o.ID), m, kluis.FactorSMS, kluis.FactorSetup{Phone: "+31 6 12345678"}); err != nil {
			t.Fatal(err)
		}
		q := `SELECT user_id, envelope FROM sms_queue WHERE org_id = '` + string(o.ID) + `'`
		f := `SELECT user_id, secret FROM factors WHERE kind = 'sms' AND org_id = '` + string(o.ID) + `'`
		for _, query := range []string{q, f, `SELECT user_id, code_hash FROM sms_codes`} {
			rows := env.Query(t, query)
			if len(rows) != 1 {
				t.Fatalf("%s: %d rows, want 1", query, len(rows))
			}
			for _, s := range []string{"612345678", "+316"} {
				if bytes.Contains(rows[0][1], []byte(s)) {
					t.Errorf("%s holds %q in the clear", query, s)
				}
			}
		}
		if _, err := env.KeyWork.RotateOrgKey(ctx, kluis.CLIActor, "txt"); err != nil {
			t.Fatal(err)
		}
		env.Clock.Advance(env.KeyStore.CacheTTL())
		for i := 0; i < 3; i++ {
			if _, err := env.KeyWork.Reencrypt(ctx, nil); err != nil {
				t.Fatal(err)
			}
		}
		for _, query := range []string{q, f} {
			for _, r := range env.Query(t, query) {
				kv, err := keys.ParseCiphertext(r[1])
				if err != nil {
					t.Fatal(err)
				}
				active, err := env.KeyStore.ActiveVersion(ctx, keys.UserKey(string(o.ID), string(r[0])))
				if err != nil {
					t.Fatal(err)
				}
				if kv != active {
					t.Errorf("%s: sealed under %v after the re-encryption, want the active %v", query, kv, active)
				}
			}
		}
		msgs := env.SMS(t)
		if len(msgs) != 1 || msgs[0].To != "+31612345678" {
			t.Fatalf("delivered %+v, want one message to +31612345678", msgs)
		}
		if _, err := env.Factors.ConfirmFactor(ctx, kluis.OrgScope(o.ID), m, kluis.FactorSMS, kluis.FactorProof{Code: kluistest.SMSCode(t, msgs[0])}); err != nil {
			t.Fatalf("confirm after the rotation: %v", err)
		}
		if f, err := env.Factors.FindFactors(ctx, kluis.OrgScope(o.ID), m); err != nil || f.SMSNumber != "+3********78" {
			t.Errorf("the number after the rotation: %q, %v", f.SMSNumber, err)
		}
	})
}
