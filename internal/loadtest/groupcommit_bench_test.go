package loadtest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/httpserver"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore"
)

// reportBatches reports how many requests a group-commit batch held on
// average while the benchmark ran (issue 11).
func reportBatches(b *testing.B, s *sqlstore.Core, before sqlstore.GroupCommitStats) {
	after := s.GroupCommitStats()
	if n := after.Batches - before.Batches; n > 0 {
		b.ReportMetric(float64(after.Requests-before.Requests)/float64(n), "req/batch")
	}
}

// BenchmarkAuditedWritesSpread is audited PATCH /me spread over eight
// organisations, two users each: their chains are independent, so on
// PostgreSQL their batches commit side by side, while SQLite has one writer
// for all. Compare with BenchmarkPatchMe (one organisation).
func BenchmarkAuditedWritesSpread(b *testing.B) {
	for _, engine := range kluistest.Engines {
		b.Run(engine, func(b *testing.B) {
			env := kluistest.NewEnv(b, engine, kluistest.EnvOptions{Argon2: kluistest.FastArgon2, Throttle: benchThrottle})
			ctx := context.Background()
			type session struct{ slug, token string }
			var sessions []session
			for i := range 8 {
				slug := fmt.Sprintf("spread%d", i)
				o, link, err := env.Orgs.CreateOrg(ctx, kluis.CLIActor, kluis.NewOrg{Slug: slug, Name: slug, ManagerEmail: "u0@" + slug + ".example"})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := env.Users.AcceptInvitation(ctx, o.ID, kluis.Origin{}, kluistest.Token(link), "User 0", pw); err != nil {
					b.Fatal(err)
				}
				sess, _, err := kluistest.Login(ctx, env.SignIn, o.ID, "u0@"+slug+".example", pw)
				if err != nil {
					b.Fatal(err)
				}
				manager, _, err := kluistest.Authenticate(ctx, env.SignIn, sess.Token)
				if err != nil {
					b.Fatal(err)
				}
				email := "u1@" + slug + ".example"
				if _, err := env.Users.InviteUser(ctx, o.ID, manager, kluis.UserInput{Email: &email}); err != nil {
					b.Fatal(err)
				}
				if _, err := env.Users.AcceptInvitation(ctx, o.ID, kluis.Origin{}, env.LastToken(b), "User 1", pw); err != nil {
					b.Fatal(err)
				}
				sess1, _, err := kluistest.Login(ctx, env.SignIn, o.ID, email, pw)
				if err != nil {
					b.Fatal(err)
				}
				sessions = append(sessions, session{slug, sess.Token}, session{slug, sess1.Token})
			}
			f := &fixture{env: env}
			f.srv = httptest.NewServer(httpserver.NewServer(httpserver.Config{Services: env.Services(), Ready: env.Ready}))
			b.Cleanup(f.srv.Close)
			f.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}
			before := env.Core.GroupCommitStats()
			load(b, 8, "req/s", func(k int64) {
				s := sessions[k%int64(len(sessions))]
				f.do(b, "PATCH", "/api/v1/orgs/"+s.slug+"/me", s.token, fmt.Appendf(nil, `{"name":"Name %d"}`, k), 200)
			})
			reportBatches(b, env.Core, before)
		})
	}
}
