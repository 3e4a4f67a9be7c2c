package personal_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/personal"
)

// archive is an export read back: every entry's bytes by name.
type archive map[string][]byte

func readArchive(t *testing.T, b []byte) archive {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("the export is no ZIP: %v", err)
	}
	out := archive{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name], err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// dataFiles are the JSON files every personal export holds, each with its
// schema under schema/.
var dataFiles = []string{"export.json", "profile.json", "sessions.json", "factors.json", "tokens.json", "notices.json",
	"groups.json", "projects.json", "versions.json", "files.json", "audit_events.json", "requests.json"}

// checkArchive asserts the layout: README.md, every data file and its
// schema, every top-level JSON file valid against its schema, and no JSON
// file without one.
func checkArchive(t *testing.T, a archive) {
	t.Helper()
	if !strings.Contains(string(a["README.md"]), "kluis-personal-export/v1") {
		t.Error("README.md is missing or does not describe the format")
	}
	for _, name := range dataFiles {
		if _, ok := a[name]; !ok {
			t.Errorf("%s is missing", name)
		}
	}
	var names []string
	for n := range a {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.Contains(n, "/") || !strings.HasSuffix(n, ".json") {
			continue
		}
		schema, ok := a["schema/"+n]
		if !ok {
			t.Errorf("%s has no schema/%s", n, n)
			continue
		}
		for _, p := range kluistest.CheckJSONSchema(schema, a[n]) {
			t.Errorf("%s: %s", n, p)
		}
	}
}

func decode(t *testing.T, a archive, name string, v any) {
	t.Helper()
	if err := json.Unmarshal(a[name], v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func export(t *testing.T, run func(io.Writer) error) archive {
	t.Helper()
	var buf bytes.Buffer
	if err := run(&buf); err != nil {
		t.Fatalf("export: %v", err)
	}
	return readArchive(t, buf.Bytes())
}

// lacks fails for every marker found in any entry of the archive, in any
// of the forms kluistest.FindMarkers knows.
func lacks(t *testing.T, what string, a archive, markers ...string) {
	t.Helper()
	for _, f := range kluistest.FindMarkers(a, markers...) {
		t.Errorf("%s holds someone else's data: %s", what, f)
	}
}

func setProfile(t *testing.T, env *kluistest.Env, org kluis.OrgID, a kluis.Actor, name, phone string) {
	t.Helper()
	if _, err := env.Users.UpdateMe(context.Background(), org, a, kluis.UserInput{Name: &name, Phone: &phone}); err != nil {
		t.Fatal(err)
	}
}

// R4, R34 (access, portability): a person's export holds every file of the
// documented layout, each valid against its JSON Schema, with everything of
// theirs — profile, sessions, groups, projects, the versions they saved and
// the files they wrote with their bytes, audit events as actor and as
// subject — and nothing of anyone else: no other person's name, address,
// phone, file or version message. A manager takes the same export of one
// of their people (recorded as user.export); a member may not, and a
// session that is not fresh is asked to re-authenticate.
func TestPersonalExportHoldsAllOfTheirsAndNobodyElses(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, boss := env.NewOrg(t, "pex")
		setProfile(t, env, o.ID, boss, "Bertha Bossington", "+31 6 99990000")
		alice := env.NewMember(t, o, boss, "alice@pex.example", kluis.RoleMember)
		setProfile(t, env, o.ID, alice, "Alice Quartermaine", "+31 6 11112222")
		bob := env.NewMember(t, o, boss, "bob@pex.example", kluis.RoleMember)
		setProfile(t, env, o.ID, bob, "Bob Zanzibar", "+31 6 33334444")

		p, err := env.Projects.CreateProject(ctx, o.ID, alice, kluis.ProjectInput{Name: "Harbour model"})
		if err != nil {
			t.Fatal(err)
		}
		put := func(a kluis.Actor, path, body string) {
			t.Helper()
			if _, _, err := env.Projects.PutFile(ctx, o.ID, a, p.ID, kluis.FileWrite{Path: path, Body: strings.NewReader(body)}); err != nil {
				t.Fatal(err)
			}
		}
		put(alice, "notes/alice.txt", "alice wrote these quays")
		if err := env.Rights.SetGrant(ctx, o.ID, alice, p.ID, kluis.Grant{Subject: kluis.Subject{Kind: kluis.SubjectUser, ID: string(bob.UserID)}, Relation: kluis.RelEditor}); err != nil {
			t.Fatal(err)
		}
		put(bob, "bob.txt", "bob drew the lighthouse")
		if _, err := env.Projects.CreateVersion(ctx, o.ID, alice, p.ID, "alice saved the quays"); err != nil {
			t.Fatal(err)
		}
		if _, err := env.Projects.CreateVersion(ctx, o.ID, bob, p.ID, "bob saved the lighthouse"); err != nil {
			t.Fatal(err)
		}
		g, err := env.Rights.CreateGroup(ctx, o.ID, boss, kluis.GroupInput{Name: "Harbour team"})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []kluis.UserID{alice.UserID, bob.UserID} {
			if err := env.Rights.AddGroupMember(ctx, o.ID, boss, g.ID, m); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := env.Tokens.CreateAPIToken(ctx, o.ID, alice, kluis.TokenInput{Name: "alice laptop", Scope: kluis.ScopeRead, Lifetime: 24 * time.Hour}); err != nil {
			t.Fatal(err)
		}
		if _, err := env.Users.FindUserByID(ctx, o.ID, boss, alice.UserID); err != nil { // a manager's recorded read of her
			t.Fatal(err)
		}
		env.NewMember(t, o, boss, "carol@pex.example", kluis.RoleManager) // the boss's inbox names Carol
		// Alice asked for a copy of her data; Bob objected.
		asked, err := env.PrivacyRequests.FilePrivacyRequest(ctx, o.ID, alice, kluis.PrivacyRequestInput{Type: kluis.PrivacyRequestType("access")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.PrivacyRequests.FilePrivacyRequest(ctx, o.ID, bob, kluis.PrivacyRequestInput{Type: kluis.PrivacyRequestType("objection")}); err != nil {
			t.Fatal(err)
		}

		others := []string{"Bob Zanzibar", "bob@pex.example", "+31633334444", "Bertha Bossington", "boss@pex.example", "+31699990000",
			"carol@pex.example", "bob drew the lighthouse", "bob saved the lighthouse"}

		for _, tc := range []struct {
			name  string
			run   func(io.Writer) error
			taker string
		}{
			{"her own", func(w io.Writer) error { return env.Personal.ExportMe(ctx, o.ID, alice, w) }, "self"},
			{"her manager's", func(w io.Writer) error { return env.Personal.ExportUser(ctx, o.ID, boss, alice.UserID, w) }, "manager"},
		} {
			a := export(t, tc.run)
			checkArchive(t, a)
			lacks(t, tc.name+" export", a, others...)

			var x struct {
				TakenBy string `json:"taken_by"`
			}
			decode(t, a, "export.json", &x)
			if x.TakenBy != tc.taker {
				t.Errorf("%s export: taken_by %q, want %q", tc.name, x.TakenBy, tc.taker)
			}
			var prof struct{ ID, Name, Email, Phone string }
			decode(t, a, "profile.json", &prof)
			if prof.ID != string(alice.UserID) || prof.Name != "Alice Quartermaine" || prof.Email != "alice@pex.example" || prof.Phone != "+31611112222" {
				t.Errorf("%s export: profile %+v", tc.name, prof)
			}
			var files struct {
				Files []struct{ Project, Path, Content, SHA256 string } `json:"files"`
			}
			decode(t, a, "files.json", &files)
			if len(files.Files) != 1 || files.Files[0].Path != "notes/alice.txt" || string(a[files.Files[0].Content]) != "alice wrote these quays" {
				t.Errorf("%s export: files %+v", tc.name, files)
			}
			var versions struct {
				Versions []struct{ Message string } `json:"versions"`
			}
			decode(t, a, "versions.json", &versions)
			if len(versions.Versions) != 1 || versions.Versions[0].Message != "alice saved the quays" {
				t.Errorf("%s export: versions %+v", tc.name, versions)
			}
			var projects struct {
				Projects []struct {
					ID       string
					Name     *string
					Relation *string
				} `json:"projects"`
			}
			decode(t, a, "projects.json", &projects)
			if len(projects.Projects) != 1 || projects.Projects[0].Name == nil || *projects.Projects[0].Name != "Harbour model" ||
				projects.Projects[0].Relation == nil || *projects.Projects[0].Relation != "owner" {
				t.Errorf("%s export: projects %s", tc.name, a["projects.json"])
			}
			if !bytes.Contains(a["groups.json"], []byte("Harbour team")) || !bytes.Contains(a["tokens.json"], []byte("alice laptop")) {
				t.Errorf("%s export: groups %s tokens %s", tc.name, a["groups.json"], a["tokens.json"])
			}
			var sessions struct {
				Sessions []struct{ Current bool } `json:"sessions"`
			}
			decode(t, a, "sessions.json", &sessions)
			if len(sessions.Sessions) == 0 || sessions.Sessions[0].Current != (tc.taker == "self") {
				t.Errorf("%s export: sessions %s", tc.name, a["sessions.json"])
			}
			var events struct {
				Events []struct {
					Action, Actor, Target string
					Role                  []string
				} `json:"events"`
			}
			decode(t, a, "audit_events.json", &events)
			var asActor, asSubject bool
			for _, e := range events.Events {
				asActor = asActor || (e.Action == "project.create" && e.Actor == "user:"+string(alice.UserID))
				asSubject = asSubject || (e.Action == "user.read" && e.Actor == "user:"+string(boss.UserID) && e.Target == "user:"+string(alice.UserID))
			}
			if !asActor || !asSubject {
				t.Errorf("%s export: her events as actor %v, as subject %v", tc.name, asActor, asSubject)
			}
			var requests struct {
				Requests []struct{ ID, Type, Status string } `json:"requests"`
			}
			decode(t, a, "requests.json", &requests)
			if len(requests.Requests) != 1 || requests.Requests[0].ID != string(asked.ID) || requests.Requests[0].Type != "access" || requests.Requests[0].Status != "open" {
				t.Errorf("%s export: requests.json %s, want her one open access request and not Bob's", tc.name, a["requests.json"])
			}
		}

		// The boss's own inbox names Carol; the notice is in the export,
		// its text withheld.
		a := export(t, func(w io.Writer) error { return env.Personal.ExportMe(ctx, o.ID, boss, w) })
		checkArchive(t, a)
		lacks(t, "the boss's export", a, "Alice Quartermaine", "alice@pex.example", "Bob Zanzibar", "carol@pex.example")
		var notices struct {
			Notices []struct{ Kind, Body string } `json:"notices"`
		}
		decode(t, a, "notices.json", &notices)
		if len(notices.Notices) != 1 || notices.Notices[0].Kind != kluis.NoticeManagerGranted || notices.Notices[0].Body != personal.Withheld {
			t.Errorf("the boss's notices: %s", a["notices.json"])
		}

		var exports []kluis.AuditEvent
		for _, e := range env.Events(t, o.ID, boss) {
			if e.Action == "user.export" && e.Outcome == "success" {
				exports = append(exports, e)
			}
		}
		seen := map[string]int{}
		for _, e := range exports {
			seen[e.Actor+" "+e.Target]++
		}
		aliceRef, bossRef := "user:"+string(alice.UserID), "user:"+string(boss.UserID)
		if len(exports) != 3 || seen[aliceRef+" "+aliceRef] != 1 || seen[bossRef+" "+aliceRef] != 1 || seen[bossRef+" "+bossRef] != 1 {
			t.Errorf("user.export events: %v, want one of alice's own, one of the boss's of alice, one of the boss's own", seen)
		}

		// Refusals.
		err = env.Personal.ExportUser(ctx, o.ID, bob, alice.UserID, io.Discard)
		kluistest.WantCode(t, err, kluis.EForbidden)
		err = env.Personal.ExportUser(ctx, o.ID, boss, "0190a0a0-0000-7000-8000-00000000dead", io.Discard)
		kluistest.WantCode(t, err, kluis.ENotFound)
		stale := alice
		stale.AuthenticatedAt = env.Clock.Now().Add(-time.Hour)
		var buf bytes.Buffer
		kluistest.WantCode(t, env.Personal.ExportMe(ctx, o.ID, stale, &buf), kluis.EReauthRequired)
		if buf.Len() != 0 {
			t.Error("a refused export wrote bytes")
		}
	})
}

// R5, R34 (erasure), R23: a person deletes their own account after a fresh
// authentication. The only owner of a project is refused until they hand
// it over or delete it, the last manager always; both refusals are
// recorded. Afterwards their session is gone, their key destroyed so that
// a copy of their sealed fields taken before no longer opens, their
// personal export and a manager's export of them are not_found, the
// organisation's export holds nothing of them, the project stays with
// their versions under their former id, and every chain verifies.
func TestErasingOnesOwnAccountLeavesNothingReadable(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, boss := env.NewOrg(t, "per")
		alice := env.NewMember(t, o, boss, "alice@per.example", kluis.RoleMember)
		setProfile(t, env, o.ID, alice, "Alice Quartermaine", "+31 6 11112222")
		bob := env.NewMember(t, o, boss, "bob@per.example", kluis.RoleMember)
		kept, err := env.Projects.CreateProject(ctx, o.ID, alice, kluis.ProjectInput{Name: "Harbour model"})
		if err != nil {
			t.Fatal(err)
		}
		dropped, err := env.Projects.CreateProject(ctx, o.ID, alice, kluis.ProjectInput{Name: "Old sketch"})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := env.Projects.PutFile(ctx, o.ID, alice, kept.ID, kluis.FileWrite{Path: "a.txt", Body: strings.NewReader("quays")}); err != nil {
			t.Fatal(err)
		}
		v, err := env.Projects.CreateVersion(ctx, o.ID, alice, kept.ID, "first quays")
		if err != nil {
			t.Fatal(err)
		}

		stale := alice
		stale.AuthenticatedAt = time.Time{}
		kluistest.WantCode(t, env.Personal.EraseMe(ctx, o.ID, stale), kluis.EReauthRequired)
		kluistest.WantCode(t, env.Personal.EraseMe(ctx, o.ID, alice), kluis.EConflict) // the only owner of two projects
		if err := env.Rights.SetGrant(ctx, o.ID, alice, kept.ID, kluis.Grant{Subject: kluis.Subject{Kind: kluis.SubjectUser, ID: string(bob.UserID)}, Relation: kluis.RelOwner}); err != nil {
			t.Fatal(err)
		}
		kluistest.WantCode(t, env.Personal.EraseMe(ctx, o.ID, alice), kluis.EConflict) // still the only owner of one
		if err := env.Projects.DeleteProject(ctx, o.ID, alice, dropped.ID); err != nil {
			t.Fatal(err)
		}
		kluistest.WantCode(t, env.Personal.EraseMe(ctx, o.ID, boss), kluis.EConflict) // the last manager

		// A copy of the data taken before: her sealed fields, and every
		// byte of the data database.
		sealed := env.Query(t, `SELECT email, name, phone FROM users WHERE id = '`+string(alice.UserID)+`'`)[0]
		before := env.StoredBytes(t)
		for name := range before {
			// A copy of the data database: not the key store, not the
			// development mail sink.
			if !strings.HasPrefix(name, "kluis.db") && name != "pg_dump of the data database" {
				delete(before, name)
			}
		}
		if len(before) == 0 {
			t.Fatal("no copy of the data database to scan")
		}
		for _, f := range kluistest.FindMarkers(before, "Alice Quartermaine", "alice@per.example", "+31611112222") {
			t.Errorf("the data before erasure holds her in clear: %s", f)
		}

		other, _, err := kluistest.Login(ctx, env.SignIn, o.ID, "alice@per.example", kluistest.Password)
		if err != nil {
			t.Fatal(err)
		}
		if err := env.Personal.EraseMe(ctx, o.ID, alice); err != nil {
			t.Fatalf("erase: %v", err)
		}

		if _, _, err := kluistest.Authenticate(ctx, env.SignIn, other.Token); kluis.ErrorCode(err) != kluis.EUnauthenticated {
			t.Errorf("her other session after the erasure: %v, want unauthenticated", err)
		}
		if _, err := env.KeyStore.ActiveVersion(ctx, keys.UserKey(string(o.ID), string(alice.UserID))); !errors.Is(err, keys.ErrKeyDestroyed) {
			t.Errorf("her key: got %v, want destroyed", err)
		}
		for i, col := range []string{sqlstore.ColEmail, sqlstore.ColName, sqlstore.ColPhone} {
			if _, err := env.Areas.Core.Open(ctx, sqlstore.UserField(o.ID, alice.UserID, col), sealed[i]); err == nil {
				t.Errorf("a copy of her sealed %s still opens", col)
			}
		}
		if _, err := env.Users.FindUserByID(ctx, o.ID, boss, alice.UserID); kluis.ErrorCode(err) != kluis.ENotFound {
			t.Errorf("finding her: %v, want not_found", err)
		}
		kluistest.WantCode(t, env.Personal.ExportUser(ctx, o.ID, boss, alice.UserID, io.Discard), kluis.ENotFound)
		if n := env.Query(t, `SELECT COUNT(*) FROM sessions WHERE subject = '`+string(alice.UserID)+`'`)[0][0]; string(n) != "0" {
			t.Errorf("her sessions left: %s", n)
		}

		var buf bytes.Buffer
		if err := env.Export.ExportOrg(ctx, o.ID, boss, &buf); err != nil {
			t.Fatal(err)
		}
		orgExport := readArchive(t, buf.Bytes())
		lacks(t, "the organisation's export", orgExport, "Alice Quartermaine", "alice@per.example", "+31611112222")
		if !bytes.Contains(orgExport["README.md"], []byte("Export of")) {
			t.Error("the organisation's export is empty")
		}

		versions, err := env.Projects.FindVersions(ctx, o.ID, bob, kept.ID)
		if err != nil || len(versions) != 1 || versions[0].Number != v.Number || versions[0].Author != alice.UserID || versions[0].AuthorName != "" {
			t.Errorf("the kept project's versions: %+v, %v", versions, err)
		}

		evs := env.Events(t, o.ID, boss)
		var erased, refused int
		for _, e := range evs {
			if e.Action == "user.erase" && e.Target == "user:"+string(alice.UserID) {
				switch e.Outcome {
				case "success":
					erased++
				default:
					refused++
				}
			}
		}
		if erased != 1 || refused != 3 {
			t.Errorf("user.erase events: %d erased, %d refused; want 1 and 3 (reauth, two owner refusals)", erased, refused)
		}
		results, err := env.Audit.VerifyChains(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range results {
			if !r.OK {
				t.Errorf("chain %s broken: %+v", r.Chain, r)
			}
		}
	})
}

// TestDocsHoldTheArchiveReadme: docs/PERSONAL-EXPORT.md carries the
// archive's README.md word for word, so the documented layout and the one
// that ships cannot drift apart.
func TestDocsHoldTheArchiveReadme(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/PERSONAL-EXPORT.md")
	if err != nil {
		t.Fatal(err)
	}
	r := personal.Readme()
	body := strings.TrimLeft(r[strings.Index(r, "\n")+1:], "\n")
	if !strings.Contains(string(doc), body) {
		t.Error("docs/PERSONAL-EXPORT.md does not hold internal/sqlstore/personal/readme.md word for word")
	}
	for name := range personal.Schemas() {
		if !strings.Contains(r, "`"+name+"`") {
			t.Errorf("README.md does not describe %s", name)
		}
	}
}

// signedInFrom signs email in from addr and returns the session's actor,
// which records addr (sealed) with every event it causes.
func signedInFrom(t *testing.T, env *kluistest.Env, org kluis.OrgID, email, addr string) kluis.Actor {
	t.Helper()
	from := kluis.Origin{Client: netip.MustParseAddr(addr)}
	sess, _, err := kluistest.LoginFrom(context.Background(), env.SignIn, org, from, email, kluistest.Password)
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := kluistest.AuthenticateFrom(context.Background(), env.SignIn, from, sess.Token)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// R4, R29, R34: in a person's export the sealed values of the audit events
// about them open only when they are theirs. The address they acted from
// is there; the address of the manager who read their profile, sealed
// under the manager's key, reads [withheld], and so does the reason an
// operator recorded under the organisation's key.
func TestPersonalExportOpensOnlyTheirOwnSealedValues(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, boss := env.NewOrg(t, "pwh")
		env.NewMember(t, o, boss, "alice@pwh.example", kluis.RoleMember)
		alice := signedInFrom(t, env, o.ID, "alice@pwh.example", "203.0.113.9")
		boss = signedInFrom(t, env, o.ID, "boss@pwh.example", "198.51.100.7")
		setProfile(t, env, o.ID, alice, "Alice Quartermaine", "+31 6 11112222")
		if _, err := env.Users.FindUserByID(ctx, o.ID, boss, alice.UserID); err != nil {
			t.Fatal(err)
		}
		// An event about her with a detail sealed under the organisation's
		// key, as the operator's erasure reason is.
		if err := env.Areas.Core.Write(ctx, sqlstore.OrgChain(o.ID), func(tx *sqlstore.Tx) error {
			return tx.Append(ctx, sqlstore.OrgChain(o.ID), kluis.CLIActor, "user.update", "user:"+string(alice.UserID), "success",
				map[string]any{"note": sqlstore.SealedDetail{Key: keys.OrgKey(string(o.ID)), Value: "organisation-only remark"}})
		}); err != nil {
			t.Fatal(err)
		}
		a := export(t, func(w io.Writer) error { return env.Personal.ExportMe(ctx, o.ID, alice, w) })
		checkArchive(t, a)
		lacks(t, "her export", a, "198.51.100.7", "organisation-only remark")
		var events struct {
			Events []struct {
				Action, Actor string
				Client        *string
				Details       map[string]any
			} `json:"events"`
		}
		decode(t, a, "audit_events.json", &events)
		var own, managers, note bool
		for _, e := range events.Events {
			switch {
			case e.Action == "user.update" && e.Actor == "user:"+string(alice.UserID):
				own = e.Client != nil && *e.Client == "203.0.113.9"
			case e.Action == "user.read" && e.Actor == "user:"+string(boss.UserID):
				managers = e.Client != nil && *e.Client == personal.Withheld
			case e.Action == "user.update" && e.Actor == "cli":
				note = e.Details["note"] == personal.Withheld
			}
		}
		if !own || !managers || !note {
			t.Errorf("her own address opened %v, the manager's withheld %v, the organisation's remark withheld %v:\n%s", own, managers, note, a["audit_events.json"])
		}
	})
}

// R34 (restriction): while a person's processing is restricted their data
// goes to nobody else — a manager's export of them is refused with
// processing_restricted, writes nothing and is recorded as denied — but
// the person still takes their own; once lifted, the manager's works again.
func TestRestrictedPersonsDataGoesOnlyToThemselves(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, boss := env.NewOrg(t, "pex-restricted")
		alice := env.NewMember(t, o, boss, "alice@pex-restricted.example", kluis.RoleMember)
		if err := env.Users.RestrictProcessing(ctx, o.ID, alice, alice.UserID); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		err := env.Personal.ExportUser(ctx, o.ID, boss, alice.UserID, &buf)
		if kluis.ErrorCode(err) != kluis.EProcessingRestricted || buf.Len() != 0 {
			t.Fatalf("a manager's export of a restricted person: %v and %d bytes, want processing_restricted and nothing", err, buf.Len())
		}
		denied := 0
		for _, e := range env.Events(t, o.ID, boss) {
			if e.Action == "user.export" && e.Outcome == "denied" {
				denied++
			}
		}
		if denied != 1 {
			t.Errorf("%d denied user.export events, want 1", denied)
		}
		export(t, func(w io.Writer) error { return env.Personal.ExportMe(ctx, o.ID, alice, w) })
		if err := env.Users.LiftRestriction(ctx, o.ID, boss, alice.UserID); err != nil {
			t.Fatal(err)
		}
		export(t, func(w io.Writer) error { return env.Personal.ExportUser(ctx, o.ID, boss, alice.UserID, w) })
	})
}
