package httpserver_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/kluis/kluis/internal/httpserver"
	"github.com/kluis/kluis/internal/kluistest"
)

// pagesForAnyone are the signed-in realms' pages that need no session: a
// session limited to enrolment is not asked to enrol there.
var pagesForAnyone = map[string]bool{
	"GET /o/{org}/{$}": true, "GET /o/{org}/login": true, "POST /o/{org}/login": true, "GET /o/{org}/login/mfa": true,
	"POST /o/{org}/login/mfa": true, "POST /o/{org}/login/mfa/sms": true, "GET /o/{org}/signed-out": true,
	"GET /o/{org}/forgot": true, "POST /o/{org}/forgot": true, "GET /o/{org}/reset": true, "POST /o/{org}/reset": true,
	"GET /o/{org}/unlock": true, "POST /o/{org}/unlock": true, "GET /o/{org}/invite": true, "POST /o/{org}/invite": true,
	"GET /o/{org}/confirm-email": true,
	"GET /operator/login":        true, "POST /operator/login": true, "GET /operator/login/mfa": true, "POST /operator/login/mfa": true,
}

// TestEnrolmentRoutesAreFlaggedInTheTable (R17): a session limited to
// enrolling a second factor — a person of an organisation that requires
// one, operator staff without one — reaches exactly the routes the route
// table flags (Route.Enrolment): walking every signed-in route of both
// realms, API and pages, a flagged route runs its handler and every other
// refuses (403 mfa_enrolment_required; a page sends the person to the
// set-up on their account page).
func TestEnrolmentRoutesAreFlaggedInTheTable(t *testing.T) {
	a := newTestAPI(t, kluistest.Engines[0])
	o := a.newOrg(t)
	addPasskey(t, a, o.Slug, o.Manager.Token, "Manager's key") // managers enrol before they require it
	mem := a.addUser(t, o, "member")
	setMFAPolicy(t, a, o, "required")
	memToken := decodeStrict[loginAnswer](t, a.call(t, "POST", orgPath(o.Slug, "/login"), "", map[string]string{"email": mem.Email, "password": mem.Password}))
	if !memToken.MFAEnrolmentRequired {
		t.Fatal("the member's sign-in is not limited to enrolment")
	}
	memPages := newBrowser(a)
	wantPage(t, "the member signs in", memPages.post(t, "/o/"+o.Slug+"/login", url.Values{"email": {mem.Email}, "password": {mem.Password}}), 303, "/o/"+o.Slug+"/account")

	staff := newOperator(t, a)
	staffToken := decodeStrict[loginAnswer](t, a.call(t, "POST", "/api/v1/operator/login", "", map[string]string{"email": staff.Email, "password": staff.Password}))
	if !staffToken.MFAEnrolmentRequired {
		t.Fatal("the operator's sign-in is not limited to enrolment")
	}
	staffPages := newBrowser(a)
	wantPage(t, "the operator signs in", staffPages.post(t, "/operator/login", url.Values{"email": {staff.Email}, "password": {staff.Password}}), 303, "/operator")

	path := func(rt httpserver.Route) string {
		return strings.NewReplacer("{org}", o.Slug, "{id}", mem.ID, "{$}", "").Replace(rt.Pattern)
	}
	var last []func()
	walked, flagged := 0, 0
	for _, rt := range httpserver.Routes() {
		key := rt.Method + " " + rt.Pattern
		var token string
		var pages *browser
		switch rt.Realm {
		case "org":
			token = memToken.Token
		case "operator":
			token = staffToken.Token
		case "page-org":
			pages = memPages
		case "page-operator":
			pages = staffPages
		default:
			if rt.Enrolment {
				t.Errorf("%s is flagged for enrolment but needs no session", key)
			}
			continue
		}
		if pages != nil && pagesForAnyone[key] {
			if rt.Enrolment {
				t.Errorf("%s is flagged for enrolment but needs no session", key)
			}
			continue
		}
		walked++
		if rt.Enrolment {
			flagged++
		}
		check := func() {
			if pages != nil {
				account := "/o/" + o.Slug + "/account#mfa-h"
				if rt.Realm == "page-operator" {
					account = "/operator/account#mfa-h"
				}
				var form url.Values
				if rt.Method == "POST" {
					form = url.Values{}
				}
				var p page
				if strings.HasSuffix(rt.Pattern, ".png") { // not a page: the browser's page checks do not apply
					var cookies []*http.Cookie
					for _, c := range pages.cookies {
						cookies = append(cookies, c)
					}
					r := a.do(t, request{method: rt.Method, path: path(rt), cookies: cookies, notAnError: true})
					p = page{status: r.status, header: r.header}
				} else {
					p = pages.send(t, rt.Method, path(rt), form, "")
				}
				refused := p.status == 303 && p.location() == account
				if refused == rt.Enrolment {
					t.Errorf("%s from a session limited to enrolment: got %d to %q; flagged for enrolment: %v", key, p.status, p.location(), rt.Enrolment)
				}
				return
			}
			rq := request{method: rt.Method, path: path(rt), bearer: token, notAnError: true}
			if rt.Method == "POST" || rt.Method == "PUT" || rt.Method == "PATCH" {
				rq.body = map[string]any{}
			}
			r := a.do(t, rq)
			refused := r.status == 403 && strings.Contains(string(r.body), `"mfa_enrolment_required"`)
			if refused == rt.Enrolment {
				t.Errorf("%s from a session limited to enrolment: got %v; flagged for enrolment: %v", key, r, rt.Enrolment)
			}
		}
		if strings.HasSuffix(rt.Pattern, "/logout") {
			last = append(last, check) // it ends the session
			continue
		}
		check()
	}
	for _, check := range last {
		check()
	}
	if walked < 60 || flagged < 20 {
		t.Fatalf("walked %d signed-in routes, %d of them flagged for enrolment; the walk is broken", walked, flagged)
	}
}
