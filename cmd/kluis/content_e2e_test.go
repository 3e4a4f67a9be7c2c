package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/testservers"
)

// Large files stream through kluis serve in bounded memory (issue 12, R9):
// the server process's peak resident memory (VmHWM) may grow by at most
// streamMemoryBound while a file of streamFileSize goes up and comes back.
//
// The bound is the same on both engines. With PostgreSQL each sealed chunk
// is copied twice more on its way into the database (pgx's bytea encoding
// and its Bind message); with three blobs in flight VmHWM grew by 56–76 MiB,
// so the database's blob store takes one at a time (content.PutLimiter),
// and it grows by 45–48 MiB (SQLite: 35–43 MiB).
const (
	streamFileSize    = 256 << 20
	streamMemoryBound = 64 << 20
)

// TestLargeFileStreamsInBoundedMemory uploads a 256 MiB file to the real
// kluis serve binary and downloads it again, both streamed (the test never
// holds the file either: it is generated on the fly and hashed as it goes),
// and checks that the bytes come back unchanged and that the server's peak
// resident memory grew by at most 64 MiB.
//
// The acceptance test is SQLite's, where the chunks go to the content
// folder (content.Dir). With PostgreSQL the chunks are rows of the database
// (content_blobs), a path of its own through the driver; it runs here too,
// since on the development machine (2 shared cores) both together take
// 7–30 s. So does the content store in an S3 bucket (KLUIS_CONTENT_STORE,
// a real S3 server): the chunks are then objects of the bucket, none in
// the data folder.
func TestLargeFileStreamsInBoundedMemory(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads the server's VmHWM from /proc/PID/status")
	}
	t.Parallel()
	for _, store := range append(append([]string(nil), kluistest.Engines...), "s3") {
		t.Run(store, func(t *testing.T) {
			var extra []string
			bound := int64(streamMemoryBound)
			var bucket *testservers.S3
			switch store {
			case sqlstore.Postgres:
				extra = append(extra, "KLUIS_DB="+kluistest.PostgresDSN(t))
			case "s3":
				bucket = testservers.StartS3(t)
				extra = append(extra, "KLUIS_CONTENT_STORE="+bucket.URL("kluis-content", "chunks"),
					"KLUIS_CONTENT_S3_ACCESS_KEY="+bucket.AccessKey, "KLUIS_CONTENT_S3_SECRET_KEY="+bucket.SecretKey)
			}
			dir := streamLargeFile(t, processEnv(extra...), bound)
			if bucket == nil {
				return
			}
			var objects int64
			for info := range bucket.Client().ListObjects(t.Context(), "kluis-content", minio.ListObjectsOptions{Prefix: "chunks/", Recursive: true}) {
				if info.Err != nil {
					t.Fatal(info.Err)
				}
				objects += info.Size
			}
			if objects < streamFileSize {
				t.Errorf("the bucket holds %d bytes, want the file's chunks (%d bytes and more)", objects, streamFileSize)
			}
			if entries, _ := os.ReadDir(filepath.Join(dir, "content")); len(entries) != 0 {
				t.Errorf("the data folder's content store holds %d entries, want none", len(entries))
			}
		})
	}
}

// streamLargeFile runs the test in a new data folder, which it returns.
func streamLargeFile(t *testing.T, env []string, bound int64) string {
	dir := t.TempDir()
	srv := startServerProcess(t, env, "--addr", "127.0.0.1:0", "--data", dir)
	base := "http://" + srv.addr
	const email = "boss@acme.example"

	// An organisation from the command line, its manager through the
	// mailed invitation, signed in over HTTP.
	r := runProcess(t, env, "", "org", "create", "acme", "--name", "Acme", "--manager-email", email, "--data", dir)
	if r.code != 0 {
		t.Fatalf("org create: %s", r)
	}
	m := waitMail(t, dir, map[string]bool{}, patience)
	links := linkLines(m.body)
	if len(links) != 1 || links[0] != strings.TrimSpace(r.stdout) {
		t.Fatalf("the invitation mail links to %q, want [%q]", links, strings.TrimSpace(r.stdout))
	}
	token := joinOrg(t, base, "acme", links[0], email, "Boss Acme")
	var created struct {
		Project struct{ ID string } `json:"project"`
	}
	if got := api(t, "POST", base+"/api/v1/orgs/acme/projects", token, map[string]string{"name": "Big files"}, &created); got != http.StatusCreated {
		t.Fatalf("create a project: got %d, want 201", got)
	}
	fileURL := base + "/api/v1/orgs/acme/projects/" + created.Project.ID + "/files/data/big.bin"
	client := &http.Client{Timeout: patience}

	before := vmHWM(t, srv.cmd.Process.Pid)

	// Up: a deterministic pseudo-random stream, hashed as it is sent.
	start := time.Now()
	sent := sha256.New()
	body := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{'k', 'l', 'u', 'i', 's'}), streamFileSize), sent)
	req, err := http.NewRequest("PUT", fileURL, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = streamFileSize
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("PUT %d bytes: %v", streamFileSize, err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: got %d %s, want 201", resp.StatusCode, answer)
	}
	up := time.Since(start)
	afterUp := vmHWM(t, srv.cmd.Process.Pid)

	// Down: streamed into a hash.
	start = time.Now()
	req, err = http.NewRequest("GET", fileURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	got := sha256.New()
	n, err := io.Copy(got, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %d after %d bytes: %v", resp.StatusCode, n, err)
	}
	down := time.Since(start)
	if n != streamFileSize || !bytes.Equal(got.Sum(nil), sent.Sum(nil)) {
		t.Fatalf("downloaded %d bytes with SHA-256 %x, uploaded %d with %x", n, got.Sum(nil), int64(streamFileSize), sent.Sum(nil))
	}

	after := vmHWM(t, srv.cmd.Process.Pid)
	mib := func(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	t.Logf("upload %v (%.0f MB/s), download %v (%.0f MB/s); server VmHWM %s before, %s after the upload, %s after the download: grew %s",
		up.Round(time.Millisecond), streamFileSize/up.Seconds()/1e6, down.Round(time.Millisecond), streamFileSize/down.Seconds()/1e6,
		mib(before), mib(afterUp), mib(after), mib(after-before))
	if after-before > bound {
		t.Errorf("the server's peak resident memory grew by %s moving a %s file, want at most %s",
			mib(after-before), mib(streamFileSize), mib(bound))
	}
	exportLargeOrg(t, srv, base, token, created.Project.ID, sent.Sum(nil), before, bound)
	return dir
}

// vmHWM returns a process's peak resident set size ("high water mark"),
// in bytes, from /proc/PID/status.
func vmHWM(t testing.TB, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmHWM %q: %v", v, err)
			}
			return kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}
