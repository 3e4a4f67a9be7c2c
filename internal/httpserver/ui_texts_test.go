package httpserver

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/i18n"
)

// TestPagesUseOnlyKnownTexts: every text key that a template or a page
// handler names, and every key built from a value (roles, statuses,
// outcomes, actions, error codes, notices, fields), is in the catalogue, so
// no page shows a "!key" in either language.
func TestPagesUseOnlyKnownTexts(t *testing.T) {
	var keys []string
	literal := regexp.MustCompile(`(?:\.T|\bT\(|title\() ?"([a-z_]+\.[a-z_.]*[a-z_]|[a-z_]+)"`)
	files, _ := filepath.Glob("templates/*.html")
	gofiles, _ := filepath.Glob("ui*.go")
	for _, f := range append(files, gofiles...) {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range literal.FindAllStringSubmatch(string(b), -1) {
			keys = append(keys, m[1])
		}
	}
	if len(keys) < 100 {
		t.Fatalf("found %d text keys in the pages; the pattern is broken", len(keys))
	}
	// Notices are passed to redirect by name.
	notice := regexp.MustCompile(`redirect\(w, r, [^,]+, "([a-z_]+)"\)|notice = [a-zA-Z.]+, "([a-z_]+)"|, "([a-z_]+)"\n`)
	for _, f := range gofiles {
		b, _ := os.ReadFile(f)
		for _, m := range notice.FindAllStringSubmatch(string(b), -1) {
			for _, n := range m[1:] {
				if n != "" {
					keys = append(keys, "notice."+n)
				}
			}
		}
	}
	for _, v := range []string{"manager", "member"} {
		keys = append(keys, "role."+v)
	}
	for _, v := range []kluis.UserStatus{kluis.StatusInvited, kluis.StatusActive, kluis.StatusDisabled} {
		keys = append(keys, "status."+string(v))
	}
	for _, v := range []string{"success", "denied", "failure"} {
		keys = append(keys, "outcome."+v)
	}
	for _, v := range kluis.Languages {
		keys = append(keys, "language."+v)
	}
	for _, a := range auditActions {
		keys = append(keys, "action."+a)
	}
	// Backups (R30 R32): statuses, kinds, copies, verifications, drills.
	for _, v := range []string{kluis.BackupRunning, kluis.BackupOK, kluis.BackupPartial, kluis.BackupFailed, kluis.BackupDeleted, kluis.BackupExpired} {
		keys = append(keys, "backup.status."+v)
	}
	keys = append(keys, "backup.kind.full", "backup.kind.incremental", "backup.copy.ok", "backup.copy.failed", "backup.copy.deleted",
		"backup.verified.intact", "backup.verified.damaged", "backup.drill.ok", "backup.drill.failed")
	for _, a := range []string{"cli", "system", "anonymous", "operator"} {
		keys = append(keys, "audit.actor."+a)
	}
	for code := range statusOf {
		keys = append(keys, "error."+code, "error."+code+".title")
	}
	keys = append(keys, "error.internal", "error.internal.title")
	for _, f := range []string{"email", "password", "name", "phone", "maintenance_emails", "role", "disabled", "current_password", "new_password",
		"slug", "language", "manager_email", "manager_name", "since", "until", "action", "actor"} {
		keys = append(keys, "field."+f)
	}
	for _, f := range policyFields {
		keys = append(keys, "field."+f)
	}
	for _, k := range keys {
		if !i18n.Has(k) {
			t.Errorf("text %q is used by the pages but not in the catalogue", k)
		}
	}
}

// TestStoreMessagesAreTranslated: the conflicts and refusals the store
// words itself have Dutch texts, so a Dutch page never shows English.
func TestStoreMessagesAreTranslated(t *testing.T) {
	msg := regexp.MustCompile(`kluis\.Errorf\(kluis\.E(?:Conflict|Invalid|TooManyRequests), "([^"%]+)"\)|Message: "([^"]+)"}`)
	files, _ := filepath.Glob("../sqlstore/*.go")
	files = append(files, "../../error.go", "ui.go", "ui_manage.go")
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msg.FindAllStringSubmatch(string(b), -1) {
			s := m[1] + m[2]
			if s == "not found" || s == "the credentials are not valid" || s == "you are not allowed to do this" {
				continue // shown by their code's page text, never as a message
			}
			n++
			if !i18n.Translated(s) {
				t.Errorf("%s: message %q has no Dutch text", f, s)
			}
		}
	}
	if n < 5 {
		t.Fatalf("found %d store messages; the pattern is broken", n)
	}
}

// FuzzLocalPath: the language switch returns only to a path of this site.
func FuzzLocalPath(f *testing.F) {
	for _, s := range []string{"/o/acme/account", "//evil", "/\\evil", "https://evil/", "/a?b=c", "/%2F%2Fevil", "\x00/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, back string) {
		got := localPath(back)
		if !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.ContainsAny(got, "\\\r\n\x00") {
			t.Fatalf("localPath(%q) = %q", back, got)
		}
	})
}
