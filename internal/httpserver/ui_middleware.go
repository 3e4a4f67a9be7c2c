package httpserver

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/i18n"
)

// pageFunc is a page handler: it renders or redirects, or returns an error
// that the page wrapper shows as a page.
type pageFunc func(w http.ResponseWriter, r *http.Request, p *pageData) error

// access says whether a page needs a signed-in person.
type access int

const (
	anyone access = iota
	// signedIn: a signed-in person of the realm. A support session is
	// refused: these are people's own pages.
	signedIn
	// working: a signed-in person, or a support session (R22) — the
	// pages of what managers read and change, and projects; the
	// services' rules decide what the grant allows.
	working
)

func setPageHeaders(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	for k, v := range pageHeaders {
		h.Set(k, v)
	}
	if state(r).secure {
		h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
	}
}

// isPageRequest tells a browser's request for a page from an API call, for
// the answers the middleware gives before any route runs (an unknown path, a
// cross-origin post): a page when the browser asks for HTML outside the
// API, the contract's JSON error otherwise.
func isPageRequest(r *http.Request) bool {
	p := r.URL.Path
	if strings.HasPrefix(p, "/api/") || p == "/healthz" || p == "/readyz" || p == "/metrics" {
		return false
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html") || r.Header.Get("Content-Type") == "application/x-www-form-urlencoded"
}

// newPage starts the page data of a request: language (the switch's cookie,
// else Accept-Language), time zone (the script's cookie, else UTC) and a
// notice left by the previous answer.
func (s *server) newPage(w http.ResponseWriter, r *http.Request) *pageData {
	lang := i18n.Negotiate(r.Header.Get("Accept-Language"))
	if c, err := r.Cookie(langCookie); err == nil {
		if l, ok := i18n.Parse(c.Value); ok {
			lang = l
		}
	}
	loc := i18n.UTC
	if c, err := r.Cookie(tzCookie); err == nil {
		name, _ := url.PathUnescape(c.Value) // an encoded name is read too; "+" stays "+"
		if l, ok := i18n.Location(name); ok {
			loc = l
		}
	}
	p := &pageData{L: local{Lang: lang, loc: loc}, Home: "/", Form: map[string][]string{}, srv: s}
	p.Back = backFor(r)
	for _, l := range i18n.Langs {
		p.Langs = append(p.Langs, langChoice{Code: string(l), Label: l.T("lang.name"), Current: l == lang})
	}
	if c, err := r.Cookie(noticeCookie); err == nil {
		if key := "notice." + c.Value; i18n.Has(key) {
			p.Notice = lang.T(key)
		}
		http.SetCookie(w, &http.Cookie{Name: noticeCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: state(r).secure, SameSite: http.SameSiteLaxMode})
	}
	return p
}

// backFor is where the language switch returns to: the page itself, or
// for a form re-shown after a post, the page that holds the form.
func backFor(r *http.Request) string {
	if r.Method == http.MethodGet {
		return localPath(r.URL.RequestURI())
	}
	p := r.URL.Path
	if strings.HasSuffix(p, "/login/mfa") || strings.HasSuffix(p, "/account/reauth") {
		return localPath(p)
	}
	if i := strings.Index(p, "/account/"); i >= 0 {
		p = p[:i+len("/account")]
	}
	for _, suffix := range []string{"/invitation/resend", "/invitation/revoke"} {
		p = strings.TrimSuffix(p, suffix)
	}
	if p == "/operator/orgs" || p == "/operator/logins" {
		p = "/operator"
	}
	return localPath(p)
}

// sessionToken is the session cookie of a page request. A request another
// site or origin started (a link in a webmail) does not use it, as in the
// API: it could otherwise record reads in the person's name or keep an idle
// session alive.
func sessionToken(r *http.Request, name string) string {
	if !sameOrigin(r) {
		return ""
	}
	if c, err := r.Cookie(name); err == nil {
		return c.Value
	}
	return ""
}

// page serves a page outside any realm.
func (s *server) page(fn pageFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setPageHeaders(w, r)
		p := s.newPage(w, r)
		if err := fn(w, r, p); err != nil {
			s.pageError(w, r, p, err)
		}
	})
}

// orgPage resolves the organisation of the URL and the person's session,
// as the API's org wrapper does, and puts the organisation's realm in the
// request's state. A session that no longer opens (idle, past its
// lifetime, ended elsewhere) clears its cookie; a page that needs a
// signed-in person then says "you were signed out" (R21), and without any
// session it asks to sign in. A session of another organisation counts as
// none here: the browser holds one session cookie for the whole site.
func (s *server) orgPage(need access, fn pageFunc) http.Handler {
	fn = s.readOnlyPage(fn)
	return s.page(func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		slug := r.PathValue("org")
		ended := false
		if token := sessionToken(r, supportCookie); token != "" {
			id, err := s.authenticate(r, kluis.RealmOrg, token)
			switch {
			case err == nil && id.Org.Slug == slug:
				st.signIn(id)
				return s.supportPage(w, r, p, need, fn)
			case err == nil:
			case kluis.ErrorCode(err) == kluis.EUnauthenticated:
				// The grant was revoked or ended: back to the operator.
				http.SetCookie(w, clearCookie(supportCookie))
				return redirect(w, r, "/operator", "support_ended")
			default:
				return err
			}
		}
		if token := sessionToken(r, sessionCookie); token != "" {
			id, err := s.authenticate(r, kluis.RealmOrg, token)
			switch {
			case err == nil && id.Org.Slug == slug:
				st.signIn(id)
			case err == nil:
			case kluis.ErrorCode(err) == kluis.EUnauthenticated:
				ended = true
				http.SetCookie(w, clearCookie(sessionCookie))
			default:
				return err
			}
		}
		if st.org.ID == "" {
			org, err := s.orgs.FindOrgBySlug(r.Context(), slug)
			if err != nil {
				return err
			}
			st.org = org
		}
		st.realm = orgRealm(st.org)
		p.Org, p.InOrg, p.Realm = st.org, true, st.realm
		p.Home = st.realm.Base + "/"
		if st.actor.IsOrgUser(st.org.ID) {
			policy, err := s.policies.FindPolicy(r.Context(), st.org.ID, st.actor)
			if err != nil {
				return err
			}
			p.policy = policy
			p.IdleSeconds = int(policy.IdleTimeout().Seconds())
			if st.actor.IsManager(st.org.ID) {
				// Support working in the organisation right now shows on
				// every page of its managers (R22).
				if p.SupportIn, err = s.support.SupportIn(r.Context(), st.org.ID, st.actor); err != nil {
					return err
				}
			}
		} else if need != anyone && ended {
			return redirect(w, r, st.realm.Base+"/signed-out", "")
		}
		return s.pageSession(w, r, p, need, fn)
	})
}

// supportPage serves an organisation's page to a support session (R22):
// every page carries the banner (who, until when, which grant); a person's
// own page is refused; every request is recorded as a use of the grant
// before it runs, and a view grant posts nothing.
func (s *server) supportPage(w http.ResponseWriter, r *http.Request, p *pageData, need access, fn pageFunc) error {
	st := state(r)
	st.realm = orgRealm(st.org)
	p.Org, p.InOrg, p.Realm = st.org, true, st.realm
	p.Home = st.realm.Base + "/projects"
	p.SignedIn, p.Actor, p.Support = true, st.actor, st.actor.Support
	p.LogoutAction = st.realm.Base + "/support/end"
	p.navigate(r, false)
	use := kluis.SupportUse{Method: r.Method, Route: st.route, Object: supportObject(r, st.org.ID)}
	if err := s.support.RecordSupportUse(r.Context(), st.actor, use); err != nil {
		return err
	}
	switch {
	case need == signedIn:
		return errNotForSupport
	case r.Method == http.MethodPost && st.actor.Support.Right != kluis.SupportEdit && !strings.HasSuffix(r.URL.Path, "/support/end"):
		return kluis.ErrForbidden
	}
	return fn(w, r, p)
}

// operatorPage resolves an operator's session for the operator pages and
// puts the operator's realm in the request's state.
func (s *server) operatorPage(need access, fn pageFunc) http.Handler {
	return s.page(func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		st.realm = operatorRealm
		p.Operator, p.Home, p.Realm = true, "/operator", st.realm
		if token := sessionToken(r, operatorCookie); token != "" {
			id, err := s.authenticate(r, kluis.RealmOperator, token)
			switch {
			case err == nil:
				st.signIn(id)
			case kluis.ErrorCode(err) == kluis.EUnauthenticated:
				http.SetCookie(w, clearCookie(operatorCookie))
			default:
				return err
			}
		}
		return s.pageSession(w, r, p, need, fn)
	})
}

// pageSession finishes a realm's page wrapper: a signed-in person gets the
// realm's navigation, and a session limited to enrolment (R17) is sent to
// the set-up on their account page from every page not of enrolment's;
// without a session, a page that needs one asks to sign in.
func (s *server) pageSession(w http.ResponseWriter, r *http.Request, p *pageData, need access, fn pageFunc) error {
	st := state(r)
	if st.realm.Scope.Signed(st.actor) {
		p.SignedIn, p.Actor, p.Manager = true, st.actor, st.actor.IsManager(st.org.ID)
		p.LogoutAction = st.realm.Base + "/logout"
		if !p.Operator && !st.actor.MFAEnrolmentOnly && st.actor.IsOrgUser(st.org.ID) {
			n, err := s.inbox.CountUnread(r.Context(), st.org.ID, st.actor)
			if err != nil {
				return err
			}
			p.unread = n
		}
		p.navigate(r, st.actor.MFAEnrolmentOnly)
		if need != anyone && checkEnrolment(st) != nil {
			return redirect(w, r, st.realm.Account+"#mfa-h", st.realm.enrolNotice)
		}
	} else if need != anyone {
		return redirect(w, r, st.realm.Base+"/login", "")
	}
	return fn(w, r, p)
}

// navigate sets the navigation of a signed-in person's pages: their
// projects, their account, and what their role reaches — only the account
// while enrolment is due.
func (p *pageData) navigate(r *http.Request, enrolling bool) {
	p.Enrolling = enrolling
	var items [][2]string
	if p.Operator {
		items = [][2]string{{"/operator", "nav.orgs"}}
		if p.Actor.HasOperatorRole(kluis.OperatorAdmin) {
			items = append(items, [2]string{"/operator/operators", "nav.operators"}, [2]string{"/operator/announcements", "nav.announcements"},
				[2]string{"/operator/statistics", "nav.statistics"}, [2]string{"/operator/crash-reports", "nav.crashes"})
		}
		items = append(items, [2]string{"/operator/backups", "nav.backups"}, [2]string{"/operator/account", "nav.account"})
		if enrolling {
			items = items[len(items)-1:]
		}
	} else if p.Support != nil {
		base := p.Realm.Base
		items = [][2]string{{base + "/projects", "nav.projects"}}
		if p.Support.Scope.Org() {
			items = append(items, [2]string{base + "/users", "nav.users"}, [2]string{base + "/groups", "nav.groups"}, [2]string{base + "/audit", "nav.audit"})
		}
	} else {
		base := p.Realm.Base
		items = [][2]string{{base + "/account", "nav.account"}}
		if !enrolling {
			items = append([][2]string{{base + "/projects", "nav.projects"}}, items...)
		}
		if p.Manager && !enrolling {
			items = append(items, [2]string{base + "/users", "nav.users"}, [2]string{base + "/groups", "nav.groups"}, [2]string{base + "/policy", "nav.policy"}, [2]string{base + "/audit", "nav.audit"},
				[2]string{base + "/licence", "nav.licence"}, [2]string{base + "/support", "nav.support"})
		}
	}
	if !p.Operator && p.Support == nil && !enrolling {
		items = append(items, [2]string{p.Realm.Base + "/backups", "nav.backups"}, [2]string{p.Realm.Base + "/inbox", "nav.inbox"})
		// issue 15, R34: the privacy page, the way to one's requests
		items = append(items, [2]string{p.Realm.Base + "/privacy", "nav.privacy"})
	}
	p.Nav = nil
	for _, it := range items {
		href := it[0]
		current := r.URL.Path == href || href != "/operator" && strings.HasPrefix(r.URL.Path, href+"/")
		label := p.L.T(it[1])
		if it[1] == "nav.inbox" && p.unread > 0 {
			label = p.L.T("nav.inbox_unread", p.unread)
		}
		p.Nav = append(p.Nav, navItem{Href: href, Label: label, Current: current})
	}
}

// pageError shows an error as a page in the person's language, classified
// as in the API (clientError). A sign-in that is needed becomes a redirect.
func (s *server) pageError(w http.ResponseWriter, r *http.Request, p *pageData, err error) {
	ke, ok := clientError(r, err)
	if !ok {
		return
	}
	if ke.Code == kluis.EUnauthenticated {
		to := "/operator/login"
		if p.InOrg {
			to = "/o/" + p.Org.Slug + "/login"
		}
		redirect(w, r, to, "")
		return
	}
	status := errorStatus(ke.Code)
	setRetryAfter(w, ke)
	p.Form, p.Fields = nil, nil
	p.title("error." + ke.Code + ".title")
	p.Error = p.L.T("error." + ke.Code)
	if ke.Code == kluis.EInternal {
		p.Error = p.L.T("error.internal", state(r).id)
	}
	if err := s.render(w, status, "error", p); err != nil {
		state(r).log.Error("render error page", "err", err.Error())
		http.Error(w, http.StatusText(status), status)
	}
}
