package main

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/audit"
)

// exportLargeOrg downloads the organisation's export (R9) from the real
// server while its project holds the large file of streamLargeFile, and
// checks that the file comes back byte for byte inside the archive, that
// the server's peak memory stays within the same bound (the export streams
// from the content store into the ZIP), and that `kluis audit verify
// --export` finds the archive's audit log intact from the file alone (the
// command is given no database and no data folder).
func exportLargeOrg(t *testing.T, srv *serverProcess, base, token, project string, sent []byte, before, bound int64) {
	t.Helper()
	req, err := http.NewRequest("GET", base+"/api/v1/orgs/acme/export", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	start := time.Now()
	resp, err := (&http.Client{Timeout: patience}).Do(req)
	if err != nil {
		t.Fatalf("GET export: %v", err)
	}
	path := filepath.Join(t.TempDir(), "acme-export.zip")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(f, resp.Body)
	resp.Body.Close()
	f.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET export: %d after %d bytes: %v", resp.StatusCode, n, err)
	}
	took := time.Since(start)
	after := vmHWM(t, srv.cmd.Process.Pid)

	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatalf("the export is no ZIP: %v", err)
	}
	defer zr.Close()
	rc, err := zr.Open("projects/" + project + "/files/data/big.bin")
	if err != nil {
		t.Fatalf("the export lacks the large file: %v", err)
	}
	got := sha256.New()
	m, err := io.Copy(got, rc)
	rc.Close()
	if err != nil || m != streamFileSize || !bytes.Equal(got.Sum(nil), sent) {
		t.Fatalf("the exported file: %d bytes, SHA-256 %x, err %v; want %d bytes with %x", m, got.Sum(nil), err, int64(streamFileSize), sent)
	}
	mib := func(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	t.Logf("export of %s in %v; server VmHWM %s after it: grew %s since before the upload", mib(n), took.Round(time.Millisecond), mib(after), mib(after-before))
	if after-before > bound {
		t.Errorf("the server's peak resident memory grew by %s with a %s file exported, want at most %s", mib(after-before), mib(streamFileSize), mib(bound))
	}
	r := runProcess(t, processEnv(), "", "audit", "verify", "--export", path)
	if r.code != 0 || !strings.Contains(r.stdout, "ok") {
		t.Fatalf("audit verify --export: %s", r)
	}
}

// exportFixture writes a small export archive whose audit chain of n
// events is signed by a fresh key, with line tamper (1-based; 0: none)
// changed after signing.
func exportFixture(t *testing.T, n, tamper int) string {
	t.Helper()
	signer, err := audit.GenerateSigner()
	if err != nil {
		t.Fatal(err)
	}
	chain := "org:0190f0e0-0000-7000-8000-000000000001"
	var events bytes.Buffer
	var prev audit.Hash
	at := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	for i := 1; i <= n; i++ {
		e := audit.Event{Chain: chain, Seq: int64(i), ID: fmt.Sprintf("0190f0e0-0000-7000-8000-%012d", i), At: at.Add(time.Duration(i) * time.Second),
			Actor: "cli", Action: "user.invite", Target: "org:x", Outcome: "success", Details: []byte(`{"role":"member"}`)}
		e.Seal(prev)
		prev = e.Hash
		x := audit.NewExportedEvent(e, json.RawMessage(e.Details), "")
		if i == tamper {
			x.Action = "user.delete"
		}
		line, _ := json.Marshal(x)
		events.Write(append(line, '\n'))
	}
	cp := audit.Checkpoint{Chain: chain, Seq: int64(n), Hash: prev, At: at.Add(time.Hour)}
	signer.Sign(&cp)
	cps, _ := json.Marshal(audit.NewExportedCheckpoints(chain, audit.Head{Seq: int64(n), Hash: prev}, []audit.Checkpoint{cp}))
	pub, err := audit.MarshalPublicKey(signer.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "export.zip")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for name, b := range map[string][]byte{audit.ExportEventsFile: events.Bytes(), audit.ExportCheckpointsFile: cps, audit.ExportPublicKeyFile: pub} {
		w, _ := zw.Create(name)
		w.Write(b)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return path
}

// TestAuditVerifyExport (R9, R25): `kluis audit verify --export FILE`
// needs nothing but the archive: exit 0 for an intact log, 1 naming the
// first broken sequence number for a changed line, 2 for a file that is no
// export.
func TestAuditVerifyExport(t *testing.T) {
	env := testEnv() // no data folder, no database
	r := cli(t, env, "", "audit", "verify", "--export", exportFixture(t, 7, 0))
	if r.code != 0 || !strings.Contains(r.stdout, "ok, 7 events") {
		t.Errorf("intact export: %s", r)
	}
	r = cli(t, env, "", "audit", "verify", "--export", exportFixture(t, 7, 4))
	if r.code != 1 || !strings.Contains(r.stdout, "BROKEN at sequence 4: "+audit.ProblemHashMismatch) {
		t.Errorf("changed line 4: %s; want exit 1 naming sequence 4", r)
	}
	checkErrorShape(t, r.stderr)
	notZip := filepath.Join(t.TempDir(), "x.zip")
	os.WriteFile(notZip, []byte("not a zip"), 0o600)
	if r := cli(t, env, "", "audit", "verify", "--export", notZip); r.code != 2 {
		t.Errorf("not an export: %s; want exit 2", r)
	}
	if r := cli(t, env, "", "audit", "verify", "--export", notZip, "--org", "acme"); r.code != 2 {
		t.Errorf("--export with --org: %s; want exit 2 (usage)", r)
	}
}
