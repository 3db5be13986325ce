package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

const apiPrefix = "/api/admin/v1"

// routerOperations are the API routes the admin service registers on echo, as
// "method path" in OpenAPI's spelling (lower-case method, {param}). The
// OpenAPI document itself and echo's catch-all routes for group middleware
// are left out: they are not operations of the API.
func routerOperations(t *testing.T) []string {
	t.Helper()
	e := echo.New()
	(&Service{}).Routes(e) // registering routes touches none of the service's fields
	colon := regexp.MustCompile(`:([A-Za-z_][A-Za-z0-9_]*)`)
	var out []string
	for _, r := range e.Routes() {
		if !strings.HasPrefix(r.Path, apiPrefix+"/") || r.Path == apiPrefix+"/openapi.json" {
			continue
		}
		if r.Method == echo.RouteNotFound || strings.HasSuffix(r.Path, "/*") {
			continue // the catch-all that makes a group's middleware run for unknown paths
		}
		path := colon.ReplaceAllString(strings.TrimPrefix(r.Path, apiPrefix), "{$1}")
		out = append(out, strings.ToLower(r.Method)+" "+path)
	}
	slices.Sort(out)
	return out
}

// documentedOperations are apiOperations as "method path".
func documentedOperations(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, op := range apiOperations {
		out = append(out, op.method+" "+op.path)
	}
	slices.Sort(out)
	return out
}

// TestAPIOperationsMatchRouter: every route of /api/admin/v1 is in apiOperations
// (same method, same path) and every entry of apiOperations is a route, so the
// OpenAPI document cannot drift from the router.
func TestAPIOperationsMatchRouter(t *testing.T) {
	routes, docs := routerOperations(t), documentedOperations(t)
	if len(routes) == 0 {
		t.Fatal("no routes under " + apiPrefix + " were registered")
	}
	t.Logf("%d API routes: %v", len(routes), routes)
	for _, r := range routes {
		if !slices.Contains(docs, r) {
			t.Errorf("route %s is registered but not in apiOperations", r)
		}
	}
	for _, d := range docs {
		if !slices.Contains(routes, d) {
			t.Errorf("apiOperations has %s, but no such route is registered", d)
		}
	}
	if dup := slices.Compact(slices.Clone(docs)); len(dup) != len(docs) {
		t.Errorf("apiOperations lists an operation twice: %v", docs)
	}
}

// TestAPIOperationsAreWellFormed: methods are lower-case HTTP methods, paths
// start with "/", and every path parameter is one the document declares.
func TestAPIOperationsAreWellFormed(t *testing.T) {
	param := regexp.MustCompile(`\{([^}]*)\}`)
	for _, op := range apiOperations {
		switch op.method {
		case "get", "post", "put", "patch", "delete":
		default:
			t.Errorf("%s %s: method is not a lower-case HTTP method", op.method, op.path)
		}
		if !strings.HasPrefix(op.path, "/") || strings.Contains(op.path, ":") {
			t.Errorf("%s %s: path must start with / and use {param}, not :param", op.method, op.path)
		}
		for _, m := range param.FindAllStringSubmatch(op.path, -1) {
			if !slices.Contains(pathParams, m[1]) { // openAPI declares only these path parameters
				t.Errorf("%s %s: path parameter {%s} is not declared by the document", op.method, op.path, m[1])
			}
		}
		if op.summary == "" {
			t.Errorf("%s %s: no summary", op.method, op.path)
		}
		if op.body != nil && op.method == "get" {
			t.Errorf("%s %s: a GET with a request body", op.method, op.path)
		}
	}
}

// TestOpenAPIDocumentMatchesRouter: the document the API serves lists exactly
// the router's operations, each with its path parameters declared.
func TestOpenAPIDocumentMatchesRouter(t *testing.T) {
	e := echo.New()
	(&Service{issuerID: "https://id.example.com"}).Routes(e)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, apiPrefix+"/openapi.json", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("openapi.json answered %d: %s", rec.Code, rec.Body)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
		Servers []struct {
			URL string `json:"url"`
		} `json:"servers"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v\n%s", err, rec.Body)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	if len(doc.Servers) != 1 || doc.Servers[0].URL != "https://id.example.com"+apiPrefix {
		t.Errorf("servers = %+v", doc.Servers)
	}
	var served []string
	param := regexp.MustCompile(`\{([^}]*)\}`)
	for path, methods := range doc.Paths {
		for method, raw := range methods {
			served = append(served, method+" "+path)
			var op struct {
				Parameters []struct{ Name, In string } `json:"parameters"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			for _, m := range param.FindAllStringSubmatch(path, -1) {
				if !slices.ContainsFunc(op.Parameters, func(p struct{ Name, In string }) bool { return p.Name == m[1] && p.In == "path" }) {
					t.Errorf("%s %s: path parameter %s is not declared", method, path, m[1])
				}
			}
		}
	}
	slices.Sort(served)
	if routes := routerOperations(t); !slices.Equal(served, routes) {
		t.Errorf("the served document has\n  %v\nthe router has\n  %v", served, routes)
	}
}

// TestPageRoutesMatchRouter: PageRoutes, which the end-to-end test walks as a
// non-admin, is every admin page the router serves besides the sign-in itself.
func TestPageRoutesMatchRouter(t *testing.T) {
	e := echo.New()
	(&Service{}).Routes(e)
	var served []string
	for _, r := range e.Routes() {
		if !strings.HasPrefix(r.Path, "/admin") || r.Path == "/admin/login" || r.Path == "/admin/callback" ||
			r.Method == echo.RouteNotFound || strings.HasSuffix(r.Path, "/*") {
			continue
		}
		served = append(served, r.Method+" "+r.Path)
	}
	var listed []string
	for _, r := range PageRoutes() {
		listed = append(listed, r[0]+" "+r[1])
	}
	slices.Sort(served)
	slices.Sort(listed)
	if !slices.Equal(served, listed) {
		t.Fatalf("the router serves\n%v\nbut PageRoutes lists\n%v", served, listed)
	}
}
