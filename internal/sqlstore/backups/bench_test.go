//go:build linux

package backups_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/backup"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore/areas"
	"github.com/kluis/kluis/internal/sqlstore/backups"
)

// The backups issue's benchmark (issue 14): a full and an incremental
// backup of an instance, and its restore, side by side with Debian's restic
// backing up the same data folder to the same kind of target (a local
// folder on the same disk) in the same run. Figures go to
// docs/PERFORMANCE.md ("Backups (issue 14)") with the command; nothing here
// is asserted but that both tools restore what they backed up.
//
// It lives beside the engine rather than in internal/loadtest because it
// drives the engine itself (Service.Run, RestoreInstance) and no HTTP, so a
// -cpuprofile of this package shows the engine's own costs.
//
// The instance is 1/16 GiB unless KLUIS_BENCH_BACKUP_GIB asks for more
// (KLUIS_BENCH_BACKUP_GIB=1 is the size). Every figure is taken
// once per benchmark run: use -benchtime 1x, and -count for repetitions.

// benchLog prints a line at once: the benchmark runs for minutes, and the
// testing package keeps only the first ten lines a benchmark logs.
func benchLog(format string, args ...any) {
	fmt.Printf("backup bench: "+format+"\n", args...)
}

// benchSize is the instance's size in bytes.
func benchSize(b *testing.B) int64 {
	gib := 1.0 / 16
	if v := os.Getenv("KLUIS_BENCH_BACKUP_GIB"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || f > 64 {
			b.Fatalf("KLUIS_BENCH_BACKUP_GIB=%q: want a size in GiB such as 1 or 0.25", v)
		}
		gib = f
	}
	return int64(gib * (1 << 30))
}

// benchFile is one file of the instance: its content is size bytes of a
// ChaCha8 stream seeded with seed, so every run and both tools see the
// same incompressible bytes.
type benchFile struct {
	project int
	path    string
	size    int64
	seed    uint64
}

func (f benchFile) body() io.Reader {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(f.seed >> (8 * i))
	}
	return io.LimitReader(rand.NewChaCha8(s), f.size)
}

// benchFiles lays out size bytes as files of mixed sizes over projects: a
// quarter in many small files (1–64 KiB, documents and notes), a third in
// medium ones (256 KiB–4 MiB, scans and spreadsheets) and the rest in a few
// large ones (16–96 MiB, recordings and archives).
func benchFiles(size int64, projects int) []benchFile {
	rng := rand.New(rand.NewPCG(14, 2026))
	classes := []struct {
		name     string
		share    float64
		min, max int64
	}{
		{"notes", 0.25, 1 << 10, 64 << 10},
		{"scans", 0.35, 256 << 10, 4 << 20},
		{"media", 0.40, 16 << 20, 96 << 20},
	}
	var out []benchFile
	for _, c := range classes {
		budget := int64(float64(size) * c.share)
		for i := 0; budget > 0; i++ {
			n := min(budget, c.min+rng.Int64N(c.max-c.min+1))
			budget -= n
			out = append(out, benchFile{
				project: len(out) % projects,
				path:    fmt.Sprintf("%s/%03d/%s-%05d.bin", c.name, i%100, c.name, i),
				size:    n,
				seed:    rng.Uint64(),
			})
		}
	}
	return out
}

// benchRig is an instance with a backup engine writing to a folder.
type benchRig struct {
	env      *kluistest.Env
	engine   *backups.Service
	target   *backup.Dir
	identity *age.X25519Identity
	org      kluis.OrgID
	boss     kluis.Actor
	projects []kluis.ProjectID
	files    []benchFile
}

func newBenchRig(b *testing.B, size int64) *benchRig {
	ctx := context.Background()
	env := kluistest.NewEnv(b, "sqlite")
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	drill, err := backup.LoadOrCreateDrillIdentity(filepath.Join(env.Dir, "keys", "backup-drill.key"))
	if err != nil {
		b.Fatal(err)
	}
	target, err := backup.OpenDir(filepath.Join(b.TempDir(), "kluis-target"), "NL")
	if err != nil {
		b.Fatal(err)
	}
	blobs, err := areas.ContentStore(env.DB, env.Dir)
	if err != nil {
		b.Fatal(err)
	}
	engine := backups.New(env.Core, backups.Options{
		Targets: []backup.Target{target}, Recipients: []age.Recipient{id.Recipient()}, Drill: drill,
		Blobs: blobs, Witness: env.Witness, CheckpointKey: env.Signer.PublicKey(),
		KeyFiles: map[string]string{"root": filepath.Join(env.Dir, "keys", "root"), "audit-signing.key": filepath.Join(env.Dir, "keys", "audit-signing.key")},
		TmpDir:   filepath.Join(env.Dir, "tmp", "backup"), Backoff: time.Millisecond,
	})
	r := &benchRig{env: env, engine: engine, target: target, identity: id}
	o, boss := env.NewOrg(b, "bench")
	r.org, r.boss = o.ID, boss
	for i := range 4 {
		p, err := env.Projects.CreateProject(ctx, o.ID, boss, kluis.ProjectInput{Name: fmt.Sprintf("Project %d", i)})
		if err != nil {
			b.Fatal(err)
		}
		r.projects = append(r.projects, p.ID)
	}
	r.files = benchFiles(size, len(r.projects))
	start := time.Now()
	r.put(b, r.files)
	for _, p := range r.projects {
		if _, err := env.Projects.CreateVersion(ctx, o.ID, boss, p, "seeded"); err != nil {
			b.Fatal(err)
		}
	}
	benchLog("seeded %d files, %d MiB, in %v", len(r.files), size>>20, time.Since(start).Round(time.Second))
	return r
}

// put uploads files through Projects.PutFile, four at a time.
func (r *benchRig) put(b *testing.B, files []benchFile) {
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(files) {
					return
				}
				f := files[i]
				if _, _, err := r.env.Projects.PutFile(ctx, r.org, r.boss, r.projects[f.project], kluis.FileWrite{Path: f.path, Body: f.body()}); err != nil {
					errs <- fmt.Errorf("%s: %w", f.path, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// change gives about one percent of the instance's bytes new content:
// files drawn at random are written again with other bytes of their size.
func (r *benchRig) change(b *testing.B, size int64) int64 {
	rng := rand.New(rand.NewPCG(14, 1))
	var picked []benchFile
	var n int64
	seen := map[int]bool{}
	for n < size/100 {
		i := rng.IntN(len(r.files))
		if seen[i] || r.files[i].size > size/100 {
			continue
		}
		seen[i] = true
		f := r.files[i]
		f.seed = rng.Uint64()
		picked = append(picked, f)
		n += f.size
	}
	r.put(b, picked)
	return n
}

// restic runs Debian's restic with the repository and password in its
// environment and returns its wall time, CPU time and peak memory.
func restic(b *testing.B, repo string, args ...string) (wall, cpu time.Duration, maxRSS int64) {
	cmd := exec.Command("restic", args...)
	cmd.Env = append(os.Environ(), "RESTIC_REPOSITORY="+repo, "RESTIC_PASSWORD=kluis-bench",
		"RESTIC_CACHE_DIR="+filepath.Join(filepath.Dir(repo), "restic-cache"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("restic %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	wall = time.Since(start)
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), ru.Maxrss << 10
}

// selfCPU is the CPU time this process has used so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procStatus reads a field of /proc/self/status in bytes (VmRSS, VmHWM).
func procStatus(b *testing.B, field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// peakMemory measures what f adds to the process's memory at its peak:
// the resident set's high-water mark (VmHWM, reset before f through
// /proc/self/clear_refs) over the resident set before, and the peak of the
// Go heap's live and not yet collected objects, sampled every 5 ms.
func peakMemory(b *testing.B, f func()) (rssBefore, hwm, heapBefore, heapPeak int64) {
	runtime.GC()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Fatalf("resetting VmHWM: %v", err)
	}
	rssBefore = procStatus(b, "VmRSS")
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	heapBefore = int64(sample[0].Value.Uint64())
	var peak atomic.Int64
	peak.Store(heapBefore)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				metrics.Read(s)
				if v := int64(s[0].Value.Uint64()); v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()
	f()
	close(stop)
	<-done
	return rssBefore, procStatus(b, "VmHWM"), heapBefore, peak.Load()
}

// treeSize counts the files and bytes under dir.
func treeSize(b *testing.B, dir string) (files int, size int64) {
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		files++
		size += info.Size()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return files, size
}

// BenchmarkBackupVsRestic measures, on one SQLite instance built through
// the real areas (an organisation, four projects, files of mixed sizes
// uploaded with Projects.PutFile):
//
//   - kluis's full backup (Service.Run to a file:// target) and restic's
//     first backup of the instance's data folder (kluis.db, content/, keys/,
//     audit/) into a local repository on the same disk;
//   - after about 1 % of the bytes got new content, kluis's incremental
//     backup and restic's second backup;
//   - kluis's restore of the incremental backup (RestoreInstance into an
//     empty folder) and restic's restore of its latest snapshot;
//   - the peak memory of kluis's full backup.
//
// Targets (issue 14): the full backup within 1.5× restic's time, the
// incremental one faster than restic's.
func BenchmarkBackupVsRestic(b *testing.B) {
	if _, err := exec.LookPath("restic"); err != nil {
		b.Skip("restic is not installed (apt-get install restic)")
	}
	ctx := context.Background()
	size := benchSize(b)
	r := newBenchRig(b, size)
	dataFiles, dataBytes := treeSize(b, r.env.Dir)
	benchLog("data folder: %d files, %.1f MiB", dataFiles, float64(dataBytes)/(1<<20))
	repo := filepath.Join(b.TempDir(), "restic-repo")
	restic(b, repo, "init")
	load := func() string {
		l, _ := os.ReadFile("/proc/loadavg")
		return strings.Join(strings.Fields(string(l))[:3], " ")
	}

	type row struct {
		what         string
		kluis, rstc  time.Duration
		kcpu, rcpu   time.Duration
		kmem, rmem   int64
		kbytes, note string
	}
	var rows []row
	kluisRun := func() (time.Duration, time.Duration, kluis.Backup) {
		r.env.Clock.Advance(time.Minute)
		cpu0, start := selfCPU(), time.Now()
		bk, err := r.engine.Run(ctx, kluis.CLIActor)
		if err != nil {
			b.Fatalf("kluis backup: %v", err)
		}
		return time.Since(start), selfCPU() - cpu0, bk
	}

	// Full backups.
	benchLog("load before the full backups: %s", load())
	var full kluis.Backup
	var fullWall, fullCPU time.Duration
	rssBefore, hwm, heapBefore, heapPeak := peakMemory(b, func() { fullWall, fullCPU, full = kluisRun() })
	if full.Kind != "full" {
		b.Fatalf("first backup is %s", full.Kind)
	}
	rw, rc, rmem := restic(b, repo, "backup", "--quiet", r.env.Dir)
	rows = append(rows, row{what: "full backup", kluis: fullWall, rstc: rw, kcpu: fullCPU, rcpu: rc, kmem: hwm, rmem: rmem,
		kbytes: fmt.Sprintf("%.0f MiB", float64(full.Size)/(1<<20))})

	// Incremental backups after about 1 % changed.
	changed := r.change(b, size)
	benchLog("changed %.1f MiB; load before the incremental backups: %s", float64(changed)/(1<<20), load())
	iw, icpu, incr := kluisRun()
	if incr.Kind != "incremental" {
		b.Fatalf("second backup is %s", incr.Kind)
	}
	rw, rc, rmem = restic(b, repo, "backup", "--quiet", r.env.Dir)
	rows = append(rows, row{what: "incremental backup (1 % changed)", kluis: iw, rstc: rw, kcpu: icpu, rcpu: rc, rmem: rmem,
		kbytes: fmt.Sprintf("%.1f MiB", float64(incr.Size)/(1<<20))})

	// Restores of the latest backup.
	benchLog("load before the restores: %s", load())
	into := filepath.Join(b.TempDir(), "kluis-restored")
	cpu0, start := selfCPU(), time.Now()
	rep, err := backups.RestoreInstance(ctx, r.target, []age.Identity{r.identity}, incr.ID, backups.Into{DataDir: into})
	if err != nil {
		b.Fatalf("kluis restore: %v", err)
	}
	kw, kc := time.Since(start), selfCPU()-cpu0
	if rep.Chunks != len(rep.Manifest.Chunks) || rep.Chunks == 0 {
		b.Fatalf("kluis restored %d of %d chunks", rep.Chunks, len(rep.Manifest.Chunks))
	}
	rinto := filepath.Join(b.TempDir(), "restic-restored")
	rw, rc, rmem = restic(b, repo, "restore", "latest", "--target", rinto)
	if _, n := treeSize(b, rinto); n < size {
		b.Fatalf("restic restored %d bytes of a %d byte instance", n, size)
	}
	rows = append(rows, row{what: "restore of the latest backup", kluis: kw, rstc: rw, kcpu: kc, rcpu: rc, rmem: rmem})
	benchLog("load after the restores: %s", load())

	var tbl strings.Builder
	fmt.Fprintf(&tbl, "\n%-34s %10s %10s %7s %14s %14s %11s\n", "", "kluis", "restic", "ratio", "kluis CPU", "restic CPU", "restic RSS")
	for _, x := range rows {
		fmt.Fprintf(&tbl, "%-34s %9.1fs %9.1fs %6.2f× %13.1fs %13.1fs %7.0f MiB\n", x.what, x.kluis.Seconds(), x.rstc.Seconds(),
			x.kluis.Seconds()/x.rstc.Seconds(), x.kcpu.Seconds(), x.rcpu.Seconds(), float64(x.rmem)/(1<<20))
	}
	fmt.Fprintf(&tbl, "kluis full backup wrote %s, the incremental one %s\n", rows[0].kbytes, rows[1].kbytes)
	fmt.Fprintf(&tbl, "kluis full backup memory: VmHWM %.0f MiB (VmRSS before %.0f MiB), Go heap peak %.0f MiB (before %.0f MiB)\n",
		float64(hwm)/(1<<20), float64(rssBefore)/(1<<20), float64(heapPeak)/(1<<20), float64(heapBefore)/(1<<20))
	benchLog("%s", tbl.String())

	b.ReportMetric(0, "ns/op")
	for _, m := range []struct {
		v    float64
		unit string
	}{
		{rows[0].kluis.Seconds(), "kluis-full-s"}, {rows[0].rstc.Seconds(), "restic-full-s"},
		{rows[1].kluis.Seconds(), "kluis-incr-s"}, {rows[1].rstc.Seconds(), "restic-incr-s"},
		{rows[2].kluis.Seconds(), "kluis-restore-s"}, {rows[2].rstc.Seconds(), "restic-restore-s"},
		{rows[0].kluis.Seconds() / rows[0].rstc.Seconds(), "full-ratio"},
		{rows[1].kluis.Seconds() / rows[1].rstc.Seconds(), "incr-ratio"},
		{float64(hwm) / (1 << 20), "kluis-full-hwm-MiB"},
		{float64(heapPeak-heapBefore) / (1 << 20), "kluis-full-heap-MiB"},
	} {
		b.ReportMetric(m.v, m.unit)
	}
}
