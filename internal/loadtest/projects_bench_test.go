//go:build unix

package loadtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/httpserver"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/kluistest"
)

// The projects issue's benchmarks (issue 12): the project list of a large
// organisation, saving a version of a project of many files, and moving a
// large file in and out next to the disk's own speed.
//
// Seeding is slow (every project, grant and file goes through the real
// services, sealed under real keys and audited), so each engine's fixture
// is built once in a parent benchmark and measured in sub-benchmarks: a
// benchmark with sub-benchmarks runs its own body once, and with -count N
// each sub-benchmark runs N times on that one fixture.

// unwrapCounter counts the key store's unwraps (keys.Observer).
type unwrapCounter struct{ n atomic.Int64 }

func (c *unwrapCounter) KeyUnwrapped(string, keys.Kind) { c.n.Add(1) }

// followWallClock moves the env's clock along with the wall clock until the
// benchmark ends, so that what expires by time (the key cache's entries,
// keys.DefaultCacheTTL) expires as it does in a running server; the env's
// clock otherwise stands still.
func followWallClock(tb testing.TB, c *kluistest.Clock) {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		last := time.Now()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				c.Advance(now.Sub(last))
				last = now
			}
		}
	}()
	tb.Cleanup(func() { close(stop); <-done })
}

// processCPU is the CPU time this process (load generator and server, not
// PostgreSQL's server) has used so far: a measure of the work per request
// that the other work on a shared machine disturbs less than the rate.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// projectsServer serves env over loopback HTTP.
func projectsServer(tb testing.TB, env *kluistest.Env) (*httptest.Server, *http.Client) {
	srv := httptest.NewServer(httpserver.NewServer(httpserver.Config{Services: env.Services(), Ready: env.Ready}))
	tb.Cleanup(srv.Close)
	return srv, &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}}
}

// sessionToken signs email in (kluistest.Password) and returns the token.
func sessionToken(tb testing.TB, env *kluistest.Env, org kluis.OrgID, email string) string {
	tb.Helper()
	sess, _, err := kluistest.Login(context.Background(), env.SignIn, org, email, kluistest.Password)
	if err != nil {
		tb.Fatal(err)
	}
	return sess.Token
}

// inParallel runs f(i) for every i in [0, n) on workers goroutines and
// fails the benchmark on the first error.
func inParallel(tb testing.TB, n, workers int, f func(i int) error) {
	tb.Helper()
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		mu   sync.Mutex
		fail error
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if fail == nil {
						fail = fmt.Errorf("item %d: %w", i, err)
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if fail != nil {
		tb.Fatal(fail)
	}
}

// Sizes of the project list benchmark.
const (
	listProjects = 10000 // in the organisation
	listCreators = 4     // members who create them, in turn
	listGrantsTo = 10    // the reader may view every 10th: 1,000 projects
	listPage     = 30
)

// BenchmarkProjectListPage walks GET /api/v1/orgs/{org}/projects?limit=30
// page by page over loopback HTTP with parallel clients, in an
// organisation of 10,000 projects made through ProjectService.CreateProject
// by four members in turn (so every name is sealed under its project's own
// key), as
//   - manager: the organisation's manager, who under the default "managers"
//     policy may view all 10,000 (334 pages), and
//   - member: a member with viewer grants on every tenth project (1,000
//     projects, 34 pages), given through GrantService.SetGrant.
//
// Each of the 16 clients walks the pages from its own starting page and
// wraps around. Target: ≥ 3,000 pages/s on SQLite. unwraps/page counts the
// key store's unwraps per page (a page opens 30 names, each under its
// project's key): the key cache holds keys.DefaultCacheSize keys for
// keys.DefaultCacheTTL, and the env's clock follows the wall clock here, so
// the TTL runs out as in a server.
func BenchmarkProjectListPage(b *testing.B) {
	for _, engine := range kluistest.Engines {
		b.Run(engine, func(b *testing.B) {
			unwraps := &unwrapCounter{}
			env := kluistest.NewEnv(b, engine, kluistest.EnvOptions{Throttle: benchThrottle, KeyObserver: unwraps})
			followWallClock(b, env.Clock)
			ctx := context.Background()
			org, manager := env.NewOrg(b, "bench")
			var creators []kluis.Actor
			for i := range listCreators {
				creators = append(creators, env.NewMember(b, org, manager, fmt.Sprintf("creator%d@bench.example", i), kluis.RoleMember))
			}
			reader := env.NewMember(b, org, manager, "reader@bench.example", kluis.RoleMember)

			start := time.Now()
			ids := make([]kluis.ProjectID, listProjects)
			inParallel(b, listProjects, 2*listCreators, func(i int) error {
				p, err := env.Projects.CreateProject(ctx, org.ID, creators[i%listCreators], kluis.ProjectInput{Name: fmt.Sprintf("Project %05d", i)})
				ids[i] = p.ID
				return err
			})
			inParallel(b, listProjects/listGrantsTo, 8, func(i int) error {
				return env.Rights.SetGrant(ctx, org.ID, manager, ids[i*listGrantsTo],
					kluis.Grant{Subject: kluis.Subject{Kind: kluis.SubjectUser, ID: string(reader.UserID)}, Relation: kluis.RelViewer})
			})
			b.Logf("%s: seeded %d projects and %d grants in %v", engine, listProjects, listProjects/listGrantsTo, time.Since(start).Round(time.Second))

			srv, client := projectsServer(b, env)
			for _, who := range []struct {
				name, email string
				want        int
			}{
				{"manager", "boss@bench.example", listProjects},
				{"member", "reader@bench.example", listProjects / listGrantsTo},
			} {
				token := sessionToken(b, env, org.ID, who.email)
				cursors := walkProjectPages(b, client, srv.URL, token, who.want)
				b.Run(who.name, func(b *testing.B) {
					benchmarkPages(b, client, srv.URL, token, cursors, unwraps)
				})
			}
		})
	}
}

// walkProjectPages walks the list once, checking that it holds want
// projects, each once and with its name, and returns the pages' after=
// cursors in order ("" for the first).
func walkProjectPages(b *testing.B, client *http.Client, base, token string, want int) []string {
	b.Helper()
	cursors := []string{""}
	seen := map[string]bool{}
	for after := ""; ; {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v1/orgs/bench/projects?limit=%d&after=%s", base, listPage, after), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var page struct {
			Projects []struct{ ID, Name string }
			Next     string
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("GET projects after %q: %d %v", after, resp.StatusCode, err)
		}
		for _, p := range page.Projects {
			if seen[p.ID] || len(p.Name) != len("Project 00000") {
				b.Fatalf("project %s %q: listed twice or without its name", p.ID, p.Name)
			}
			seen[p.ID] = true
		}
		if page.Next == "" {
			break
		}
		after = page.Next
		cursors = append(cursors, after)
	}
	if len(seen) != want {
		b.Fatalf("the walk listed %d projects, want %d", len(seen), want)
	}
	return cursors
}

// benchmarkPages requests pages with 16 clients, each walking the pages in
// order from its own starting page, and reports pages/s, unwraps/page and
// the process's CPU time per page (cpu-µs/page, client and server).
func benchmarkPages(b *testing.B, client *http.Client, base, token string, cursors []string, unwraps *unwrapCounter) {
	urls := make([]string, len(cursors))
	for i, c := range cursors {
		urls[i] = fmt.Sprintf("%s/api/v1/orgs/bench/projects?limit=%d&after=%s", base, listPage, c)
	}
	var clients atomic.Int64
	before, cpu := unwraps.n.Load(), processCPU()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		pos := int(clients.Add(1)-1) * 7919 % len(urls)
		for pb.Next() {
			req, _ := http.NewRequest("GET", urls[pos], nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("GET page %d: %d", pos, resp.StatusCode)
				return
			}
			pos = (pos + 1) % len(urls)
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pages/s")
	b.ReportMetric(float64(unwraps.n.Load()-before)/float64(b.N), "unwraps/page")
	b.ReportMetric(float64((processCPU()-cpu).Microseconds())/float64(b.N), "cpu-µs/page")
}

// saveVersionFiles is how many small files the project of
// BenchmarkSaveVersion holds.
const saveVersionFiles = 1000

// BenchmarkSaveVersion times VersionService.CreateVersion of a project of
// 1,000 small files (230–440 bytes each, uploaded through
// FileService.PutFile), reporting ms/version. Versions accumulate while it
// runs, also across -count repetitions (one fixture); versions-at-end says
// how many the project had at the end, since saving gets slower as they
// grow.
func BenchmarkSaveVersion(b *testing.B) {
	for _, engine := range kluistest.Engines {
		b.Run(engine, func(b *testing.B) {
			env := kluistest.NewEnv(b, engine, kluistest.EnvOptions{Throttle: benchThrottle})
			ctx := context.Background()
			org, manager := env.NewOrg(b, "bench")
			p, err := env.Projects.CreateProject(ctx, org.ID, manager, kluis.ProjectInput{Name: "Many files"})
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			inParallel(b, saveVersionFiles, 8, func(i int) error {
				body := bytes.Repeat(fmt.Appendf(nil, "file %04d of the project\n", i), 10+i%10)
				_, _, err := env.Projects.PutFile(ctx, org.ID, manager, p.ID, kluis.FileWrite{
					Path: fmt.Sprintf("dir%02d/file%04d.txt", i%20, i), Body: bytes.NewReader(body)})
				return err
			})
			b.Logf("%s: uploaded %d files in %v", engine, saveVersionFiles, time.Since(start).Round(time.Millisecond))
			versions := 0
			b.Run(fmt.Sprintf("%d-files", saveVersionFiles), func(b *testing.B) {
				for b.Loop() {
					v, err := env.Projects.CreateVersion(ctx, org.ID, manager, p.ID, "a version")
					if err != nil {
						b.Fatal(err)
					}
					if v.Files != saveVersionFiles {
						b.Fatalf("version %d holds %d files, want %d", v.Number, v.Files, saveVersionFiles)
					}
					versions = v.Number
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/version")
				b.ReportMetric(float64(versions), "versions-at-end")
			})
		})
	}
}

// transferSize is the file BenchmarkUpload and BenchmarkDownload move, and
// BenchmarkDiskSequential writes and reads.
const transferSize = 64 << 20

// pseudoRandom returns n deterministic pseudo-random bytes.
func pseudoRandom(seed byte, n int) []byte {
	buf := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(buf)
	return buf
}

// transferFixture is a server with a signed-in manager.
type transferFixture struct {
	env    *kluistest.Env
	org    kluis.Org
	actor  kluis.Actor
	token  string
	srv    *httptest.Server
	client *http.Client
}

func newTransferFixture(b *testing.B, engine string) *transferFixture {
	env := kluistest.NewEnv(b, engine, kluistest.EnvOptions{Throttle: benchThrottle})
	f := &transferFixture{env: env}
	f.org, f.actor = env.NewOrg(b, "bench")
	f.token = sessionToken(b, env, f.org.ID, "boss@bench.example")
	f.srv, f.client = projectsServer(b, env)
	return f
}

func (f *transferFixture) newProject(b *testing.B, name string) kluis.ProjectID {
	p, err := f.env.Projects.CreateProject(context.Background(), f.org.ID, f.actor, kluis.ProjectInput{Name: name})
	if err != nil {
		b.Fatal(err)
	}
	return p.ID
}

func (f *transferFixture) fileURL(p kluis.ProjectID) string {
	return f.srv.URL + "/api/v1/orgs/bench/projects/" + string(p) + "/files/big.bin"
}

// put uploads data as big.bin of project p.
func (f *transferFixture) put(b *testing.B, p kluis.ProjectID, data []byte) {
	req, _ := http.NewRequest("PUT", f.fileURL(p), bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+f.token)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := f.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b.Fatalf("PUT: %d %s", resp.StatusCode, answer)
	}
}

// get downloads big.bin of project p into w.
func (f *transferFixture) get(b *testing.B, p kluis.ProjectID, w io.Writer, buf []byte) {
	req, _ := http.NewRequest("GET", f.fileURL(p), nil)
	req.Header.Set("Authorization", "Bearer "+f.token)
	resp, err := f.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.CopyBuffer(w, struct{ io.Reader }{resp.Body}, buf)
	resp.Body.Close()
	if err != nil || n != transferSize || resp.StatusCode != http.StatusOK {
		b.Fatalf("GET: %d, %d bytes, %v", resp.StatusCode, n, err)
	}
}

// BenchmarkUpload is a 64 MiB PUT over loopback HTTP into a new project
// each time (so no chunk is already stored): on SQLite the chunks go to the
// content folder, on PostgreSQL into the database. Compare its MB/s with
// BenchmarkDiskSequential's write (target: ≥ 50 % of it). cpu-ms/op is the
// process's CPU time per upload (client and server; not PostgreSQL's).
func BenchmarkUpload(b *testing.B) {
	data := pseudoRandom(1, transferSize)
	for _, engine := range kluistest.Engines {
		b.Run(engine, func(b *testing.B) {
			f := newTransferFixture(b, engine)
			b.Run("64MiB", func(b *testing.B) {
				b.SetBytes(transferSize)
				var cpu time.Duration
				i := 0
				for b.Loop() {
					b.StopTimer()
					p := f.newProject(b, fmt.Sprintf("Upload %d", i))
					i++
					b.StartTimer()
					start := processCPU()
					f.put(b, p, data)
					cpu += processCPU() - start
				}
				b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
			})
		})
	}
}

// BenchmarkDownload is a 64 MiB GET over loopback HTTP of a file stored as
// BenchmarkUpload stores it (its chunks read back, opened and checked). The
// bytes are compared with the upload's (SHA-256) once, outside the timing.
// Compare with BenchmarkDiskSequential's read (target: ≥ 50 % of it).
// cpu-ms/op as in BenchmarkUpload.
func BenchmarkDownload(b *testing.B) {
	data := pseudoRandom(2, transferSize)
	want := sha256.Sum256(data)
	for _, engine := range kluistest.Engines {
		b.Run(engine, func(b *testing.B) {
			f := newTransferFixture(b, engine)
			p := f.newProject(b, "Download")
			f.put(b, p, data)
			buf := make([]byte, 1<<20)
			h := sha256.New()
			f.get(b, p, h, buf)
			if !bytes.Equal(h.Sum(nil), want[:]) {
				b.Fatal("the download differs from the upload")
			}
			b.Run("64MiB", func(b *testing.B) {
				b.SetBytes(transferSize)
				cpu := processCPU()
				for b.Loop() {
					f.get(b, p, io.Discard, buf)
				}
				b.ReportMetric(float64((processCPU()-cpu).Milliseconds())/float64(b.N), "cpu-ms/op")
			})
		})
	}
}

// BenchmarkDiskSequential is the disk's own speed for the same bytes, in a
// temporary folder on the same file system as the other benchmarks' data
// folders (and, on this machine, PostgreSQL's): write 64 MiB in 1 MiB
// pieces with one fsync at the end, and read the file back (from the page
// cache, as the downloads read their freshly written chunks).
func BenchmarkDiskSequential(b *testing.B) {
	path := filepath.Join(b.TempDir(), "file")
	data := pseudoRandom(3, transferSize)
	b.Run("write", func(b *testing.B) {
		b.SetBytes(transferSize)
		for b.Loop() {
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			for off := 0; off < len(data); off += 1 << 20 {
				if _, err := f.Write(data[off : off+1<<20]); err != nil {
					b.Fatal(err)
				}
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			if err := f.Close(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			os.Remove(path)
			b.StartTimer()
		}
	})
	b.Run("read", func(b *testing.B) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 1<<20)
		b.SetBytes(transferSize)
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf)
			f.Close()
			if err != nil || n != transferSize {
				b.Fatal(n, err)
			}
		}
	})
}
