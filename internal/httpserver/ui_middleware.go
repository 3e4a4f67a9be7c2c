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
	signedIn
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
// as the API's org wrapper does. A session that no longer opens (idle, past
// its lifetime, ended elsewhere) clears its cookie; a page that needs a
// signed-in person then says "you were signed out" (R21), and without any
// session it asks to sign in. A session of another organisation counts as
// none here: the browser holds one session cookie for the whole site.
func (s *server) orgPage(need access, fn pageFunc) http.Handler {
	return s.page(func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		slug := r.PathValue("org")
		ended := false
		if token := sessionToken(r, sessionCookie); token != "" {
			actor, user, org, err := s.store.AuthenticateOrg(r.Context(), token)
			switch {
			case err == nil && org.Slug == slug:
				st.org, st.actor, st.user = org, actor, user
			case err == nil:
			case kluis.ErrorCode(err) == kluis.EUnauthenticated:
				ended = true
				http.SetCookie(w, clearCookie(sessionCookie))
			default:
				return err
			}
		}
		if st.org.ID == "" {
			org, err := s.store.FindOrgBySlug(r.Context(), slug)
			if err != nil {
				return err
			}
			st.org = org
		}
		p.Org, p.InOrg = st.org, true
		base := "/o/" + st.org.Slug
		p.Home = base + "/"
		if st.actor.IsOrgUser(st.org.ID) {
			p.Me = &st.user
			p.Manager = st.actor.IsManager(st.org.ID)
			p.LogoutAction = base + "/logout"
			policy, err := s.store.FindPolicy(r.Context(), st.org.ID, st.actor)
			if err != nil {
				return err
			}
			p.policy = policy
			p.IdleSeconds = int(policy.IdleTimeout().Seconds())
			items := [][2]string{{"/account", "nav.account"}}
			if p.Manager && !st.actor.MFAEnrolmentOnly {
				items = append(items, [2]string{"/users", "nav.users"}, [2]string{"/policy", "nav.policy"}, [2]string{"/audit", "nav.audit"})
			}
			for _, it := range items {
				href := base + it[0]
				p.Nav = append(p.Nav, navItem{Href: href, Label: p.L.T(it[1]), Current: r.URL.Path == href || strings.HasPrefix(r.URL.Path, href+"/")})
			}
			// A session limited to enrolment (R17) is sent to the set-up.
			if need == signedIn && checkEnrolment(st) != nil {
				return redirect(w, r, base+"/account#mfa-h", "mfa_enrolment_required")
			}
			p.Enrolling = st.actor.MFAEnrolmentOnly
		} else if need == signedIn {
			if ended {
				return redirect(w, r, base+"/signed-out", "")
			}
			return redirect(w, r, base+"/login", "")
		}
		return fn(w, r, p)
	})
}

// operatorPage resolves an operator's session for the operator pages.
func (s *server) operatorPage(need access, fn pageFunc) http.Handler {
	return s.page(func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		p.Operator, p.Home = true, "/operator"
		if token := sessionToken(r, operatorCookie); token != "" {
			actor, err := s.store.AuthenticateOperator(r.Context(), token)
			switch {
			case err == nil:
				st.actor = actor
			case kluis.ErrorCode(err) == kluis.EUnauthenticated:
				http.SetCookie(w, clearCookie(operatorCookie))
			default:
				return err
			}
		}
		if st.actor.IsOperator() {
			p.LogoutAction = "/operator/logout"
			setOperatorNav(r, p, st.actor.MFAEnrolmentOnly)
			// An operator without a second factor is sent to set one up
			// (R17): operators must enrol.
			if need == signedIn && checkEnrolment(st) != nil {
				return redirect(w, r, "/operator/account#mfa-h", "operator_mfa_required")
			}
			p.Enrolling = st.actor.MFAEnrolmentOnly
		} else if need == signedIn {
			return redirect(w, r, "/operator/login", "")
		}
		return fn(w, r, p)
	})
}

// setOperatorNav is the operator's navigation: organisations and their
// own account; only the account while enrolment is due.
func setOperatorNav(r *http.Request, p *pageData, enrolling bool) {
	p.Nav = nil
	items := [][2]string{{"/operator", "nav.orgs"}, {"/operator/account", "nav.account"}}
	if enrolling {
		items = items[1:]
	}
	for _, it := range items {
		p.Nav = append(p.Nav, navItem{Href: it[0], Label: p.L.T(it[1]), Current: r.URL.Path == it[0] || it[0] != "/operator" && strings.HasPrefix(r.URL.Path, it[0]+"/")})
	}
}

var pageStatus = map[string]int{
	kluis.EInvalid:              http.StatusBadRequest,
	kluis.EForbidden:            http.StatusForbidden,
	kluis.ENotFound:             http.StatusNotFound,
	kluis.EMethodNotAllowed:     http.StatusMethodNotAllowed,
	kluis.EConflict:             http.StatusConflict,
	kluis.ETooLarge:             http.StatusRequestEntityTooLarge,
	kluis.ETooManyRequests:      http.StatusTooManyRequests,
	kluis.ELoginsDisabled:       http.StatusForbidden,
	kluis.EReauthRequired:       http.StatusForbidden,
	kluis.EMFAEnrolmentRequired: http.StatusForbidden,
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
	status, ok := pageStatus[ke.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
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
