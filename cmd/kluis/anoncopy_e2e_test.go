package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore"
)

// needleForms are the ways a secret can sit in a file: as text, in base64
// (at each of the three alignments, the part that does not depend on its
// neighbours) and in hex (both cases).
func needleForms(s string) [][]byte {
	forms := [][]byte{[]byte(s), []byte(hex.EncodeToString([]byte(s))), []byte(strings.ToUpper(hex.EncodeToString([]byte(s))))}
	for shift := range 3 {
		enc := base64.StdEncoding.EncodeToString(append(make([]byte, shift), s...))
		// Skip the characters the shift's padding bytes touch, and the
		// last group, which depends on what follows.
		start := (shift*8 + 5) / 6
		end := len(enc) - 4
		if end-start >= 8 {
			forms = append(forms, []byte(enc[start:end]))
		}
	}
	return forms
}

// scanFolder fails the test for every file under dir that holds a needle
// in any of its forms.
func scanFolder(t *testing.T, dir string, needles []string) (files int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		for _, n := range needles {
			for _, form := range needleForms(n) {
				if bytes.Contains(b, form) {
					t.Errorf("%s holds %q (as %q)", p, n, form)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// instanceRows reads every row of every table of an instance's database,
// each row as text, sorted per table; the audit tables' rows apart.
func instanceRows(t *testing.T, dir, dsn string) (data map[string][]string, audit []string) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, dir, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tables, err := db.Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data = map[string][]string{}
	for _, table := range tables {
		rows, err := db.Query(ctx, `SELECT * FROM `+table)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		var out []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%v", vals))
		}
		rows.Close()
		slices.Sort(out)
		if table == "audit_events" {
			audit = out
		} else if !strings.HasPrefix(table, "audit_") {
			data[table] = out
		}
	}
	return data, audit
}

var copyManagerLine = regexp.MustCompile(`organisation (\S+): manager (\S+) \(active\)`)

// R39 R48 acceptance: `kluis export --anonymize --out DIR` writes a new
// instance in which none of the source's names, e-mail addresses, phone
// numbers, client addresses or file contents remain — in any file of the
// folder (database, key store, chunks, witness), as text, base64 or hex —
// while its structure does (people, groups, projects, files of the same
// sizes, versions). The copy starts and serves, a manager of the copy signs
// in after setting a password with a reset link, its chains verify, and
// the source records the export. The copy refuses production, and a
// folder labelled production or holding anything.
func TestAnonymisedCopyHoldsNothingPersonalAndServes(t *testing.T) {
	t.Parallel()
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			extra := []string{"KLUIS_TRUSTED_PROXIES=127.0.0.1/32"}
			dsn := ""
			if engine == sqlstore.Postgres {
				dsn = kluistest.PostgresDSN(t)
				extra = append(extra, "KLUIS_DB="+dsn)
			}
			env := processEnv(extra...)
			src := t.TempDir()
			srv := startServerProcess(t, env, "--addr", "127.0.0.1:0", "--data", src)
			base := "http://" + srv.addr
			const (
				bossEmail  = "wilhelmina.zandvoort@kluis-source.example"
				bossName   = "Wilhelmina Zandvoort"
				bossPhone  = "+31 6 4242 1717"
				clerkEmail = "bartholomeus.quist@kluis-source.example"
				clerkName  = "Bartholomeus Quist"
				client     = "198.51.100.77"
				orgName    = "Zandvoort Accountancy"
				projName   = "Dossier Quistenburg"
				groupName  = "Familie Quistenburg"
				secretText = "Vertrouwelijk: de hypotheek van Quistenburg bedraagt 412.000 euro."
				pathName   = "klanten/Quistenburg/hypotheek.txt"
				message    = "eerste versie voor Quistenburg"
			)
			r := runProcess(t, env, "", "org", "create", "zacc", "--name", orgName, "--manager-email", bossEmail, "--data", src)
			if r.code != 0 {
				t.Fatalf("org create: %s", r)
			}
			m := waitMail(t, src, map[string]bool{}, patience)
			joinOrg(t, base, "zacc", linkLines(m.body)[0], bossEmail, bossName)
			// A sign-in from a distinctive client address: the audit log
			// keeps it (sealed).
			a := signInFrom(t, base, "zacc", client, bossEmail, e2ePassword, nil)
			if a.status != http.StatusOK {
				t.Fatalf("sign in from %s: %d %s", client, a.status, a.body)
			}
			var l loginAnswer
			if got := api(t, "POST", base+"/api/v1/orgs/zacc/login", "", map[string]string{"email": bossEmail, "password": e2ePassword}, &l); got != http.StatusOK {
				t.Fatalf("login: %d", got)
			}
			token := l.Token
			if got := api(t, "PATCH", base+"/api/v1/orgs/zacc/me", token, map[string]string{"phone": bossPhone}, nil); got != http.StatusOK {
				t.Fatalf("set phone: %d", got)
			}
			var clerk struct{ User userAnswer }
			if got := api(t, "POST", base+"/api/v1/orgs/zacc/users", token, map[string]string{"email": clerkEmail, "name": clerkName, "role": "member"}, &clerk); got != http.StatusCreated {
				t.Fatalf("invite a member: %d", got)
			}
			var group struct{ Group struct{ ID string } }
			if got := api(t, "POST", base+"/api/v1/orgs/zacc/groups", token, map[string]string{"name": groupName}, &group); got != http.StatusCreated {
				t.Fatalf("create a group: %d", got)
			}
			if got := api(t, "PUT", base+"/api/v1/orgs/zacc/groups/"+group.Group.ID+"/members/"+clerk.User.ID, token, nil, nil); got != http.StatusNoContent {
				t.Fatalf("add to the group: %d", got)
			}
			var created struct{ Project struct{ ID string } }
			if got := api(t, "POST", base+"/api/v1/orgs/zacc/projects", token, map[string]string{"name": projName}, &created); got != http.StatusCreated {
				t.Fatalf("create a project: %d", got)
			}
			p := base + "/api/v1/orgs/zacc/projects/" + created.Project.ID
			if got := api(t, "PUT", p+"/grants/group:"+group.Group.ID, token, map[string]string{"relation": "viewer"}, nil); got != http.StatusNoContent {
				t.Fatalf("grant the group: %d", got)
			}
			pdf := "%PDF-1.4\n% " + strings.Repeat(secretText+"\n% ", 8) + "\n%%EOF\n"
			for name, body := range map[string]string{pathName: secretText, "scans/Quistenburg.pdf": pdf} {
				if code, err := putBody(p+"/files/"+name, token, body); err != nil || code != http.StatusCreated {
					t.Fatalf("upload %s: %d %v", name, code, err)
				}
			}
			if got := api(t, "POST", p+"/versions", token, map[string]string{"message": message}, nil); got != http.StatusCreated {
				t.Fatalf("save a version: %d", got)
			}
			if code, err := putBody(p+"/files/"+pathName, token, secretText+" Bijgewerkt."); err != nil || code != http.StatusOK {
				t.Fatalf("replace a file: %d %v", code, err)
			}
			if code := srv.terminate(t, patience); code != 0 {
				t.Fatalf("the source server exited %d", code)
			}

			out := filepath.Join(t.TempDir(), "copy")
			// Refusals first: production, a folder labelled production, a
			// folder holding something. None writes anything.
			if r := runProcess(t, env, "", "export", "--anonymize", "--out", out, "--environment", "production", "--data", src); r.code != 2 || !strings.Contains(r.stderr, "production") {
				t.Fatalf("--environment production: want exit 2 naming production, got %s", r)
			}
			if _, err := os.Stat(out); err == nil {
				t.Fatal("a refused copy left its folder behind")
			}
			if r := runProcess(t, env, "", "export", "--out", out, "--data", src); r.code != 2 || !strings.Contains(r.stderr, "always anonymised") {
				t.Fatalf("an export without --anonymize: want exit 2, got %s", r)
			}
			labelled := t.TempDir()
			os.WriteFile(filepath.Join(labelled, "environment"), []byte("production\n"), 0o600)
			if r := runProcess(t, env, "", "export", "--anonymize", "--out", labelled, "--data", src); r.code != 2 || !strings.Contains(r.stderr, "labelled production") {
				t.Fatalf("a folder labelled production: want exit 2, got %s", r)
			}
			if r := runProcess(t, env, "", "export", "--anonymize", "--out", src, "--data", src); r.code != 2 || !strings.Contains(r.stderr, "inside the source") {
				t.Fatalf("the source's own folder: want exit 2, got %s", r)
			}
			if r := runProcess(t, env, "", "export", "--anonymize", "--out", filepath.Join(src, "copy"), "--data", src); r.code != 2 || !strings.Contains(r.stderr, "inside the source") {
				t.Fatalf("a folder inside the source's: want exit 2, got %s", r)
			}
			other := t.TempDir()
			os.WriteFile(filepath.Join(other, "kluis.db"), []byte("an instance"), 0o600)
			if r := runProcess(t, env, "", "export", "--anonymize", "--out", other, "--data", src); r.code != 2 || !strings.Contains(r.stderr, "not empty") {
				t.Fatalf("a folder holding an instance: want exit 2, got %s", r)
			}
			if b, _ := os.ReadFile(filepath.Join(other, "kluis.db")); string(b) != "an instance" {
				t.Fatal("a refused copy touched the folder it refused")
			}

			// Every command records the key events a stopped server left
			// behind; audit verify does so before the source is read.
			if r := runProcess(t, env, "", "audit", "verify", "--data", src); r.code != 0 {
				t.Fatalf("the source's chains: %s", r)
			}
			dataBefore, auditBefore := instanceRows(t, src, dsn)
			r = runProcess(t, env, "", "export", "--anonymize", "--out", out, "--environment", "acceptance", "--data", src)
			if r.code != 0 {
				t.Fatalf("export --anonymize: %s", r)
			}
			if !strings.Contains(r.stdout, "1 organisations, 2 people, 1 groups, 1 projects, 2 files, 1 versions") {
				t.Errorf("the copy's counts: %s", r.stdout)
			}
			mm := copyManagerLine.FindStringSubmatch(r.stdout)
			if mm == nil {
				t.Fatalf("the export names no manager of the copy: %s", r.stdout)
			}
			slug, fakeEmail := mm[1], mm[2]
			if label, _ := os.ReadFile(filepath.Join(out, "environment")); strings.TrimSpace(string(label)) != "acceptance" {
				t.Errorf("the copy's label: %q", label)
			}

			needles := []string{bossEmail, clerkEmail, "kluis-source.example", bossName, "Zandvoort", clerkName, "Quistenburg",
				"+31642421717", bossPhone, "4242 1717", client, orgName, projName, groupName, secretText, "hypotheek", message}
			if n := scanFolder(t, out, needles); n < 5 {
				t.Errorf("the copy's folder holds %d files; want its database, keys, witness and chunks", n)
			}
			for _, want := range []string{"kluis.db", "keys/keys.db", "keys/root", "audit/witness.log", "content"} {
				if _, err := os.Stat(filepath.Join(out, want)); err != nil {
					t.Errorf("the copy lacks %s: %v", want, err)
				}
			}
			// The source is as it was, but for the one event that records
			// the export in its platform chain.
			dataAfter, auditAfter := instanceRows(t, src, dsn)
			for table, rows := range dataBefore {
				if !slices.Equal(rows, dataAfter[table]) {
					t.Errorf("the export changed the source's table %s: %d rows before, %d after", table, len(rows), len(dataAfter[table]))
				}
			}
			var added []string
			for _, e := range auditAfter {
				if !slices.Contains(auditBefore, e) {
					added = append(added, e)
				}
			}
			if len(added) != 1 || !strings.Contains(added[0], "platform") || !strings.Contains(added[0], "instance.export_anonymised") ||
				len(auditAfter) != len(auditBefore)+1 {
				t.Errorf("the source's audit log gained %d events, want the one instance.export_anonymised: %v", len(added), added)
			}
			if r := runProcess(t, env, "", "audit", "verify", "--data", src); r.code != 0 {
				t.Errorf("the source's chains after the export: %s", r)
			}

			// The copy verifies, starts, serves, and a manager gets in.
			copyEnv := processEnv()
			if r := runProcess(t, copyEnv, "", "audit", "verify", "--data", out); r.code != 0 || !strings.Contains(r.stdout, "platform: ok") {
				t.Fatalf("the copy's chains: %s", r)
			}
			cp := startServerProcess(t, copyEnv, "--addr", "127.0.0.1:0", "--data", out)
			cbase := "http://" + cp.addr
			if resp, err := http.Get(cbase + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("the copy's health: %v %v", resp, err)
			}
			if got := api(t, "POST", cbase+"/api/v1/orgs/"+slug+"/login", "", map[string]string{"email": fakeEmail, "password": e2ePassword}, nil); got != http.StatusUnauthorized {
				t.Errorf("the source's password in the copy: got %d, want 401", got)
			}
			if got := api(t, "POST", cbase+"/api/v1/orgs/"+slug+"/password-reset", "", map[string]string{"email": fakeEmail}, nil); got != http.StatusAccepted {
				t.Fatalf("password reset in the copy: %d", got)
			}
			reset := waitMail(t, out, map[string]bool{}, patience)
			const newPassword = "Copy pass 2026!"
			if got := api(t, "POST", cbase+"/api/v1/orgs/"+slug+"/password-reset/confirm", "", map[string]string{"token": tokenOf(linkLines(reset.body)[0]), "new_password": newPassword}, nil); got != http.StatusNoContent {
				t.Fatalf("set a password in the copy: %d", got)
			}
			var cl loginAnswer
			if got := api(t, "POST", cbase+"/api/v1/orgs/"+slug+"/login", "", map[string]string{"email": fakeEmail, "password": newPassword}, &cl); got != http.StatusOK {
				t.Fatalf("sign in to the copy: %d", got)
			}
			var users struct{ Users []userAnswer }
			if got := api(t, "GET", cbase+"/api/v1/orgs/"+slug+"/users", cl.Token, nil, &users); got != http.StatusOK || len(users.Users) != 2 {
				t.Fatalf("the copy's people: %d %+v", got, users)
			}
			var projects struct{ Projects []struct{ ID, Name string } }
			if got := api(t, "GET", cbase+"/api/v1/orgs/"+slug+"/projects", cl.Token, nil, &projects); got != http.StatusOK || len(projects.Projects) != 1 {
				t.Fatalf("the copy's projects: %d %+v", got, projects)
			}
			cproj := cbase + "/api/v1/orgs/" + slug + "/projects/" + projects.Projects[0].ID
			var tree struct {
				Files []struct {
					Path string
					Size int64
				}
			}
			if got := api(t, "GET", cproj+"/tree", cl.Token, nil, &tree); got != http.StatusOK || len(tree.Files) != 2 {
				t.Fatalf("the copy's files: %d %+v", got, tree)
			}
			for _, f := range tree.Files {
				code, body := getBody(t, cproj+"/files/"+f.Path, cl.Token)
				if code != http.StatusOK || int64(len(body)) != f.Size {
					t.Errorf("the copy's %s: %d, %d bytes, want %d", f.Path, code, len(body), f.Size)
				}
				switch {
				case strings.HasSuffix(f.Path, ".pdf") && (f.Size != int64(len(pdf)) || !strings.HasPrefix(body, "%PDF-")):
					t.Errorf("the PDF's stand-in is no PDF of the same size: %d bytes, %q…", f.Size, body[:min(len(body), 8)])
				case strings.HasSuffix(f.Path, ".txt") && f.Size != int64(len(secretText+" Bijgewerkt.")):
					t.Errorf("the text's stand-in has %d bytes, want %d", f.Size, len(secretText+" Bijgewerkt."))
				}
			}
			var versions struct{ Versions []struct{ Number int } }
			if got := api(t, "GET", cproj+"/versions", cl.Token, nil, &versions); got != http.StatusOK || len(versions.Versions) != 1 {
				t.Fatalf("the copy's versions: %d %+v", got, versions)
			}
			var grants struct {
				Grants []struct{ Subject, Relation string }
			}
			if got := api(t, "GET", cproj+"/grants", cl.Token, nil, &grants); got != http.StatusOK || !strings.Contains(strings.Join(func() []string {
				var s []string
				for _, g := range grants.Grants {
					s = append(s, g.Subject+"="+g.Relation)
				}
				return s
			}(), " "), "group:"+group.Group.ID+"=viewer") {
				t.Errorf("the copy's grants: %d %+v", got, grants)
			}
			if code := cp.terminate(t, patience); code != 0 {
				t.Fatalf("the copy's server exited %d", code)
			}
			if r := runProcess(t, copyEnv, "", "audit", "verify", "--data", out); r.code != 0 {
				t.Fatalf("the copy's chains after serving: %s", r)
			}
			// Every chain of the copy starts with instance.anonymised_copy,
			// and none holds an event of the source's history.
			cdb, err := sqlstore.Open(context.Background(), out, "")
			if err != nil {
				t.Fatal(err)
			}
			defer cdb.Close()
			rows, err := cdb.Query(context.Background(), `SELECT chain, action FROM audit_events WHERE seq = 1`)
			if err != nil {
				t.Fatal(err)
			}
			chains := 0
			for rows.Next() {
				var chain, action string
				rows.Scan(&chain, &action)
				chains++
				if action != "instance.anonymised_copy" {
					t.Errorf("the copy's chain %s starts with %s", chain, action)
				}
			}
			rows.Close()
			if chains != 2 {
				t.Errorf("the copy has %d chains, want the platform's and the organisation's", chains)
			}
			var joins int
			cdb.ReadRow(context.Background(), `SELECT COUNT(*) FROM audit_events WHERE action IN ('user.invitation_accept', 'group.create', 'file.put', 'version.create')`).Scan(&joins)
			if joins != 0 {
				t.Errorf("the copy holds %d events of the source's history", joins)
			}
		})
	}
}
