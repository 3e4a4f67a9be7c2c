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

// docs/MEASURES.md proves each measure by naming the tests that show it; a
// test renamed or moved to another package without the table following
// would leave a claim without its proof. Every cited test exists, in the
// package the table names.
func TestMeasuresCiteTestsThatExist(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "docs", "MEASURES.md"))
	if err != nil {
		t.Fatal(err)
	}
	// Where each test function is declared: package directory name → names.
	declared := map[string]map[string]bool{}
	anywhere := map[string]bool{}
	decl := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz|Benchmark)\w+)\(`)
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		pkg := filepath.Base(filepath.Dir(path))
		if filepath.Dir(path) == root {
			pkg = "kluis"
		}
		for _, m := range decl.FindAllStringSubmatch(string(src), -1) {
			if declared[pkg] == nil {
				declared[pkg] = map[string]bool{}
			}
			declared[pkg][m[1]], anywhere[m[1]] = true, true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cited := regexp.MustCompile("`(?:(\\w+)\\.)?((?:Test|Fuzz|Benchmark)\\w+)")
	for _, m := range cited.FindAllStringSubmatch(string(b), -1) {
		pkg, name := m[1], m[2]
		switch {
		case pkg == "" && !anywhere[name]:
			t.Errorf("docs/MEASURES.md cites %s, which no test file declares", name)
		case pkg != "" && !declared[pkg][name]:
			t.Errorf("docs/MEASURES.md cites %s.%s, which package %s does not declare", pkg, name, pkg)
		}
	}
}
