package kluis_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The shape of the house (docs/ARCHITECTURE.md): the limits a room must
// keep so that no type or package turns into the whole house again, and the
// one direction the HTTP adapter may depend in. The test reads the source;
// it fails when a change breaks a limit, naming the offender.

const (
	module = "github.com/kluis/kluis"
	// maxExportedMethods is the most exported methods one type may have.
	maxExportedMethods = 40
	// maxPackageShare is the largest share of the non-test lines one
	// package may hold.
	maxPackageShare = 0.25
)

// pkgSource is one package's non-test Go files, parsed; generated files
// are left out.
type pkgSource struct {
	path  string // import path
	lines int
	files []*ast.File
}

func loadSources(t *testing.T) map[string]*pkgSource {
	t.Helper()
	fset := token.NewFileSet()
	pkgs := map[string]*pkgSource{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, path, src, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		// Generated files ("Code generated … DO NOT EDIT.", such as the
		// API client oapi-codegen makes from the OpenAPI description) are
		// not rooms anyone designs: their size and method count follow the
		// API's, one method per operation, so they are left out.
		if ast.IsGenerated(f) {
			return nil
		}
		if f, err = parser.ParseFile(fset, path, src, 0); err != nil {
			return err
		}
		dir := filepath.ToSlash(filepath.Dir(path))
		imp := module
		if dir != "." {
			imp += "/" + dir
		}
		p := pkgs[imp]
		if p == nil {
			p = &pkgSource{path: imp}
			pkgs[imp] = p
		}
		p.lines += strings.Count(string(src), "\n")
		p.files = append(p.files, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 10 {
		t.Fatalf("found %d packages; the test must run from the module root", len(pkgs))
	}
	return pkgs
}

// TestNoPackageHoldsTooMuchOfTheCode: no package holds more than a quarter
// of the non-test lines.
func TestNoPackageHoldsTooMuchOfTheCode(t *testing.T) {
	pkgs := loadSources(t)
	total := 0
	for _, p := range pkgs {
		total += p.lines
	}
	var order []*pkgSource
	for _, p := range pkgs {
		order = append(order, p)
	}
	sort.Slice(order, func(i, j int) bool { return order[i].lines > order[j].lines })
	var shares []string
	for _, p := range order {
		share := float64(p.lines) / float64(total)
		shares = append(shares, strconv.FormatFloat(share*100, 'f', 1, 64)+"% "+strings.TrimPrefix(p.path, module+"/"))
		if share > maxPackageShare {
			t.Errorf("%s holds %d of %d non-test lines (%.1f %%), more than %.0f %%: give its areas rooms of their own",
				p.path, p.lines, total, share*100, maxPackageShare*100)
		}
	}
	t.Logf("%d non-test lines; shares: %s", total, strings.Join(shares, ", "))
}

// TestNoTypeHasTooManyMethods: no type has more than maxExportedMethods
// exported methods.
func TestNoTypeHasTooManyMethods(t *testing.T) {
	for _, p := range loadSources(t) {
		count := map[string]int{}
		for _, f := range p.files {
			for _, d := range f.Decls {
				fn, ok := d.(*ast.FuncDecl)
				if !ok || fn.Recv == nil || len(fn.Recv.List) == 0 || !fn.Name.IsExported() {
					continue
				}
				typ := fn.Recv.List[0].Type
				if star, ok := typ.(*ast.StarExpr); ok {
					typ = star.X
				}
				if idx, ok := typ.(*ast.IndexExpr); ok {
					typ = idx.X
				}
				if id, ok := typ.(*ast.Ident); ok {
					count[id.Name]++
				}
			}
		}
		for typ, n := range count {
			if n > maxExportedMethods {
				t.Errorf("%s.%s has %d exported methods, more than %d", p.path, typ, n, maxExportedMethods)
			}
		}
	}
}

// TestHTTPDependsOnTheDomainOnly: whatever serves HTTP sees the domain
// interfaces, never the storage packages (its tests may use them to build
// a real store).
func TestHTTPDependsOnTheDomainOnly(t *testing.T) {
	found := false
	for path, p := range loadSources(t) {
		if !strings.HasPrefix(path, module+"/internal/httpserver") {
			continue
		}
		found = true
		bad := map[string]bool{}
		for _, f := range p.files {
			for _, imp := range f.Imports {
				dep, _ := strconv.Unquote(imp.Path.Value)
				if dep == module+"/internal/sqlstore" || strings.HasPrefix(dep, module+"/internal/sqlstore/") {
					bad[dep] = true
				}
			}
		}
		for dep := range bad {
			t.Errorf("%s imports %s: handlers take the domain's service interfaces", path, dep)
		}
	}
	if !found {
		t.Fatal("no internal/httpserver package found")
	}
}
