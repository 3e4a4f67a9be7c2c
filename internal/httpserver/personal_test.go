package httpserver_test

import (
	"archive/zip"
	"bytes"
	"io"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/kluistest"
)

// unzipPersonal reads an export answer back, every entry by name.
func unzipPersonal(t *testing.T, what string, r response) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(r.body), int64(len(r.body)))
	if err != nil {
		t.Fatalf("%s is no ZIP: %v", what, err)
	}
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name], _ = io.ReadAll(rc)
		rc.Close()
	}
	return out
}

// schemaValid checks every top-level JSON file of a personal export
// against the schema of the same name inside it.
func schemaValid(t *testing.T, what string, files map[string][]byte) {
	t.Helper()
	var names []string
	for n := range files {
		if !strings.Contains(n, "/") && strings.HasSuffix(n, ".json") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if len(names) < 12 {
		t.Errorf("%s holds only %v", what, names)
	}
	for _, n := range names {
		for _, p := range kluistest.CheckJSONSchema(files["schema/"+n], files[n]) {
			t.Errorf("%s: %s: %s", what, n, p)
		}
	}
}

// R4, R5, R34 through the API: a member takes their own export (a ZIP
// attachment, every file valid against its schema, nobody else's name or
// address), another member may not take it, the manager may; a stale
// session is asked to re-authenticate for both the export and the
// erasure; after re-authenticating, the member is refused (409) while the
// only owner of their project, hands it over and deletes their account
// (204): their token stops working, the manager's export of them is 404,
// the organisation's export holds nothing of them, and the project stays
// with its version's author shown as "a deleted person (REF)". The last
// manager deleting themself is 409.
func TestPersonalExportAndErasureThroughTheAPI(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			mem := a.addUser(t, o, "member")
			other := a.addUser(t, o, "member")

			// The member's project, with a version they saved.
			r := a.call(t, "POST", orgPath(o.Slug, "/projects"), mem.Token, map[string]string{"name": "Harbour " + kluistest.Name("p")})
			wantStatus(t, "create a project", r, 201)
			project := orgPath(o.Slug, "/projects/"+decodeStrict[projectAnswer](t, r).Project.ID)
			wantStatus(t, "save a version", a.call(t, "POST", project+"/versions", mem.Token, map[string]string{"message": "first"}), 201)

			r = a.call(t, "GET", orgPath(o.Slug, "/me/export"), mem.Token, nil)
			wantStatus(t, "own export", r, 200)
			if ct, cd := r.header.Get("Content-Type"), r.header.Get("Content-Disposition"); ct != "application/zip" ||
				!strings.HasPrefix(cd, "attachment") || !strings.Contains(cd, o.Slug+"-personal-export-") {
				t.Errorf("own export: Content-Type %q, Content-Disposition %q", ct, cd)
			}
			mustNotContain(t, "the download's name", r.header.Get("Content-Disposition"), mem.ID, mem.Email, mem.Name)
			files := unzipPersonal(t, "own export", r)
			schemaValid(t, "own export", files)
			if !bytes.Contains(files["profile.json"], []byte(mem.Email)) || !bytes.Contains(files["profile.json"], []byte(mem.Name)) {
				t.Errorf("own export: profile.json %s", files["profile.json"])
			}
			for name, b := range files {
				mustNotContain(t, "own export "+name, string(b), other.Email, other.Name, o.Manager.Email, o.Manager.Name, mem.Password, mem.Token)
			}

			wantError(t, "a member exporting another", a.call(t, "GET", orgPath(o.Slug, "/users/"+mem.ID+"/export"), other.Token, nil), 403, kluis.EForbidden)
			r = a.call(t, "GET", orgPath(o.Slug, "/users/"+mem.ID+"/export"), o.Manager.Token, nil)
			wantStatus(t, "the manager's export of the member", r, 200)
			schemaValid(t, "the manager's export", unzipPersonal(t, "the manager's export", r))

			a.env.Clock.Advance(6 * time.Minute)
			wantError(t, "a stale export", a.call(t, "GET", orgPath(o.Slug, "/me/export"), mem.Token, nil), 403, kluis.EReauthRequired)
			wantError(t, "a stale erasure", a.call(t, "DELETE", orgPath(o.Slug, "/me"), mem.Token, nil), 403, kluis.EReauthRequired)
			fresh := func(acc account) string {
				r := a.call(t, "POST", orgPath(o.Slug, "/me/reauth"), acc.Token, map[string]string{"password": acc.Password})
				wantStatus(t, "reauth", r, 200)
				return decodeStrict[loginAnswer](t, r).Token
			}
			memFresh := fresh(mem)
			mgrFresh := fresh(o.Manager)
			wantError(t, "the last manager deleting themself", a.call(t, "DELETE", orgPath(o.Slug, "/me"), mgrFresh, nil), 409, kluis.EConflict)
			page := signInPage(t, a, o.Slug, o.Manager).post(t, "/o/"+o.Slug+"/account/delete", url.Values{})
			wantPage(t, "the last manager on the delete page", page, 409, "")
			if !strings.Contains(page.body, "at least one active manager") || !strings.Contains(page.body, `id="account-delete"`) {
				t.Errorf("the delete page's refusal of the last manager: %s", excerpt(page.body))
			}

			wantError(t, "the only owner of a project deleting themself", a.call(t, "DELETE", orgPath(o.Slug, "/me"), memFresh, nil), 409, kluis.EConflict)
			wantStatus(t, "hand the project over", a.call(t, "PUT", project+"/grants/user:"+other.ID, memFresh, map[string]string{"relation": "owner"}), 204)
			wantStatus(t, "erasure", a.call(t, "DELETE", orgPath(o.Slug, "/me"), memFresh, nil), 204)
			wantError(t, "the erased person's session", a.call(t, "GET", orgPath(o.Slug, "/me"), memFresh, nil), 401, kluis.EUnauthenticated)
			wantError(t, "the manager's export of the erased", a.call(t, "GET", orgPath(o.Slug, "/users/"+mem.ID+"/export"), mgrFresh, nil), 404, kluis.ENotFound)
			r = a.call(t, "GET", orgPath(o.Slug, "/export"), mgrFresh, nil)
			wantStatus(t, "the organisation's export", r, 200)
			for name, b := range unzipPersonal(t, "the organisation's export", r) {
				mustNotContain(t, "the organisation's export "+name, string(b), mem.Email, mem.Name)
			}
			// The project stays; its version's author is a deleted person.
			versions := decodeStrict[struct{ Versions []versionObject }](t, a.call(t, "GET", project+"/versions", other.Token, nil)).Versions
			if len(versions) != 1 || versions[0].Author != mem.ID || versions[0].AuthorName != "" {
				t.Errorf("the kept project's versions: %+v", versions)
			}
			history := signInPage(t, a, o.Slug, other).get(t, strings.Replace(project, "/api/v1/orgs/", "/o/", 1)+"/versions")
			wantPage(t, "the versions page", history, 200, "")
			if want := "a deleted person (" + kluis.DeletedPersonRef(kluis.UserID(mem.ID)) + ")"; !strings.Contains(history.body, want) {
				t.Errorf("the versions page does not name the author as %q", want)
			}
			mustNotContain(t, "the versions page", history.body, mem.Name, mem.Email)

			events := a.auditLog(t, o.Slug, mgrFresh)
			n := countActions(events)
			if n["user.erase/success"] != 1 || n["user.erase/failure"] != 1 || n["user.erase/denied"] != 3 || n["user.export/success"] != 2 {
				t.Errorf("user.erase and user.export events: %v; want the erasure, the stale attempt, the last manager's refusals (API and page), the only owner's and two exports", n)
			}
		})
	}
}
