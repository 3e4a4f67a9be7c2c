package httpserver_test

import (
	"archive/zip"
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/kluis/kluis/internal/kluistest"
)

type fileObject struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	ETag string `json:"etag"`
}

type treeObject struct {
	Files []struct {
		Path       string `json:"path"`
		Size       int64  `json:"size"`
		ETag       string `json:"etag"`
		ModifiedAt string `json:"modified_at"`
		ModifiedBy string `json:"modified_by"`
	} `json:"files"`
}

type versionObject struct {
	Number       int    `json:"number"`
	Author       string `json:"author"`
	AuthorName   string `json:"author_name"`
	At           string `json:"at"`
	Message      string `json:"message"`
	Files        int    `json:"files"`
	RestoredFrom int    `json:"restored_from,omitempty"`
}

type diffObject struct {
	Added   []string `json:"added"`
	Changed []string `json:"changed"`
	Removed []string `json:"removed"`
}

func (a *testAPI) putFile(tb testing.TB, token, p, path string, body []byte, header map[string]string) response {
	tb.Helper()
	return a.do(tb, request{method: "PUT", path: p + "/files/" + path, bearer: token, body: body, contentType: "application/octet-stream", header: header})
}

// TestFilesAndVersions walks a project's files and versions through the
// API (R9, R10, R11): uploads with ETags and conditions, downloads that are
// always attachments, ranges, the tree, versions with their authors,
// comparing, going back and the ZIP of a version.
func TestFilesAndVersions(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			editor, viewer := a.addUser(t, o, "member"), a.addUser(t, o, "member")
			r := a.call(t, "POST", orgPath(o.Slug, "/projects"), editor.Token, map[string]string{"name": "Harbour"})
			wantStatus(t, "create", r, 201)
			p := orgPath(o.Slug, "/projects/"+decodeStrict[projectAnswer](t, r).Project.ID)
			wantStatus(t, "viewer", a.call(t, "PUT", p+"/grants/user:"+viewer.ID, editor.Token, map[string]string{"relation": "viewer"}), 204)

			page := []byte("<html><script>alert(document.cookie)</script></html>")
			r = a.putFile(t, editor.Token, p, "docs/index.html", page, nil)
			wantStatus(t, "upload", r, 201)
			f := decodeStrict[struct{ File fileObject }](t, r).File
			if f.Path != "docs/index.html" || f.Size != int64(len(page)) || r.header.Get("ETag") != `"`+f.ETag+`"` {
				t.Fatalf("upload answered %+v with ETag %q", f, r.header.Get("ETag"))
			}
			// The same bytes again replace it (200) with the same ETag.
			r = a.putFile(t, editor.Token, p, "docs/index.html", page, nil)
			wantStatus(t, "replace", r, 200)
			// Two editors: the one with a stale ETag loses, loudly.
			wantError(t, "If-None-Match on an existing file", a.putFile(t, editor.Token, p, "docs/index.html", []byte("x"), map[string]string{"If-None-Match": "*"}), 412, "precondition_failed")
			wantError(t, "stale If-Match", a.putFile(t, editor.Token, p, "docs/index.html", []byte("x"), map[string]string{"If-Match": `"0000"`}), 412, "precondition_failed")
			wantStatus(t, "fresh If-Match", a.putFile(t, editor.Token, p, "docs/index.html", page, map[string]string{"If-Match": `"` + f.ETag + `"`}), 200)
			wantStatus(t, "If-None-Match on a new file", a.putFile(t, editor.Token, p, "notes.txt", []byte("first notes"), map[string]string{"If-None-Match": "*"}), 201)
			wantError(t, "the viewer may not upload", a.putFile(t, viewer.Token, p, "x.txt", []byte("x"), nil), 403, "forbidden")

			// Downloads are attachments that no browser renders here.
			r = a.call(t, "GET", p+"/files/docs/index.html", viewer.Token, nil)
			wantStatus(t, "download", r, 200)
			if !bytes.Equal(r.body, page) {
				t.Fatalf("downloaded %q, want %q", r.body, page)
			}
			for h, want := range map[string]string{
				"Content-Disposition": `attachment; filename=index.html`, "Content-Type": "application/octet-stream",
				"Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff", "ETag": `"` + f.ETag + `"`,
			} {
				if got := r.header.Get(h); got != want {
					t.Errorf("download %s: %q, want %q", h, got, want)
				}
			}
			r = a.do(t, request{method: "GET", path: p + "/files/docs/index.html", bearer: viewer.Token, header: map[string]string{"Range": "bytes=6-13"}})
			if r.status != 206 || string(r.body) != string(page[6:14]) {
				t.Errorf("range: %v, want 206 %q", r, page[6:14])
			}
			r = a.do(t, request{method: "HEAD", path: p + "/files/docs/index.html", bearer: viewer.Token})
			if r.status != 200 || len(r.body) != 0 || r.header.Get("ETag") != `"`+f.ETag+`"` {
				t.Errorf("HEAD: %v %v", r, r.header)
			}
			wantError(t, "missing file", a.call(t, "GET", p+"/files/nope.txt", viewer.Token, nil), 404, "not_found")
			// A literal "a/./b" or "a//b" is cleaned by the HTTP layer (a redirect
			// the test client follows); escaped, the service refuses them.
			for _, bad := range []string{"a/%2E/b", "a/%2E%2E/b", "a%2F%2Fb", "%2Fabs", "nul%00x", strings.Repeat("x", 1025)} {
				r := a.putFile(t, editor.Token, p, bad, []byte("x"), nil)
				if r.status != 400 && (r.status < 300 || r.status > 308) {
					t.Errorf("PUT %q: %v, want 400 or the mux's redirect", bad, r)
				}
			}

			tree := decodeStrict[treeObject](t, a.call(t, "GET", p+"/tree", viewer.Token, nil))
			if len(tree.Files) != 2 || tree.Files[0].Path != "docs/index.html" || tree.Files[1].Path != "notes.txt" || tree.Files[0].ModifiedBy != editor.ID {
				t.Fatalf("tree %+v", tree)
			}
			if sub := decodeStrict[treeObject](t, a.call(t, "GET", p+"/tree?prefix=docs/", viewer.Token, nil)); len(sub.Files) != 1 {
				t.Errorf("tree under docs/: %+v", sub)
			}
			wantInvalid(t, "prefix without slash", a.call(t, "GET", p+"/tree?prefix=docs", viewer.Token, nil), "prefix")

			// Versions: 1 with both files, then notes change and index goes.
			r = a.call(t, "POST", p+"/versions", editor.Token, map[string]string{"message": "First draft"})
			wantStatus(t, "version 1", r, 201)
			v1 := decodeStrict[struct{ Version versionObject }](t, r).Version
			if v1.Number != 1 || v1.Author != editor.ID || v1.AuthorName != editor.Name || v1.Files != 2 {
				t.Fatalf("version 1: %+v", v1)
			}
			wantStatus(t, "change notes", a.putFile(t, editor.Token, p, "notes.txt", []byte("second notes"), nil), 200)
			wantStatus(t, "delete index", a.call(t, "DELETE", p+"/files/docs/index.html", editor.Token, nil), 204)
			wantStatus(t, "add plan", a.putFile(t, editor.Token, p, "plan.txt", []byte("plan"), nil), 201)
			wantError(t, "the viewer may not save a version", a.call(t, "POST", p+"/versions", viewer.Token, map[string]string{"message": "x"}), 403, "forbidden")
			wantStatus(t, "version 2", a.call(t, "POST", p+"/versions", editor.Token, map[string]string{"message": "Second"}), 201)
			list := decodeStrict[struct{ Versions []versionObject }](t, a.call(t, "GET", p+"/versions", viewer.Token, nil)).Versions
			if len(list) != 2 || list[0].Number != 2 || list[1].Message != "First draft" {
				t.Fatalf("versions %+v, want 2 then 1", list)
			}
			d := decodeStrict[diffObject](t, a.call(t, "GET", p+"/versions/2/diff", viewer.Token, nil))
			if !slices.Equal(d.Added, []string{"plan.txt"}) || !slices.Equal(d.Changed, []string{"notes.txt"}) || !slices.Equal(d.Removed, []string{"docs/index.html"}) {
				t.Errorf("diff 1→2: %+v", d)
			}
			d = decodeStrict[diffObject](t, a.call(t, "GET", p+"/versions/1/diff?against=2", viewer.Token, nil))
			if !slices.Equal(d.Added, []string{"docs/index.html"}) || !slices.Equal(d.Removed, []string{"plan.txt"}) {
				t.Errorf("diff 2→1: %+v", d)
			}
			// A file as it was in version 1.
			r = a.call(t, "GET", p+"/versions/1/files/notes.txt", viewer.Token, nil)
			if r.status != 200 || string(r.body) != "first notes" {
				t.Errorf("notes in version 1: %v", r)
			}
			if old := decodeStrict[treeObject](t, a.call(t, "GET", p+"/versions/1/tree", viewer.Token, nil)); len(old.Files) != 2 {
				t.Errorf("tree of version 1: %+v", old)
			}
			wantError(t, "no version 9", a.call(t, "GET", p+"/versions/9/tree", viewer.Token, nil), 404, "not_found")

			// The ZIP of version 1 holds both files as they were.
			r = a.call(t, "GET", p+"/versions/1/zip", viewer.Token, nil)
			wantStatus(t, "zip", r, 200)
			zr, err := zip.NewReader(bytes.NewReader(r.body), int64(len(r.body)))
			if err != nil {
				t.Fatalf("zip: %v", err)
			}
			got := map[string]string{}
			for _, zf := range zr.File {
				rc, _ := zf.Open()
				b, _ := io.ReadAll(rc)
				rc.Close()
				got[zf.Name] = string(b)
			}
			if got["notes.txt"] != "first notes" || got["docs/index.html"] != string(page) || len(got) != 2 {
				t.Errorf("zip holds %v", got)
			}

			// Going back to 1 is version 3, and the working tree follows.
			r = a.call(t, "POST", p+"/versions/1/restore", editor.Token, nil)
			wantStatus(t, "restore", r, 201)
			if v3 := decodeStrict[struct{ Version versionObject }](t, r).Version; v3.Number != 3 || v3.RestoredFrom != 1 {
				t.Errorf("restored as %+v", v3)
			}
			r = a.call(t, "GET", p+"/files/notes.txt", viewer.Token, nil)
			if string(r.body) != "first notes" {
				t.Errorf("notes after going back: %v", r)
			}
			wantError(t, "plan.txt is gone from the working tree", a.call(t, "GET", p+"/files/plan.txt", viewer.Token, nil), 404, "not_found")
			if n := len(decodeStrict[struct{ Versions []versionObject }](t, a.call(t, "GET", p+"/versions", viewer.Token, nil)).Versions); n != 3 {
				t.Errorf("%d versions after going back, want 3 (history is kept)", n)
			}

			// Every step is on record, downloads included; no path or content.
			log := a.auditLog(t, o.Slug, o.Manager.Token)
			counts := countActions(log)
			for action, want := range map[string]int{"file.put/success": 6, "file.delete/success": 1, "version.create/success": 2, "version.restore/success": 1} {
				if counts[action] != want {
					t.Errorf("%s: %d events, want %d", action, counts[action], want)
				}
			}
			if counts["file.read/success"] < 4 {
				t.Errorf("%d file.read events, want every download", counts["file.read/success"])
			}
			mustNotContain(t, "audit log", string(must(t, a.call(t, "GET", orgPath(o.Slug, "/audit?limit=1000"), o.Manager.Token, nil)).body),
				"index.html", "notes.txt", "first notes", "First draft")
		})
	}
}

func must(tb testing.TB, r response) response {
	tb.Helper()
	if r.status != 200 {
		tb.Fatalf("got %v, want 200", r)
	}
	return r
}
