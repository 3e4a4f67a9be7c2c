package kluis_test

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kluis/kluis"
)

func TestNewIDIsTimeOrderedUUIDv7(t *testing.T) {
	a := kluis.NewID(time.UnixMilli(1_700_000_000_000))
	b := kluis.NewID(time.UnixMilli(1_700_000_000_001))
	for _, id := range []string{a, b} {
		if !kluis.ValidID(id) || id[14] != '7' || !strings.ContainsRune("89ab", rune(id[19])) {
			t.Fatalf("got %q, want a UUIDv7", id)
		}
	}
	if a >= b {
		t.Fatalf("got %q >= %q, want ids ordered by time", a, b)
	}
	if kluis.NewID(time.Now()) == kluis.NewID(time.Now()) {
		t.Fatal("two ids in the same millisecond are equal")
	}
}

func TestValidateSlug(t *testing.T) {
	for slug, ok := range map[string]bool{
		"acme": true, "a1": true, "my-org-2": true, strings.Repeat("a", 40): true,
		"a": false, "-acme": false, "acme-": false, "Acme": false, "ac me": false, "ac_me": false,
		strings.Repeat("a", 41): false, "": false, "acmé": false, "../x": false,
	} {
		if got := kluis.ValidateSlug(slug) == nil; got != ok {
			t.Errorf("ValidateSlug(%q): got valid=%v, want %v", slug, got, ok)
		}
	}
}

// DESIGN §4: NFKC, trim, lower-case the whole address; nothing cleverer.
func TestNormalizeEmail(t *testing.T) {
	for in, want := range map[string]string{
		" Boss@Example.ORG ":    "boss@example.org",
		"first.last+tag@x.org":  "first.last+tag@x.org",
		"ｂｏｓｓ@example.org":      "boss@example.org",
		"MÜLLER@example.org":    "müller@example.org",
		"a@b.c\t":               "a@b.c",
		"First.Last@Gmail.com":  "first.last@gmail.com",
		"first.last@gmail.com ": "first.last@gmail.com",
	} {
		if got := kluis.NormalizeEmail(in); got != want {
			t.Errorf("NormalizeEmail(%q): got %q, want %q", in, got, want)
		}
	}
}

func TestValidateEmailNeverEchoesTheAddress(t *testing.T) {
	for _, in := range []string{"", "no-at-sign", "a@", "@b.org", "Name <a@b.org>", "a@b.org, c@d.org", "a\r\nBcc: x@y.org", strings.Repeat("a", 250) + "@b.org"} {
		err := kluis.ValidateEmail(in)
		if err == nil {
			t.Errorf("ValidateEmail(%q): got valid, want an error", in)
			continue
		}
		if in != "" && strings.Contains(err.Error(), in) {
			t.Errorf("ValidateEmail(%q): the error repeats the address", in)
		}
	}
	if err := kluis.ValidateEmail("boss@example.org"); err != nil {
		t.Fatalf("got %v, want valid", err)
	}
}

// R16: at least 8 characters always; digits and upper case by policy; up to
// 256 characters of any Unicode after NFKC.
// TestCommonPasswordsAreShipped: the binary carries the list (at least the
// top 10,000 of the ranked source with the length floor applied), and a
// common password gets a message that helps.
func TestCommonPasswordsAreShipped(t *testing.T) {
	for _, pw := range []string{"password", "12345678", "baseball", "trustno1", "football1", "sunshine"} {
		if !kluis.IsCommonPassword(pw) {
			t.Errorf("%q is not on the list", pw)
		}
	}
	err := kluis.DefaultPolicy.CheckPassword("Sunshine")
	if err == nil || !strings.Contains(err.Error(), "most common") {
		t.Errorf("CheckPassword(Sunshine) = %v, want the common-password message", err)
	}
}

// TestCommonPasswordListIsSorted: the lookup is a binary search.
func TestCommonPasswordListIsSorted(t *testing.T) {
	b, err := os.ReadFile("common_passwords.txt")
	if err != nil {
		t.Fatal(err)
	}
	var words []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !strings.HasPrefix(l, "#") {
			words = append(words, l)
		}
	}
	if len(words) < 10000 || !slices.IsSorted(words) || slices.Compact(slices.Clone(words))[len(words)-1] != words[len(words)-1] {
		t.Errorf("%d entries, sorted %v; want at least 10,000, sorted, no duplicates", len(words), slices.IsSorted(words))
	}
}

func TestPolicyCheckPassword(t *testing.T) {
	strict := kluis.Policy{PasswordMinLength: 10, PasswordRequireDigit: true, PasswordRequireUpper: true}
	cases := []struct {
		policy kluis.Policy
		pw     string
		ok     bool
	}{
		{kluis.DefaultPolicy, "82615937", true},
		{kluis.DefaultPolicy, "1234567", false},
		// The most common leaked passwords are refused, whatever their case.
		{kluis.DefaultPolicy, "12345678", false},
		{kluis.DefaultPolicy, "password", false},
		{kluis.DefaultPolicy, "PassWord1", false},
		{kluis.DefaultPolicy, "iloveyou", false},
		{kluis.DefaultPolicy, "qwertyuiop", false},
		{kluis.DefaultPolicy, "correct horse battery staple", true},
		{kluis.Policy{PasswordMinLength: 4}, "1234567", false}, // the floor holds whatever the policy says
		{kluis.DefaultPolicy, "wachtwoord-één", true},
		{kluis.DefaultPolicy, "密码密码密码密码", true},
		{kluis.DefaultPolicy, strings.Repeat("x", 256), true},
		{kluis.DefaultPolicy, strings.Repeat("x", 257), false},
		{kluis.DefaultPolicy, "        ", false},
		{strict, "Abcdefghi1", true},
		{strict, "abcdefghi1", false},
		{strict, "Abcdefghij", false},
		{strict, "Abcdefgh1", false},
	}
	for _, c := range cases {
		err := c.policy.CheckPassword(kluis.NormalizePassword(c.pw))
		if (err == nil) != c.ok {
			t.Errorf("CheckPassword(%q) with %+v: got %v, want ok=%v", c.pw, c.policy, err, c.ok)
		}
	}
	// NFKC: the full-width and the ASCII spelling are one password.
	if kluis.NormalizePassword("ｐａｓｓｗｏｒｄ１") != "password1" {
		t.Fatal("NormalizePassword does not apply NFKC")
	}
}

func TestPolicyValidate(t *testing.T) {
	if err := kluis.DefaultPolicy.Validate(); err != nil {
		t.Fatalf("default policy: %v", err)
	}
	bad := kluis.Policy{PasswordMinLength: 7, SessionIdleMinutes: 0, SessionMaxHours: 10000, MFA: "sometimes", LockoutThreshold: 2}
	err := bad.Validate()
	var ke *kluis.Error
	if e, ok := err.(*kluis.Error); ok {
		ke = e
	}
	if ke == nil || ke.Code != kluis.EInvalid || len(ke.Fields) != 10 {
		t.Fatalf("got %v, want invalid_input naming ten fields", err)
	}
	for _, f := range []string{"mfa", "lockout_threshold", "project_access", "trash_days", "support_approvals", "inactive_user_days", "audit_retention_days"} {
		if ke.Fields[f] == "" {
			t.Errorf("field %s not named: %v", f, ke.Fields)
		}
	}
}

// R6, R8, R22, R46: the rights of the foundation as pure rules, for the
// people of an organisation, each operator role, support sessions of each
// grant and the command line.
func TestRights(t *testing.T) {
	org, other := kluis.OrgID("o1"), kluis.OrgID("o2")
	manager := kluis.Actor{Realm: kluis.RealmOrg, OrgID: org, UserID: "u1", Role: kluis.RoleManager}
	member := kluis.Actor{Realm: kluis.RealmOrg, OrgID: org, UserID: "u2", Role: kluis.RoleMember}
	foreignManager := kluis.Actor{Realm: kluis.RealmOrg, OrgID: other, UserID: "u3", Role: kluis.RoleManager}
	op := func(r kluis.OperatorRole) kluis.Actor {
		return kluis.Actor{Realm: kluis.RealmOperator, OperatorID: "op", OperatorRole: r}
	}
	sup := func(scope kluis.SupportScope, right kluis.SupportRight) kluis.Actor {
		return kluis.Actor{Realm: kluis.RealmOrg, OrgID: org, OperatorID: "op", Support: &kluis.SupportAccess{GrantID: "g", Scope: scope, Right: right}}
	}
	actors := map[string]kluis.Actor{
		"manager": manager, "member": member, "foreign manager": foreignManager, "anonymous": {}, "cli": kluis.CLIActor,
		"admin": op(kluis.OperatorAdmin), "support": op(kluis.OperatorSupport), "security": op(kluis.OperatorSecurity), "roleless operator": op(""),
		"support view": sup(kluis.SupportOrgScope, kluis.SupportView), "support edit": sup(kluis.SupportOrgScope, kluis.SupportEdit),
		"support project": sup(kluis.SupportProjectScope("01a00000-0000-7000-8000-000000000001"), kluis.SupportEdit),
	}
	orgRules := []struct {
		name string
		rule func(kluis.Actor, kluis.OrgID) bool
		want []string
	}{
		{"CanReadUsers", kluis.CanReadUsers, []string{"manager", "support view", "support edit"}},
		{"CanManageUsers", kluis.CanManageUsers, []string{"manager", "support edit"}},
		{"CanChangeRoles", kluis.CanChangeRoles, []string{"manager"}},
		{"CanDeleteUsers", kluis.CanDeleteUsers, []string{"manager"}},
		{"CanResetFactors", kluis.CanResetFactors, []string{"manager"}},
		{"CanReadPolicy", kluis.CanReadPolicy, []string{"manager", "member", "support view", "support edit"}},
		{"CanUpdatePolicy", kluis.CanUpdatePolicy, []string{"manager"}},
		{"CanReadAudit", kluis.CanReadAudit, []string{"manager", "support view", "support edit"}},
		{"CanExportAudit", kluis.CanExportAudit, []string{"manager"}},
		{"CanManageGroups", kluis.CanManageGroups, []string{"manager"}},
		{"CanCreateProject", kluis.CanCreateProject, []string{"manager", "member"}},
		{"CanStopLogins", kluis.CanStopLogins, []string{"manager", "admin", "security", "cli"}},
		{"CanReadLicence", kluis.CanReadLicence, []string{"manager", "admin", "support", "cli", "support view", "support edit"}},
	}
	for _, c := range orgRules {
		for name, a := range actors {
			if got := c.rule(a, org); got != slices.Contains(c.want, name) {
				t.Errorf("%s(%s): got %v, want %v", c.name, name, got, !got)
			}
		}
	}
	opRules := []struct {
		name string
		rule func(kluis.Actor) bool
		want []string
	}{
		{"CanManageOrgs", kluis.CanManageOrgs, []string{"admin", "cli"}},
		{"CanListOrgs", kluis.CanListOrgs, []string{"admin", "support", "security", "cli"}},
		{"CanManageLicences", kluis.CanManageLicences, []string{"admin", "cli"}},
		{"CanEraseOnRequest", kluis.CanEraseOnRequest, []string{"admin", "cli"}},
		{"CanManageOperatorAccounts", kluis.CanManageOperatorAccounts, []string{"admin", "cli"}},
		{"CanManageOperators", kluis.CanManageOperators, []string{"cli"}},
		{"CanKeepSecurity", kluis.CanKeepSecurity, []string{"admin", "security", "cli"}},
		{"CanStopInstanceLogins", kluis.CanStopInstanceLogins, []string{"admin", "security", "cli"}},
		{"CanAskSupport", kluis.CanAskSupport, []string{"support", "cli"}},
		{"CanSeeJobs", kluis.CanSeeJobs, []string{"admin", "support", "security", "cli"}},
		{"CanResolveAlerts", kluis.CanResolveAlerts, []string{"admin", "security", "cli"}},
	}
	for _, c := range opRules {
		for name, a := range actors {
			if got := c.rule(a); got != slices.Contains(c.want, name) {
				t.Errorf("%s(%s): got %v, want %v", c.name, name, got, !got)
			}
		}
	}
	// Support's rights on projects: never beyond a manager's under the
	// policy, never grant, delete or start; a project grant only there.
	p1, p2 := kluis.ProjectID("01a00000-0000-7000-8000-000000000001"), kluis.ProjectID("01a00000-0000-7000-8000-000000000002")
	all, none := kluis.ManagerProjectRights(kluis.ProjectAccessManagers), kluis.ManagerProjectRights(kluis.ProjectAccessOwners)
	for _, c := range []struct {
		who     string
		project kluis.ProjectID
		manager kluis.Rights
		want    kluis.Rights
	}{
		{"support view", p1, all, kluis.Rights(kluis.RightView)},
		{"support edit", p1, all, kluis.Rights(kluis.RightView | kluis.RightEdit)},
		{"support edit", p1, none, 0},
		{"support project", p1, none, kluis.Rights(kluis.RightView | kluis.RightEdit)},
		{"support project", p2, all, 0},
		{"manager", p1, all, 0},
	} {
		if got := kluis.SupportProjectRights(actors[c.who], org, c.project, c.manager); got != c.want {
			t.Errorf("SupportProjectRights(%s, %s): %v, want %v", c.who, c.project, got.Names(), c.want.Names())
		}
	}
	if got := kluis.SupportProjectRights(actors["support edit"], other, p1, all); got != 0 {
		t.Errorf("support of one organisation in another: %v", got.Names())
	}
	for name, want := range map[string]string{"manager": "user:u1", "support view": "support:op", "admin": "operator:op", "cli": "cli"} {
		if got := actors[name].AuditName(); got != want {
			t.Errorf("AuditName(%s): got %q, want %q", name, got, want)
		}
	}
}

// A support grant runs at most 14 days, needs a reason, a right and a
// scope; a later end is refused, not shortened (R22).
func TestSupportGrantInput(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	ok := kluis.SupportGrantInput{Scope: kluis.SupportOrgScope, Right: kluis.SupportView, Reason: "ticket", ExpiresAt: now.Add(kluis.MaxSupportGrant)}
	if err := ok.Validate(now); err != nil {
		t.Fatalf("14 days: %v", err)
	}
	for name, in := range map[string]kluis.SupportGrantInput{
		"a second too long": {Scope: kluis.SupportOrgScope, Right: kluis.SupportView, Reason: "x", ExpiresAt: now.Add(kluis.MaxSupportGrant + time.Second)},
		"in the past":       {Scope: kluis.SupportOrgScope, Right: kluis.SupportView, Reason: "x", ExpiresAt: now},
		"no reason":         {Scope: kluis.SupportOrgScope, Right: kluis.SupportView, ExpiresAt: now.Add(time.Hour)},
		"bad scope":         {Scope: "project:nope", Right: kluis.SupportView, Reason: "x", ExpiresAt: now.Add(time.Hour)},
		"bad right":         {Scope: kluis.SupportOrgScope, Right: "own", Reason: "x", ExpiresAt: now.Add(time.Hour)},
	} {
		if kluis.ErrorCode(in.Normalize().Validate(now)) != kluis.EInvalid {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Normalising and validating any input never panics, and what validates
// is stable under normalisation.
func FuzzUserInput(f *testing.F) {
	for _, s := range []string{"Boss@Example.org", " a@b.c ", "<script>alert(1)</script>", "+31 (20) 123-4567", "\x00", "\xff\xfe", "ﬁ@ﬀ.org"} {
		f.Add(s, s, s)
	}
	f.Fuzz(func(t *testing.T, email, name, phone string) {
		in := kluis.UserInput{Email: &email, Name: &name, Phone: &phone}.Normalize()
		if err := in.Validate(); err != nil {
			return
		}
		if again := kluis.NormalizeEmail(*in.Email); again != *in.Email {
			t.Fatalf("NormalizeEmail is not idempotent: %q → %q", *in.Email, again)
		}
		if !utf8.ValidString(*in.Name) || !utf8.ValidString(*in.Email) {
			t.Fatal("invalid UTF-8 passed validation")
		}
	})
}

func FuzzCheckPassword(f *testing.F) {
	for _, s := range []string{"12345678", "Abcdefgh1", "\xff\xff\xff\xff\xff\xff\xff\xff", strings.Repeat("é", 300)} {
		f.Add(s, 8, true, true)
	}
	f.Fuzz(func(t *testing.T, pw string, min int, digit, upper bool) {
		p := kluis.Policy{PasswordMinLength: min, PasswordRequireDigit: digit, PasswordRequireUpper: upper}
		n := kluis.NormalizePassword(pw)
		if p.CheckPassword(n) == nil && utf8.RuneCountInString(n) < kluis.MinPasswordLength {
			t.Fatalf("a password of %d characters passed", utf8.RuneCountInString(n))
		}
	})
}

// R2, R6, R7: what each relation allows, and the manager's rights under
// each project access policy.
func TestProjectRights(t *testing.T) {
	for rel, want := range map[kluis.Relation][]string{
		kluis.RelViewer: {"view"},
		kluis.RelRunner: {"view", "start"},
		kluis.RelEditor: {"view", "edit"},
		kluis.RelOwner:  {"view", "edit", "start", "grant", "delete"},
		"god":           {},
	} {
		if got := kluis.RelationRights(rel).Names(); !slices.Equal(got, want) {
			t.Errorf("%s: got %v, want %v", rel, got, want)
		}
	}
	org := kluis.OrgID("o1")
	manager := kluis.Actor{Realm: kluis.RealmOrg, OrgID: org, UserID: "u1", Role: kluis.RoleManager}
	member := kluis.Actor{Realm: kluis.RealmOrg, OrgID: org, UserID: "u2", Role: kluis.RoleMember}
	foreign := kluis.Actor{Realm: kluis.RealmOrg, OrgID: "o2", UserID: "u3", Role: kluis.RoleManager}
	operator := kluis.Actor{Realm: kluis.RealmOperator, OperatorID: "op"}
	viewer := kluis.RelationRights(kluis.RelViewer)
	cases := []struct {
		name    string
		actor   kluis.Actor
		access  string
		granted kluis.Rights
		want    kluis.Rights
	}{
		{"manager under managers holds every right", manager, kluis.ProjectAccessManagers, 0, kluis.AllRights},
		{"manager under owners holds only grants", manager, kluis.ProjectAccessOwners, 0, 0},
		{"manager under owners with a grant", manager, kluis.ProjectAccessOwners, viewer, viewer},
		{"member holds their grants", member, kluis.ProjectAccessManagers, viewer, viewer},
		{"member without grant", member, kluis.ProjectAccessManagers, 0, 0},
		{"another organisation's manager", foreign, kluis.ProjectAccessManagers, kluis.AllRights, 0},
		{"operator", operator, kluis.ProjectAccessManagers, kluis.AllRights, 0},
		{"anonymous", kluis.Actor{}, kluis.ProjectAccessManagers, kluis.AllRights, 0},
	}
	for _, c := range cases {
		if got := kluis.ProjectRights(c.actor, org, c.access, c.granted); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got.Names(), c.want.Names())
		}
	}
	if !kluis.AllRights.Covers(viewer) || viewer.Covers(kluis.AllRights) {
		t.Error("Covers: an owner covers a viewer, not the other way round")
	}
	for _, s := range []string{"user:x", "team:0190a0b0-0000-7000-8000-000000000000", "user", "", "group:"} {
		if _, err := kluis.ParseSubject(s); kluis.ErrorCode(err) != kluis.EInvalid {
			t.Errorf("ParseSubject(%q): got %v, want invalid_input", s, err)
		}
	}
	if s, err := kluis.ParseSubject("group:0190a0b0-0000-7000-8000-000000000000"); err != nil || s.Kind != kluis.SubjectGroup {
		t.Errorf("ParseSubject(group:…): got %v, %v", s, err)
	}
}
