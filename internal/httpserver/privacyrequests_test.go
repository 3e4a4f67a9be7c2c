package httpserver_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/kluis/kluis/internal/kluistest"
)

type privacyRequestObject struct {
	ID          string  `json:"id"`
	Type        string  `json:"type"`
	Subject     string  `json:"subject"`
	SubjectName *string `json:"subject_name"`
	ReceivedAt  string  `json:"received_at"`
	DueAt       string  `json:"due_at"`
	Overdue     bool    `json:"overdue"`
	Status      string  `json:"status"`
	Handler     *string `json:"handler"`
	HandlerName *string `json:"handler_name"`
	Outcome     *string `json:"outcome"`
	UpdatedAt   string  `json:"updated_at"`

	ExtendedMonths int `json:"extended_months"`
}

type privacyRequestAnswer struct {
	Request privacyRequestObject `json:"request"`
}

type privacyRequestsAnswer struct {
	Requests []privacyRequestObject `json:"requests"`
}

// R34: the register's routes answer as the document says — a person files
// and follows their own request, a manager lists and handles it, and
// refusals and bad input come in the contract's error shape.
func TestPrivacyRequestRoutesMatchTheDocument(t *testing.T) {
	a := newTestAPI(t, kluistest.Engines[0])
	c := checkContract(t, a)
	o := a.newOrg(t)
	mgr := o.Manager
	ann := a.addUser(t, o, "member")
	reqs := orgPath(o.Slug, "/privacy-requests")

	r := c.valid(t, a, request{method: "POST", path: reqs, bearer: ann.Token, body: map[string]string{"type": "portability"}}, 201)
	filed := decodeStrict[privacyRequestAnswer](t, r).Request
	if filed.Subject != ann.ID || filed.Status != "open" || filed.Handler != nil || filed.Outcome != nil {
		t.Errorf("filed: %+v", filed)
	}
	e := c.refused(t, a, request{method: "POST", path: reqs, bearer: ann.Token, body: map[string]string{"type": "forget-me"}}, 400, "invalid_input")
	if e.Error.Fields["type"] == "" {
		t.Errorf("an unknown type: fields %v, want a problem for type", e.Error.Fields)
	}
	c.valid(t, a, request{method: "POST", path: reqs, bearer: ann.Token, body: map[string]string{"type": "access", "subject": mgr.ID}}, 403)

	r = c.valid(t, a, request{method: "GET", path: reqs, bearer: ann.Token}, 200)
	if got := decodeStrict[privacyRequestsAnswer](t, r).Requests; len(got) != 1 || got[0].ID != filed.ID {
		t.Errorf("the member's list: %+v", got)
	}
	r = c.valid(t, a, request{method: "GET", path: reqs, bearer: mgr.Token}, 200)
	if got := decodeStrict[privacyRequestsAnswer](t, r).Requests; len(got) != 1 || got[0].SubjectName == nil || *got[0].SubjectName != ann.Name {
		t.Errorf("the manager's register: %+v", got)
	}
	c.valid(t, a, request{method: "GET", path: reqs + "?mine=true", bearer: mgr.Token}, 200)

	one := reqs + "/" + filed.ID
	c.valid(t, a, request{method: "PATCH", path: one, bearer: ann.Token, body: map[string]string{"status": "done"}}, 403)
	c.refused(t, a, request{method: "PATCH", path: one, bearer: mgr.Token, body: map[string]string{"status": "finished"}}, 400, "invalid_input")
	c.valid(t, a, request{method: "PATCH", path: one, bearer: mgr.Token, body: map[string]string{"status": "refused"}}, 400)
	c.refused(t, a, request{method: "PATCH", path: one, bearer: mgr.Token, body: map[string]any{"extend_months": 3, "outcome": "x"}}, 400, "invalid_input")
	r = c.valid(t, a, request{method: "PATCH", path: one, bearer: mgr.Token, body: map[string]any{"extend_months": 1, "outcome": "Many requests at once; answered within two months."}}, 200)
	if got := decodeStrict[privacyRequestAnswer](t, r).Request; got.ExtendedMonths != 1 || got.DueAt == filed.DueAt {
		t.Errorf("extended: %+v", got)
	}
	r = c.valid(t, a, request{method: "PATCH", path: one, bearer: mgr.Token, body: map[string]string{"status": "done", "outcome": "Sent as JSON through My account."}}, 200)
	if got := decodeStrict[privacyRequestAnswer](t, r).Request; got.Status != "done" || got.Handler == nil || *got.Handler != mgr.ID || got.Outcome == nil {
		t.Errorf("handled: %+v", got)
	}
	c.valid(t, a, request{method: "PATCH", path: reqs + "/01a2f7be-b7e7-7463-99ff-2bd37b2f70e6", bearer: mgr.Token, body: map[string]string{"status": "done"}}, 404)

	settings := orgPath(o.Slug, "/privacy-settings")
	r = c.valid(t, a, request{method: "GET", path: settings, bearer: ann.Token}, 200)
	if !strings.Contains(string(r.body), "autoriteitpersoonsgegevens.nl") {
		t.Errorf("default settings: %s", r.body)
	}
	c.valid(t, a, request{method: "PUT", path: settings, bearer: ann.Token, body: map[string]string{"contact": "x", "authority_name": "AP", "authority_url": "https://autoriteitpersoonsgegevens.nl"}}, 403)
	c.valid(t, a, request{method: "PUT", path: settings, bearer: mgr.Token, body: map[string]string{"contact": "privacy@example.test", "authority_name": "AP", "authority_url": "http://insecure.example"}}, 400)
	c.valid(t, a, request{method: "PUT", path: settings, bearer: mgr.Token, body: map[string]string{"contact": "privacy@example.test", "authority_name": "Autoriteit Persoonsgegevens", "authority_url": "https://autoriteitpersoonsgegevens.nl"}}, 200)

	counts := countActions(a.auditLog(t, o.Slug, mgr.Token))
	for _, action := range []string{"dsr.create", "dsr.update", "dsr.list", "privacy.update"} {
		if counts[action+"/success"] == 0 {
			t.Errorf("no %s event in the organisation's chain: %v", action, counts)
		}
	}
	c.rest(t)
}

// R34, R2: over HTTP on both engines, another organisation's request is
// 404 and its register shows nothing of this one; a person sees only their
// own and cannot change them; a request body never leaks another tenant's.
func TestPrivacyRequestsAreIsolatedOverHTTP(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			other := a.newOrg(t)
			ann := a.addUser(t, o, "member")
			bob := a.addUser(t, o, "member")
			r := a.call(t, "POST", orgPath(o.Slug, "/privacy-requests"), ann.Token, map[string]string{"type": "erasure"})
			wantStatus(t, "file", r, 201)
			id := decodeStrict[privacyRequestAnswer](t, r).Request.ID

			wantError(t, "other org's manager, this org's route", a.call(t, "GET", orgPath(o.Slug, "/privacy-requests"), other.Manager.Token, nil), 404, "not_found")
			wantError(t, "other org's manager, own route, this request", a.call(t, "PATCH", orgPath(other.Slug, "/privacy-requests/"+id), other.Manager.Token, map[string]string{"status": "done"}), 404, "not_found")
			wantError(t, "other org's manager, empty body", a.call(t, "PATCH", orgPath(other.Slug, "/privacy-requests/"+id), other.Manager.Token, map[string]string{}), 404, "not_found")
			r = a.call(t, "GET", orgPath(other.Slug, "/privacy-requests"), other.Manager.Token, nil)
			wantStatus(t, "other org's register", r, 200)
			mustNotContain(t, "other org's register", string(r.body), id, ann.Name, ann.ID)

			r = a.call(t, "GET", orgPath(o.Slug, "/privacy-requests"), bob.Token, nil)
			wantStatus(t, "bob's list", r, 200)
			mustNotContain(t, "bob's list", string(r.body), id, ann.Name)
			wantError(t, "bob changes ann's", a.call(t, "PATCH", orgPath(o.Slug, "/privacy-requests/"+id), bob.Token, map[string]string{"status": "done"}), 404, "not_found")
			wantError(t, "ann changes her own", a.call(t, "PATCH", orgPath(o.Slug, "/privacy-requests/"+id), ann.Token, map[string]string{"status": "done"}), 403, "forbidden")
		})
	}
}

// R34: the pages file and handle requests with the same rules as the API:
// a member files their own and reads the outcome, cannot open or post to
// the register; a refusal without reasons is shown and changes nothing.
func TestPrivacyPagesFileAndHandleRequests(t *testing.T) {
	a := newTestAPI(t, kluistest.Engines[0])
	o := a.newOrg(t)
	mem := a.addUser(t, o, "member")
	member := signInPage(t, a, o.Slug, mem)
	mgr := signInPage(t, a, o.Slug, o.Manager)
	base := "/o/" + o.Slug + "/privacy"

	wantPage(t, "bad type", member.post(t, base+"/requests", url.Values{"type": {"everything"}}), 400, "")
	wantPage(t, "file", member.post(t, base+"/requests", url.Values{"type": {"objection"}}), 303, base+"/requests")
	list := decodeStrict[privacyRequestsAnswer](t, a.call(t, "GET", orgPath(o.Slug, "/privacy-requests"), mem.Token, nil)).Requests
	if len(list) != 1 || list[0].Type != "objection" {
		t.Fatalf("after filing on the page: %+v", list)
	}
	id := list[0].ID

	wantPage(t, "member opens the register", member.get(t, base+"/register"), 403, "")
	wantPage(t, "member handles", member.post(t, base+"/register/"+id, url.Values{"status": {"done"}, "outcome": {"x"}}), 403, "")
	p := mgr.get(t, base+"/register")
	wantPage(t, "register", p, 200, "")
	if !strings.Contains(p.body, `data-id="`+id+`"`) || !strings.Contains(p.body, htmlEscape(mem.Name)) {
		t.Errorf("the register does not show the request and its person")
	}
	p = mgr.post(t, base+"/register/"+id, url.Values{"status": {"refused"}, "outcome": {""}})
	wantPage(t, "refuse without reasons", p, 400, "")
	if !strings.Contains(p.body, "give the reasons for refusing") {
		t.Errorf("the refusal's problem is not shown:\n%s", excerpt(p.body))
	}
	wantPage(t, "extend without reasons", mgr.post(t, base+"/register/"+id, url.Values{"status": {"in_progress"}, "outcome": {""}, "extend_months": {"2"}}), 400, "")
	wantPage(t, "extend", mgr.post(t, base+"/register/"+id, url.Values{"status": {"in_progress"}, "outcome": {"Searching the archive."}, "extend_months": {"2"}}), 303, base+"/register")
	if p := member.get(t, base+"/requests"); !strings.Contains(p.body, "extended by 2 month(s)") {
		t.Errorf("the member does not see the extension:\n%s", excerpt(p.body))
	}
	wantPage(t, "refuse", mgr.post(t, base+"/register/"+id, url.Values{"status": {"refused"}, "outcome": {"We need the mail for the contract."}, "show": {"all"}}), 303, base+"/register?show=all")
	p = member.get(t, base+"/requests")
	if !strings.Contains(p.body, "We need the mail for the contract.") || !strings.Contains(p.body, `data-status="refused"`) {
		t.Errorf("the member does not see the outcome:\n%s", excerpt(p.body))
	}
	p = member.get(t, base)
	wantPage(t, "privacy page", p, 200, "")
	mustNotContain(t, "member's privacy page", p.body, `id="privacy-settings"`, `id="go-register"`)
	if !strings.Contains(p.body, "https://autoriteitpersoonsgegevens.nl") {
		t.Errorf("the privacy page does not link the authority")
	}
	wantPage(t, "member sets", member.post(t, base+"/settings", url.Values{"contact": {"x"}, "authority_name": {"x"}, "authority_url": {"https://x.example"}}), 403, "")
	wantPage(t, "manager sets badly", mgr.post(t, base+"/settings", url.Values{"contact": {"x"}, "authority_name": {"AP"}, "authority_url": {"ftp://x.example"}}), 400, "")
	wantPage(t, "manager sets", mgr.post(t, base+"/settings", url.Values{"contact": {"dpo@example.test"}, "authority_name": {"AP"}, "authority_url": {"https://autoriteitpersoonsgegevens.nl"}}), 303, base)
	if p := member.get(t, base); !strings.Contains(p.body, "dpo@example.test") {
		t.Errorf("the contact is not on the privacy page")
	}
}
