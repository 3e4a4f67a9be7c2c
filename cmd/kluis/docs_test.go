package main

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kluis/kluis/internal/httpserver"
)

// docs/REFERENCE.md names everything a user or script can call: every
// command and its flags, every API route and every environment variable
// kluis reads. A command, flag, route or variable added without a word in
// the reference fails here.
func TestReferenceNamesTheWholeSurface(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "REFERENCE.md"))
	if err != nil {
		t.Fatal(err)
	}
	ref := string(b)
	ctx := context.Background()
	for _, d := range commands {
		if !strings.Contains(ref, "`kluis "+d.words) {
			t.Errorf("docs/REFERENCE.md does not name `kluis %s`", d.words)
		}
		if fs := commandFlags(ctx, d.words); fs != nil {
			fs.VisitAll(func(f *flag.Flag) {
				if !regexp.MustCompile(`--` + regexp.QuoteMeta(f.Name) + `\b`).MatchString(ref) {
					t.Errorf("docs/REFERENCE.md does not name --%s of kluis %s", f.Name, d.words)
				}
			})
		}
	}
	for _, r := range httpserver.Routes() {
		if strings.HasPrefix(r.Realm, "page") {
			continue // the pages are docs/UI.md's
		}
		if !regexp.MustCompile("`" + regexp.QuoteMeta(r.Method+" "+r.Pattern) + "[`?]").MatchString(ref) {
			t.Errorf("docs/REFERENCE.md does not name the route %s %s", r.Method, r.Pattern)
		}
	}
	var read []string
	newConfig(func(name string) string {
		if !slices.Contains(read, name) {
			read = append(read, name)
		}
		return ""
	})
	if len(read) < 10 {
		t.Fatalf("newConfig read only %v", read)
	}
	for _, name := range read {
		if !strings.Contains(ref, "`"+name+"`") {
			t.Errorf("docs/REFERENCE.md does not name the environment variable %s", name)
		}
	}
}
