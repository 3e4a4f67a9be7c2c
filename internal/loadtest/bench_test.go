package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/httpserver"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/password"
	"github.com/kluis/kluis/internal/sqlstore/throttle"
)

const pw = "bench-passw0rd"

type fixture struct {
	env    *kluistest.Env
	srv    *httptest.Server
	client *http.Client
	org    kluis.Org
	tokens []string // one session per user
	emails []string
}

// setup starts a server with real argon2id parameters, an organisation and
// n active users, each signed in once.
// benchThrottle lets one address (the benchmark's) fail without end: the
// timing benchmarks measure the path a request takes before any block.
var benchThrottle = throttle.Config{AddressFailures: 1 << 30}

func setup(b *testing.B, engine string, params password.Params, n int) *fixture {
	b.Helper()
	env := kluistest.NewEnv(b, engine, kluistest.EnvOptions{Argon2: params, Throttle: benchThrottle})
	ctx := context.Background()
	org, link, err := env.Orgs.CreateOrg(ctx, kluis.CLIActor, kluis.NewOrg{Slug: "bench", Name: "Bench", ManagerEmail: "u0@bench.example"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := env.Users.AcceptInvitation(ctx, org.ID, kluis.Origin{}, kluistest.Token(link), "User 0", pw); err != nil {
		b.Fatal(err)
	}
	f := &fixture{env: env, org: org}
	manager := kluis.Actor{}
	for i := 0; i < n; i++ {
		email := fmt.Sprintf("u%d@bench.example", i)
		if i > 0 {
			if _, err := env.Users.InviteUser(ctx, org.ID, manager, kluis.UserInput{Email: &email}); err != nil {
				b.Fatal(err)
			}
			if _, err := env.Users.AcceptInvitation(ctx, org.ID, kluis.Origin{}, env.LastToken(b), fmt.Sprintf("User %d", i), pw); err != nil {
				b.Fatal(err)
			}
		}
		sess, _, err := kluistest.Login(ctx, env.SignIn, org.ID, email, pw)
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			if manager, _, err = kluistest.Authenticate(ctx, env.SignIn, sess.Token); err != nil {
				b.Fatal(err)
			}
		}
		f.tokens = append(f.tokens, sess.Token)
		f.emails = append(f.emails, email)
	}
	f.srv = httptest.NewServer(httpserver.NewServer(httpserver.Config{Services: env.Services(), Ready: env.Ready}))
	b.Cleanup(f.srv.Close)
	f.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}
	return f
}

func (f *fixture) do(b *testing.B, method, path, token string, body []byte, want int) {
	req, _ := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(body))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		b.Error(err)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		b.Errorf("%s %s: got %d, want %d", method, path, resp.StatusCode, want)
	}
}

// BenchmarkArgon2idRaw is the raw hash rate of the default parameters on
// all cores: the ceiling for login throughput (R15).
func BenchmarkArgon2idRaw(b *testing.B) {
	h, err := password.NewHasher(password.DefaultParams, 0)
	if err != nil {
		b.Fatal(err)
	}
	load(b, 1, "hashes/s", func(int64) {
		if _, err := h.Hash(context.Background(), pw); err != nil {
			b.Error(err)
		}
	})
}

// BenchmarkLogin is successful logins over HTTP with the default argon2id
// parameters; compare logins/s with BenchmarkArgon2idRaw's hashes/s.
func BenchmarkLogin(b *testing.B) {
	for _, engine := range kluistest.Engines {
		b.Run(engine, func(b *testing.B) {
			f := setup(b, engine, password.DefaultParams, 4)
			bodies := make([][]byte, len(f.emails))
			for i, e := range f.emails {
				bodies[i], _ = json.Marshal(map[string]string{"email": e, "password": pw})
			}
			load(b, 4, "logins/s", func(k int64) {
				f.do(b, "POST", "/api/v1/orgs/bench/login", "", bodies[k%int64(len(bodies))], 200)
			})
		})
	}
}

// BenchmarkLoginFailureTiming measures the median time of the three kinds of
// failed login; they must not tell an attacker which one happened (DESIGN §5).
func BenchmarkLoginFailureTiming(b *testing.B) {
	f := setup(b, kluistest.Engines[0], password.DefaultParams, 3)
	ctx := context.Background()
	manager, _, err := kluistest.Authenticate(ctx, f.env.SignIn, f.tokens[0])
	if err != nil {
		b.Fatal(err)
	}
	var members []kluis.User // u0, u1, u2 by their sessions
	for _, token := range f.tokens {
		_, u, err := kluistest.Authenticate(ctx, f.env.SignIn, token)
		if err != nil {
			b.Fatal(err)
		}
		members = append(members, u)
	}
	yes := true
	if _, err := f.env.Users.UpdateUser(ctx, f.org.ID, manager, members[2].ID, kluis.UserInput{Disabled: &yes}); err != nil {
		b.Fatal(err)
	}
	cases := map[string][]byte{
		"unknown-email":  []byte(`{"email":"nobody%d@bench.example","password":"wrong-passw0rd"}`),
		"wrong-password": []byte(`{"email":"u1@bench.example","password":"wrong-passw0rd"}`),
		"disabled-user":  []byte(`{"email":"u2@bench.example","password":"` + pw + `"}`),
	}
	// Each attempt starts below the lock threshold (R18): the unknown
	// address is a new one each time, the accounts are unlocked by the
	// manager between attempts, outside the timed part.
	unlock := map[string]kluis.UserID{"wrong-password": members[1].ID, "disabled-user": members[2].ID}
	for _, name := range []string{"unknown-email", "wrong-password", "disabled-user"} {
		b.Run(name, func(b *testing.B) {
			var times []time.Duration
			i := 0
			for b.Loop() {
				body := cases[name]
				if id, ok := unlock[name]; ok {
					if err := f.env.Throttle.UnlockUser(ctx, f.org.ID, manager, id); err != nil {
						b.Fatal(err)
					}
				} else {
					body = fmt.Appendf(nil, string(body), i)
				}
				i++
				t0 := time.Now()
				f.do(b, "POST", "/api/v1/orgs/bench/login", "", body, 401)
				times = append(times, time.Since(t0))
			}
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2].Microseconds()), "median-µs")
		})
	}
}

// BenchmarkPasswordResetTiming measures the median time of a reset request
// for an existing account and for an unknown address: the answer must not
// tell which it was (R20). The two are interleaved, so that the machine's
// drift hits both alike.
func BenchmarkPasswordResetTiming(b *testing.B) {
	for _, engine := range kluistest.Engines {
		b.Run(engine, func(b *testing.B) {
			f := setup(b, engine, kluistest.FastArgon2, 2)
			bodies := [2][]byte{[]byte(`{"email":"u1@bench.example"}`), []byte(`{"email":"nobody@bench.example"}`)}
			var times [2][]time.Duration
			k := 0
			for b.Loop() {
				t0 := time.Now()
				f.do(b, "POST", "/api/v1/orgs/bench/password-reset", "", bodies[k%2], 202)
				times[k%2] = append(times[k%2], time.Since(t0))
				k++
			}
			for i, name := range []string{"existing", "unknown"} {
				slices.Sort(times[i])
				if len(times[i]) > 0 {
					b.ReportMetric(float64(times[i][len(times[i])/2].Microseconds()), name+"-median-µs")
				}
			}
		})
	}
}

// BenchmarkGetMe is authenticated reads: session lookup, user, JSON.
func BenchmarkGetMe(b *testing.B) {
	for _, engine := range kluistest.Engines {
		b.Run(engine, func(b *testing.B) {
			f := setup(b, engine, kluistest.FastArgon2, 16)
			load(b, 8, "req/s", func(k int64) {
				f.do(b, "GET", "/api/v1/orgs/bench/me", f.tokens[k%int64(len(f.tokens))], nil, 200)
			})
		})
	}
}

// BenchmarkPatchMe is audited writes: each request changes the user's name
// and appends to the organisation's chain in the same transaction. All
// users are in one organisation, so the chain head serialises them.
func BenchmarkPatchMe(b *testing.B) {
	for _, engine := range kluistest.Engines {
		b.Run(engine, func(b *testing.B) {
			f := setup(b, engine, kluistest.FastArgon2, 16)
			before := f.env.Core.GroupCommitStats()
			load(b, 8, "req/s", func(k int64) {
				body := []byte(fmt.Sprintf(`{"name":"Name %d"}`, k))
				f.do(b, "PATCH", "/api/v1/orgs/bench/me", f.tokens[k%int64(len(f.tokens))], body, 200)
			})
			reportBatches(b, f.env.Core, before)
		})
	}
}

// BenchmarkAccountPage is the heaviest page a person opens often: My account
// (session, policy, the recent sign-ins from the audit log with their
// addresses decrypted, a template), from the session cookie.
func BenchmarkAccountPage(b *testing.B) {
	for _, engine := range kluistest.Engines {
		b.Run(engine, func(b *testing.B) {
			f := setup(b, engine, kluistest.FastArgon2, 16)
			load(b, 8, "req/s", func(k int64) {
				req, _ := http.NewRequest("GET", f.srv.URL+"/o/bench/account", nil)
				req.AddCookie(&http.Cookie{Name: "__Host-kluis_session", Value: f.tokens[k%int64(len(f.tokens))]})
				resp, err := f.client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("GET account page: %d", resp.StatusCode)
				}
			})
		})
	}
}

// load runs op from parallelism×GOMAXPROCS goroutines and reports the rate.
func load(b *testing.B, parallelism int, unit string, op func(k int64)) {
	var i atomic.Int64
	b.SetParallelism(parallelism)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(p *testing.PB) {
		for p.Next() {
			op(i.Add(1))
		}
	})
	b.ReportMetric(float64(i.Load())/time.Since(start).Seconds(), unit)
}

// BenchmarkBlockedSignIn measures what a flood from a blocked address costs
// (R46, DESIGN §6): one indexed read and no write per request, so an
// attacker's requests are cheap to refuse. The benchmark's address is
// blocked by the operator's permanent block.
func BenchmarkBlockedSignIn(b *testing.B) {
	for _, engine := range kluistest.Engines {
		b.Run(engine, func(b *testing.B) {
			f := setup(b, engine, password.DefaultParams, 1)
			ctx := context.Background()
			body := []byte(`{"email":"u0@bench.example","password":"wrong-passw0rd"}`)
			f.do(b, "POST", "/api/v1/orgs/bench/login", "", body, 401) // the address is counted
			ref, err := f.env.Throttle.AddressRef(ctx, netip.MustParseAddr("127.0.0.1"))
			if err != nil {
				b.Fatal(err)
			}
			if err := f.env.Throttle.KeepAddressBlock(ctx, kluis.CLIActor, ref); err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					f.do(b, "POST", "/api/v1/orgs/bench/login", "", body, 429)
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "refusals/s")
		})
	}
}
