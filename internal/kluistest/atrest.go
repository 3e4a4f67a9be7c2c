package kluistest

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/kluis/kluis/internal/sqlstore"
)

// Scanning what kluis stores for values that must not be there in any
// readable form: every file of the data folder and, on PostgreSQL, a
// pg_dump of each database.

// needle is one form in which a marker could be stored.
type needle struct {
	what  string
	bytes []byte
}

// markerForms returns the forms a marker could take in a file or dump: the
// text itself (as given, lower- and upper-case), its hexadecimal encoding
// (lower and upper), and its base64 encodings (standard and URL alphabet) at
// each of the three alignments a value can have inside a longer base64
// string, trimmed to the characters that depend on the marker alone.
func markerForms(marker string) []needle {
	var out []needle
	seen := map[string]bool{}
	for _, v := range []string{marker, strings.ToLower(marker), strings.ToUpper(marker)} {
		if seen[v] {
			continue
		}
		seen[v] = true
		b := []byte(v)
		out = append(out,
			needle{"text " + v, b},
			needle{"hex " + v, []byte(hex.EncodeToString(b))},
			needle{"HEX " + v, []byte(strings.ToUpper(hex.EncodeToString(b)))})
		for _, enc := range []struct {
			name string
			e    *base64.Encoding
		}{{"base64", base64.StdEncoding}, {"base64url", base64.URLEncoding}} {
			for off := 0; off < 3; off++ {
				s := enc.e.EncodeToString(append(make([]byte, off), b...))
				start := (off*8 + 5) / 6 // characters that mix in the bytes before
				end := len(s)
				if (off+len(b))%3 != 0 {
					end -= 4 // the last group mixes in what follows (or padding)
				}
				if end-start >= 6 { // shorter would match by chance
					out = append(out, needle{fmt.Sprintf("%s@%d %s", enc.name, off, v), []byte(s[start:end])})
				}
			}
		}
	}
	return out
}

// FindMarkers returns "source: form" for every form of every marker found in
// the sources.
func FindMarkers(sources map[string][]byte, markers ...string) []string {
	var found []string
	names := make([]string, 0, len(sources))
	for n := range sources {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, m := range markers {
		for _, nd := range markerForms(m) {
			for _, n := range names {
				if bytes.Contains(sources[n], nd.bytes) {
					found = append(found, n+": "+nd.what)
				}
			}
		}
	}
	return found
}

// StoredBytes returns everything the env has written, by name: every file in
// its data folder (the SQLite data database with its -wal and -shm, the key
// store file with its -wal, root key, witness, …) and, on PostgreSQL, a
// pg_dump of the data database and of the key store database. It skips the
// test when pg_dump is needed and missing.
func (env *Env) StoredBytes(t testing.TB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(env.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(env.Dir, path)
		out[rel] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if env.Engine == sqlstore.SQLite {
		keysRel, _ := filepath.Rel(env.Dir, env.KeysDSN)
		for _, want := range []string{"kluis.db", keysRel} {
			if len(out[want]) == 0 {
				t.Fatalf("%s is missing from the data folder: the scan would prove nothing", want)
			}
		}
		for _, f := range []string{"kluis.db-wal", keysRel + "-wal"} {
			if _, ok := out[f]; !ok {
				t.Logf("no %s to scan", f)
			}
		}
		return out
	}
	dump := PGDump(t)
	for name, dsn := range map[string]string{"pg_dump of the data database": env.DSN, "pg_dump of the key store": env.KeysDSN} {
		cmd := exec.Command(dump, "--no-owner", "--no-privileges", "--dbname", dsn)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		b, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, stderr.String())
		}
		if !bytes.Contains(b, []byte("COPY ")) {
			t.Fatalf("%s holds no table data", name)
		}
		out[name] = b
	}
	return out
}

// PGDump returns the path of pg_dump, the newest installed, or skips.
func PGDump(t testing.TB) string {
	t.Helper()
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_dump")
	sort.Slice(matches, func(i, j int) bool { // newest major version first
		vi, _ := filepath.Rel("/usr/lib/postgresql", matches[i])
		vj, _ := filepath.Rel("/usr/lib/postgresql", matches[j])
		if len(vi) != len(vj) {
			return len(vi) > len(vj)
		}
		return vi > vj
	})
	if len(matches) > 0 {
		return matches[0]
	}
	if p, err := exec.LookPath("pg_dump"); err == nil {
		return p
	}
	t.Skip("pg_dump is not installed (Debian package postgresql-client): the PostgreSQL databases cannot be dumped and scanned")
	return ""
}
