package httpserver_test

import (
	"go/build"
	"path/filepath"
	"strings"
	"testing"
)

// TestHTTPDependsOnTheDomainOnly (STYLE "the shape we want", issue 11): the
// HTTP adapter sees the domain's service interfaces, never the storage
// behind them. No non-test file of this package imports internal/sqlstore,
// directly or through another package of this module, so no handler can
// reach around the services. (The tests may: kluistest wires the server
// to a real database.)
func TestHTTPDependsOnTheDomainOnly(t *testing.T) {
	const module = "github.com/kluis/kluis"
	forbidden := []string{module + "/internal/sqlstore", module + "/internal/kluistest"}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var walk func(path, dir string, via []string)
	walk = func(path, dir string, via []string) {
		if seen[path] {
			return
		}
		seen[path] = true
		pkg, err := build.ImportDir(dir, 0) // non-test files only
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		for _, imp := range pkg.Imports {
			chain := append(via[:len(via):len(via)], imp)
			for _, f := range forbidden {
				if imp == f || strings.HasPrefix(imp, f+"/") {
					t.Errorf("internal/httpserver depends on %s: %s", f, strings.Join(chain, " → "))
				}
			}
			if rest, ok := strings.CutPrefix(imp, module+"/"); ok {
				walk(imp, filepath.Join(root, filepath.FromSlash(rest)), chain)
			} else if imp == module {
				walk(imp, root, chain)
			}
		}
	}
	walk(module+"/internal/httpserver", ".", []string{module + "/internal/httpserver"})
	if !seen[module] {
		t.Fatalf("the walk never reached the domain package %s; it is broken (saw %d packages)", module, len(seen))
	}
}
