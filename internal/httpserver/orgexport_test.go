package httpserver_test

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/kluistest"
)

// exportProject is a project the test made, with its current tree.
type exportProject struct {
	ID       string
	Files    map[string][]byte
	Versions int
}

// makeExportFixture fills an organisation for the export tests: people, a
// group, two projects with files (one a few MiB of binary) and versions.
func (a *testAPI) makeExportFixture(t *testing.T, o orgFixture) ([]account, []exportProject) {
	t.Helper()
	ann, bob := a.addUser(t, o, "member"), a.addUser(t, o, "member")
	invited := a.invite(t, o, "manager")
	people := []account{o.Manager, ann, bob, invited}

	r := a.call(t, "POST", orgPath(o.Slug, "/groups"), o.Manager.Token, map[string]string{"name": "Surveyors"})
	wantStatus(t, "group", r, 201)
	g := decodeStrict[groupAnswer](t, r).Group.ID
	wantStatus(t, "member", a.call(t, "PUT", orgPath(o.Slug, "/groups/"+g+"/members/"+ann.ID), o.Manager.Token, nil), 204)

	big := make([]byte, 3<<20+12345)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	var projects []exportProject
	for i, owner := range []account{ann, bob} {
		r := a.call(t, "POST", orgPath(o.Slug, "/projects"), owner.Token, map[string]string{"name": "Dyke " + owner.Name})
		wantStatus(t, "create", r, 201)
		p := exportProject{ID: decodeStrict[projectAnswer](t, r).Project.ID, Files: map[string][]byte{}}
		base := orgPath(o.Slug, "/projects/"+p.ID)
		put := func(path string, body []byte) {
			wantStatus(t, "put "+path, a.putFile(t, owner.Token, base, path, body, nil), map[bool]int{true: 200, false: 201}[p.Files[path] != nil])
			p.Files[path] = body
		}
		version := func(msg string) {
			wantStatus(t, "version", a.call(t, "POST", base+"/versions", owner.Token, map[string]string{"message": msg}), 201)
			p.Versions++
		}
		put("notes/readme.txt", []byte("first notes of "+owner.Name))
		version("first")
		if i == 0 {
			put("data/terrain.bin", big)
			put("notes/readme.txt", []byte("second notes"))
			version("terrain")
			put("data/empty", []byte{})
			wantStatus(t, "grant group", a.call(t, "PUT", base+"/grants/group:"+g, owner.Token, map[string]string{"relation": "viewer"}), 204)
		} else {
			put("old.txt", []byte("to be removed"))
			version("with old")
			wantStatus(t, "delete", a.call(t, "DELETE", base+"/files/old.txt", owner.Token, nil), 204)
			delete(p.Files, "old.txt")
		}
		projects = append(projects, p)
	}
	return people, projects
}

func unzip(t *testing.T, body []byte) (*zip.Reader, map[string][]byte) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("the export is no ZIP: %v", err)
	}
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		files[f.Name] = b
	}
	return zr, files
}

// rezip returns the archive with one file replaced.
func rezip(t *testing.T, files map[string][]byte, name string, content []byte) *zip.Reader {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for n, b := range files {
		if n == name {
			b = content
		}
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	return zr
}

// TestOrgExport (R9, R25): a freshly signed-in manager downloads the
// organisation's export; unpacked, it holds every file of each project's
// current tree byte for byte, every version, every person and group, and
// an audit log that verifies against the exported checkpoints with nothing
// but the archive — and a changed event line is found at its sequence
// number. The download is recorded as org.export.
func TestOrgExport(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			people, projects := a.makeExportFixture(t, o)

			r := a.call(t, "GET", orgPath(o.Slug, "/export"), o.Manager.Token, nil)
			wantStatus(t, "export", r, 200)
			if ct := r.header.Get("Content-Type"); ct != "application/zip" {
				t.Errorf("Content-Type %q", ct)
			}
			wantCD := `attachment; filename=` + o.Slug + `-export-` + time.Now().UTC().Format("2006-01-02") + `.zip`
			if cd := r.header.Get("Content-Disposition"); cd != wantCD {
				t.Errorf("Content-Disposition %q, want %q", cd, wantCD)
			}
			zr, files := unzip(t, r.body)

			for _, p := range projects {
				prefix := "projects/" + p.ID + "/"
				for path, want := range p.Files {
					got, ok := files[prefix+"files/"+path]
					if !ok || !bytes.Equal(got, want) {
						t.Errorf("project %s file %s: %d bytes (present %v), want %d bytes as uploaded", p.ID, path, len(got), ok, len(want))
					}
				}
				n := 0
				for name := range files {
					if strings.HasPrefix(name, prefix+"files/") {
						n++
					}
				}
				if n != len(p.Files) {
					t.Errorf("project %s: %d files in the export, want %d (the current tree)", p.ID, n, len(p.Files))
				}
				var pj struct {
					ID     string `json:"id"`
					Name   string `json:"name"`
					Trash  any    `json:"trash"`
					Grants []struct{ Subject, Relation string }
					Files  []struct {
						Path   string `json:"path"`
						Size   int64  `json:"size"`
						SHA256 string `json:"sha256"`
					} `json:"files"`
				}
				if err := json.Unmarshal(files[prefix+"project.json"], &pj); err != nil {
					t.Fatalf("project.json: %v", err)
				}
				if pj.ID != p.ID || !strings.HasPrefix(pj.Name, "Dyke ") || pj.Trash != nil || len(pj.Grants) == 0 || len(pj.Files) != len(p.Files) {
					t.Errorf("project.json %+v", pj)
				}
				for _, f := range pj.Files {
					sum := sha256.Sum256(p.Files[f.Path])
					if f.SHA256 != hex.EncodeToString(sum[:]) || f.Size != int64(len(p.Files[f.Path])) {
						t.Errorf("project.json file %s: size %d sha256 %s", f.Path, f.Size, f.SHA256)
					}
				}
				var vj struct {
					Versions []struct {
						Number  int    `json:"number"`
						Author  string `json:"author"`
						Message string `json:"message"`
						Files   []struct {
							Path string `json:"path"`
							ETag string `json:"etag"`
						} `json:"files"`
					} `json:"versions"`
				}
				if err := json.Unmarshal(files[prefix+"versions.json"], &vj); err != nil {
					t.Fatalf("versions.json: %v", err)
				}
				if len(vj.Versions) != p.Versions || vj.Versions[0].Number != 1 || vj.Versions[0].Message != "first" || len(vj.Versions[0].Files) != 1 {
					t.Errorf("versions.json of %s: %+v, want %d versions", p.ID, vj, p.Versions)
				}
			}

			var uj struct {
				Users []map[string]any `json:"users"`
			}
			if err := json.Unmarshal(files["users.json"], &uj); err != nil {
				t.Fatal(err)
			}
			for _, p := range people {
				found := false
				for _, u := range uj.Users {
					found = found || u["id"] == p.ID && u["email"] == p.Email
				}
				if !found {
					t.Errorf("users.json lacks %s", p.Email)
				}
			}
			if len(uj.Users) != len(people) {
				t.Errorf("users.json has %d people, want %d", len(uj.Users), len(people))
			}
			everything := string(bytes.Join(func() [][]byte {
				var all [][]byte
				for n, b := range files {
					if !strings.Contains(n, "/files/") {
						all = append(all, b)
					}
				}
				return all
			}(), nil))
			mustNotContain(t, "the export", everything, o.Manager.Password, people[1].Password, people[1].Token, "$argon2id$")
			if !strings.Contains(string(files["groups.json"]), "Surveyors") || !strings.Contains(string(files["groups.json"]), people[1].ID) {
				t.Errorf("groups.json: %s", files["groups.json"])
			}
			if !strings.Contains(string(files["organisation.json"]), `"slug": "`+o.Slug+`"`) || !strings.Contains(string(files["README.md"]), "kluis audit verify --export") {
				t.Errorf("organisation.json or README.md wrong")
			}

			// The audit log verifies from the archive alone, and ends with
			// the export itself.
			res, err := audit.VerifyExport(zr)
			if err != nil || !res.OK || res.Checked < 10 {
				t.Fatalf("verify the export: %+v, %v", res, err)
			}
			lines := bytes.Split(bytes.TrimSpace(files[audit.ExportEventsFile]), []byte("\n"))
			var last audit.ExportedEvent
			json.Unmarshal(lines[len(lines)-1], &last)
			if last.Action != "org.export" || last.Actor != "user:"+o.Manager.ID || string(last.Details) != `{"projects":2,"withheld":0}` {
				t.Errorf("last exported event %+v, want the org.export", last)
			}
			if n := countActions(a.auditLog(t, o.Slug, o.Manager.Token))["org.export/success"]; n != 1 {
				t.Errorf("%d org.export events in the log, want 1", n)
			}

			// A changed line is found at its sequence number.
			k := len(lines) / 2
			var ev map[string]any
			json.Unmarshal(lines[k], &ev)
			ev["action"] = "auth.logout"
			changed, _ := json.Marshal(ev)
			tampered := bytes.Join(append(append(append([][]byte{}, lines[:k]...), changed), lines[k+1:]...), []byte("\n"))
			res, err = audit.VerifyExport(rezip(t, files, audit.ExportEventsFile, tampered))
			if err != nil || res.OK || res.FirstBrokenSeq != int64(k+1) || res.Problem != audit.ProblemHashMismatch {
				t.Errorf("tampered line %d: %+v, %v; want broken at %d (hash mismatch)", k+1, res, err, k+1)
			}
			// So is a line taken off the end: the head's checkpoint is signed.
			res, err = audit.VerifyExport(rezip(t, files, audit.ExportEventsFile, bytes.Join(lines[:len(lines)-1], []byte("\n"))))
			if err != nil || res.OK || res.FirstBrokenSeq != int64(len(lines)) {
				t.Errorf("cut-off log: %+v, %v; want broken at %d", res, err, len(lines))
			}
		})
	}
}

// TestOrgExportRefusals (R9, R8, R22): only a manager of the organisation,
// freshly signed in and with a session, gets the export; a member is
// forbidden, a stale sign-in must re-authenticate, a personal API token is
// refused, another organisation's manager finds nothing. Each refusal
// sends no archive and records no org.export.
func TestOrgExportRefusals(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			o, other := a.newOrg(t), a.newOrg(t)
			member := a.addUser(t, o, "member")
			token := a.createToken(t, o.Slug, o.Manager.Token, "script", "full", time.Hour).Secret
			path := orgPath(o.Slug, "/export")

			wantError(t, "member", a.call(t, "GET", path, member.Token, nil), 403, "forbidden")
			wantError(t, "API token", a.call(t, "GET", path, token, nil), 403, "forbidden")
			wantError(t, "another organisation's manager", a.call(t, "GET", path, other.Manager.Token, nil), 404, "not_found")
			wantError(t, "nobody", a.call(t, "GET", path, "", nil), 401, "unauthenticated")
			a.env.Clock.Advance(6 * time.Minute)
			wantError(t, "stale sign-in", a.call(t, "GET", path, o.Manager.Token, nil), 403, "reauth_required")
			r := a.call(t, "POST", orgPath(o.Slug, "/me/reauth"), o.Manager.Token, map[string]string{"password": o.Manager.Password})
			wantStatus(t, "re-authenticate", r, 200)
			o.Manager.Token = decodeStrict[loginAnswer](t, r).Token
			wantStatus(t, "fresh again", a.call(t, "GET", path, o.Manager.Token, nil), 200)

			n := countActions(a.auditLog(t, o.Slug, o.Manager.Token))
			if n["org.export/success"] != 1 || n["org.export/denied"] != 1 || n["org.export/failure"] != 1 {
				t.Errorf("org.export events %v, want one success, one denial (the member) and one failure (stale sign-in)", n)
			}
		})
	}
}

// TestOrgExportPage (R9, docs/UI.md): the policy page offers a manager the
// export; the button downloads the ZIP with a fresh sign-in and leads
// through re-authentication without one; a member is refused.
func TestOrgExportPage(t *testing.T) {
	a := newTestAPI(t, "sqlite")
	o := a.newOrg(t)
	member := a.addUser(t, o, "member")
	b := signInPage(t, a, o.Slug, o.Manager)
	b.lang = "nl"
	p := b.get(t, "/o/"+o.Slug+"/policy")
	if !strings.Contains(p.body, `id="org-export"`) || !strings.Contains(p.body, "Alles meenemen") {
		t.Fatalf("the policy page has no export button in Dutch:\n%s", excerpt(p.body))
	}

	// Fresh: the button downloads the archive (not a page: sent by hand).
	req, _ := http.NewRequest("POST", a.srv.URL+"/o/"+o.Slug+"/export", strings.NewReader(""))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", a.srv.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for _, c := range b.cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	res, err := a.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/zip" || !strings.HasPrefix(res.Header.Get("Content-Disposition"), "attachment; filename="+o.Slug+"-export-") {
		t.Fatalf("the export button: %d %v", res.StatusCode, res.Header)
	}
	if _, files := unzip(t, body); files["organisation.json"] == nil {
		t.Errorf("the downloaded archive has no organisation.json")
	}

	// Stale: to the re-authentication page first.
	a.env.Clock.Advance(6 * time.Minute)
	wantPage(t, "stale export", b.post(t, "/o/"+o.Slug+"/export", url.Values{}), http.StatusSeeOther, "/o/"+o.Slug+"/account/reauth")
	mb := signInPage(t, a, o.Slug, member)
	if p := mb.post(t, "/o/"+o.Slug+"/export", url.Values{}); p.status != http.StatusForbidden {
		t.Errorf("a member's export: %d, want 403", p.status)
	}
}
