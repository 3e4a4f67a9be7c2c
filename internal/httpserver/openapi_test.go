package httpserver_test

import (
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/kluis/kluis/internal/httpserver"
	"github.com/kluis/kluis/internal/openapi"
)

// The OpenAPI description (internal/openapi/openapi.json) is a hand-written
// contract. These tests keep it honest: kin-openapi loads and validates it
// as OpenAPI 3.1 (JSON Schema 2020-12), every API route of the route table
// is in it with the same method and the reverse, and (openapi_answers_test.go)
// the real answers of the handlers match its schemas.

// loadOpenAPI loads the embedded document and validates it. kin-openapi
// (v0.153.0) reads the "openapi" field and validates a 3.1 document by the
// 3.1 rules: type arrays such as ["string","null"], numeric exclusive
// bounds, JSON Schema 2020-12 keywords.
func loadOpenAPI(tb testing.TB) *openapi3.T {
	tb.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapi.JSON())
	if err != nil {
		tb.Fatalf("load internal/openapi/openapi.json: %v", err)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableExamplesValidation(), openapi3.EnableSchemaDefaultsValidation()); err != nil {
		tb.Fatalf("internal/openapi/openapi.json is not a valid OpenAPI document: %v", err)
	}
	return doc
}

// notYetMerged lists the operations of shared/CONTRACT.md's "Added with
// projects" that the document describes while their handlers are still
// being written on another branch. The engineer who merges those routes
// into routes.go empties this list; an entry whose route is in the table
// fails the test, so the list cannot go stale.
var notYetMerged = []string{}

// notYetMergedCodes are the error codes the document names for those
// routes that the contract's error table in the tests (statusOfCode) does
// not have yet; emptied with notYetMerged.
var notYetMergedCodes = []string{}

// muxWildcard is one wildcard of a Go 1.22 ServeMux pattern: {name},
// {name...} (the rest of the path) or {$} (the end of the path).
var muxWildcard = regexp.MustCompile(`\{([^{}]*)\}`)

// openAPIPath turns a ServeMux pattern into an OpenAPI path template:
// {name} stays {name}, and {name...}, which matches the rest of the path
// slashes included, becomes {name} (OpenAPI has no multi-segment
// template; the document says so on each such parameter). A pattern with
// {$}, a host or no leading slash has no OpenAPI form; the API has none.
func openAPIPath(pattern string) (string, bool) {
	if !strings.HasPrefix(pattern, "/") {
		return "", false
	}
	ok := true
	path := muxWildcard.ReplaceAllStringFunc(pattern, func(w string) string {
		name := strings.TrimSuffix(w[1:len(w)-1], "...")
		if name == "$" || name == "" {
			ok = false
		}
		return "{" + name + "}"
	})
	return path, ok
}

func TestOpenAPIPathMapping(t *testing.T) {
	for pattern, want := range map[string]string{
		"/healthz":                      "/healthz",
		"/api/v1/orgs/{org}/users/{id}": "/api/v1/orgs/{org}/users/{id}",
		"/api/v1/orgs/{org}/projects/{id}/files/{path...}": "/api/v1/orgs/{org}/projects/{id}/files/{path}",
		"/o/{org}/{$}":    "",
		"example.com/api": "",
	} {
		got, ok := openAPIPath(pattern)
		if (want == "") == ok || (ok && got != want) {
			t.Errorf("openAPIPath(%q) = %q, %v; want %q", pattern, got, ok, want)
		}
	}
}

// apiRoute tells the API routes, which the document describes, from the
// pages (realms "page…"), which answer HTML.
func apiRoute(rt httpserver.Route) bool { return !strings.HasPrefix(rt.Realm, "page") }

// TestOpenAPIDescribesEveryRoute: every API route of the route table is an
// operation of the document, with its method, and every operation of the
// document is a route of the table, but for the listed projects routes not
// merged yet. A GET route also serves HEAD (net/http's ServeMux), so a HEAD
// operation may stand for it. Each operation's security matches its
// route's realm.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	ops := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops[method+" "+path] = op
		}
	}
	routes := map[string]httpserver.Route{}
	apiRoutes := 0
	for _, rt := range httpserver.Routes() {
		if !apiRoute(rt) {
			continue
		}
		apiRoutes++
		path, ok := openAPIPath(rt.Pattern)
		if !ok {
			t.Errorf("%s %s has no OpenAPI path form", rt.Method, rt.Pattern)
			continue
		}
		key := rt.Method + " " + path
		routes[key] = rt
		op := ops[key]
		if op == nil {
			var other []string
			if item := doc.Paths.Value(path); item != nil {
				for m := range item.Operations() {
					other = append(other, m)
				}
			}
			if len(other) > 0 {
				sort.Strings(other)
				t.Errorf("route %s %s: the document has %s for %s, not %s", rt.Method, rt.Pattern, strings.Join(other, ", "), path, rt.Method)
			} else {
				t.Errorf("route %s %s is missing from the document (as %s)", rt.Method, rt.Pattern, key)
			}
			continue
		}
		checkSecurity(t, key, rt.Realm, op)
	}
	if apiRoutes < 70 {
		t.Fatalf("the route table has %d API routes; the walk is broken", apiRoutes)
	}
	for key := range ops {
		_, inTable := routes[key]
		if m, path, _ := strings.Cut(key, " "); m == "HEAD" && !inTable {
			_, inTable = routes["GET "+path]
		}
		pending := slices.Contains(notYetMerged, key)
		switch {
		case inTable && pending:
			t.Errorf("%s is in the route table now: take it off notYetMerged", key)
		case !inTable && !pending:
			t.Errorf("the document has %s, which the route table lacks", key)
		}
	}
	for _, key := range notYetMerged {
		if ops[key] == nil {
			t.Errorf("notYetMerged lists %s, which the document does not have", key)
		}
	}
}

// checkSecurity checks an operation's security requirements against its
// route's realm: none for anyone's routes; an organisation's session (by
// token or cookie) for its signed-in routes, where a personal API token
// may stand in; an operator's session for the operator's.
func checkSecurity(t *testing.T, key, realm string, op *openapi3.Operation) {
	t.Helper()
	if op.Security == nil {
		t.Errorf("%s: the operation names no security (an empty list means anyone)", key)
		return
	}
	var schemes []string
	for _, req := range *op.Security {
		for name := range req {
			schemes = append(schemes, name)
		}
	}
	sort.Strings(schemes)
	var want [][]string
	switch realm {
	case "public", "org-public":
		want = [][]string{nil}
	case "org":
		want = [][]string{{"apiToken", "sessionCookie", "sessionToken"}, {"sessionCookie", "sessionToken"}}
	case "operator":
		want = [][]string{{"operatorCookie", "sessionToken"}}
	default:
		t.Errorf("%s: unknown realm %q", key, realm)
		return
	}
	for _, w := range want {
		if slices.Equal(schemes, w) {
			return
		}
	}
	t.Errorf("%s (realm %s): security schemes %v, want one of %v", key, realm, schemes, want)
}

// TestOpenAPIDocumentIsComplete: every operation has an id, a summary,
// known tags and a default (error) answer; the error codes are exactly the
// contract's, each with its status in the description.
func TestOpenAPIDocumentIsComplete(t *testing.T) {
	doc := loadOpenAPI(t)
	if !doc.IsOpenAPI31OrLater() || doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	tags := map[string]bool{}
	for _, tag := range doc.Tags {
		tags[tag.Name] = true
	}
	ids := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			key := method + " " + path
			if op.OperationID == "" || op.Summary == "" {
				t.Errorf("%s: want an operationId and a summary", key)
			}
			if prev, dup := ids[op.OperationID]; dup {
				t.Errorf("%s and %s share the operationId %s", key, prev, op.OperationID)
			}
			ids[op.OperationID] = key
			if len(op.Tags) != 1 || !tags[op.Tags[0]] {
				t.Errorf("%s: tags %v, want one of the document's tags", key, op.Tags)
			}
			if op.Responses.Default() == nil {
				t.Errorf("%s: no default (error) answer", key)
			}
		}
	}
	codes := doc.Components.Schemas["ErrorCode"].Value
	var enum []string
	for _, c := range codes.Enum {
		enum = append(enum, c.(string))
	}
	want := slices.Clone(notYetMergedCodes)
	for _, code := range notYetMergedCodes {
		if _, ok := statusOfCode[code]; ok {
			t.Errorf("%s is in the error table now: take it off notYetMergedCodes", code)
		}
	}
	for code, status := range statusOfCode {
		want = append(want, code)
		if !strings.Contains(codes.Description, code+" "+strconv.Itoa(status)) {
			t.Errorf("ErrorCode's description does not pair %s with %d", code, status)
		}
	}
	sort.Strings(enum)
	sort.Strings(want)
	if !slices.Equal(enum, want) {
		t.Errorf("ErrorCode enum %v, want the contract's codes %v", enum, want)
	}
}
