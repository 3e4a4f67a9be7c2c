// Package httpserver is kluis's HTTP surface (shared/CONTRACT.md). Every
// request passes one middleware chain (request id, panic recovery, limits,
// client address, authentication, tenant resolution) before a handler decodes
// its input and calls one method of a domain service (package kluis), where
// rights and audit are enforced (DESIGN §1). Handlers see the domain
// interfaces only, never the storage behind them, and each maker function
// takes only the services it uses. Handlers return errors; one mapper turns
// them into the contract's error shape.
package httpserver

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"reflect"
	"strings"

	"github.com/kluis/kluis"
)

// Config holds the server's dependencies.
type Config struct {
	// Services are the domain services; every field but Keys is required.
	Services kluis.Services
	// Ready reports whether the server can serve (its database answers),
	// for GET /readyz; nil means ready whenever the server answers.
	Ready   func(context.Context) error
	Logger  *slog.Logger
	Metrics *Metrics // may be nil
	// MaxBodyBytes caps every request body; 0 means 1 MiB.
	MaxBodyBytes int64
	// MaxFileBytes caps an uploaded file instead; 0 means
	// kluis.DefaultMaxFileSize.
	MaxFileBytes int64
	// TrustedProxies are the reverse proxies whose X-Forwarded-For (and
	// X-Forwarded-Proto) is believed; from anyone else the header is ignored.
	TrustedProxies []netip.Prefix
	// HTTPS says that people reach kluis over https (the public URL's
	// scheme), through a proxy that terminates TLS: pages then send HSTS
	// and every cookie is Secure, though kluis itself speaks plain HTTP.
	HTTPS bool
	// OperatorAddresses, when not empty, are the only client addresses the
	// operator realm answers (R46: admin functions only from allowed
	// addresses); to anyone else its routes do not exist (404).
	OperatorAddresses []netip.Prefix
	// Usage counts each request's route for the anonymous statistics
	// (R37); nil counts nothing. Environment labels every page and API
	// answer outside production (R48); "" is production.
	Usage       *UsageCounter
	Environment kluis.Environment
}

// server carries what the middleware shares: the authentication and
// tenant lookups, the page templates, and the routers. Handlers get only
// the services they use, from their maker functions in routes.go.
type server struct {
	sessions kluis.SessionService // credentials → identities
	orgs     kluis.OrgService     // the URL's organisation
	tokens   kluis.TokenService   // refusing a read-only token's write
	policies kluis.PolicyService  // a signed-in page's idle time
	support  kluis.SupportService // support sessions and their uses (R22)
	inbox    kluis.InboxService   // the navigation's count of unread notices
	// retention tells whether an organisation is read-only after its
	// licence ended (R36, readonly.go).
	retention kluis.RetentionService
	crashes   kluis.CrashService // recovered panics (R38)
	usage     *UsageCounter      // the anonymous statistics (R37); may be nil
	env       kluis.Environment  // the banner and header outside production (R48)

	log     *slog.Logger
	metrics *Metrics
	maxBody int64
	maxFile int64
	proxies []netip.Prefix
	https   bool
	// mux serves every route and, for anything else, the catch-all;
	// patterns answers only on that error path, telling a wrong method
	// (405 with Allow) from an unknown path (404).
	mux      *http.ServeMux
	patterns *http.ServeMux
	pages    templates
	static   http.Handler
}

// NewServer returns the kluis HTTP handler. A configuration it cannot serve
// with (a missing service, a broken embedded template) stops it here, not
// at the first request.
func NewServer(c Config) http.Handler {
	if missing := missingServices(c.Services); len(missing) > 0 {
		panic("httpserver: Config.Services lacks " + strings.Join(missing, ", "))
	}
	svc := c.Services
	s := &server{
		sessions: svc.Sessions, orgs: svc.Orgs, tokens: svc.Tokens, policies: svc.Policies, support: svc.Support, inbox: svc.Inbox, retention: svc.Retention,
		crashes: svc.Crashes, usage: c.Usage, env: c.Environment,
		log: c.Logger, metrics: c.Metrics, maxBody: c.MaxBodyBytes, maxFile: c.MaxFileBytes, proxies: c.TrustedProxies, https: c.HTTPS,
		mux: http.NewServeMux(), patterns: http.NewServeMux(),
	}
	if s.maxBody <= 0 {
		s.maxBody = 1 << 20
	}
	if s.maxFile <= 0 {
		s.maxFile = kluis.DefaultMaxFileSize
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if s.pages, err = loadTemplates(); err != nil {
		panic("httpserver: embedded templates: " + err.Error())
	}
	if s.static, err = staticFiles(); err != nil {
		panic("httpserver: embedded static files: " + err.Error())
	}
	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.answerError(w, r, kluis.Errorf(kluis.EForbidden, "cross-origin request refused"))
	}))
	for _, rt := range s.routes(svc, c.Ready) {
		h := rt.Handler
		if len(c.OperatorAddresses) > 0 && operatorRoute(rt) {
			h = s.allowOnly(c.OperatorAddresses, h)
		}
		pattern := rt.Method + " " + rt.Pattern
		s.mux.Handle(pattern, matched(rt, csrf.Handler(h)))
		s.patterns.Handle(pattern, http.NotFoundHandler())
	}
	s.mux.Handle("/", csrf.Handler(http.HandlerFunc(s.unmatched)))
	return s.begin(s.mux)
}

// missingServices names the services of svc that are nil, but Keys, which
// no route uses.
func missingServices(svc kluis.Services) []string {
	var missing []string
	v := reflect.ValueOf(svc)
	for i := range v.NumField() {
		if name := v.Type().Field(i).Name; name != "Keys" && v.Field(i).IsNil() {
			missing = append(missing, name)
		}
	}
	return missing
}

// reqState is the request's own record, filled in by the middleware as the
// request goes down the chain and read by the request log at the end.
type reqState struct {
	id     string
	route  string // the matched pattern, for the log and metrics; "unmatched" until a route runs
	from   kluis.Origin
	secure bool // the person's connection is TLS (here or at a trusted proxy)
	// enrolment: the route is allowed to a session limited to enrolling
	// a second factor (Route.Enrolment).
	enrolment bool
	// realm is the realm of the route: its scope, paths and cookies, set
	// by the realm wrappers (org, operator, orgPage, operatorPage).
	realm    realm
	org      kluis.Org
	actor    kluis.Actor
	identity kluis.Identity // what the request's credential stands for
	log      *slog.Logger
	// rawBody is the request's body without the JSON routes' size limit,
	// for the one route that takes a file (its own, larger limit).
	rawBody io.ReadCloser
	// feature is a named feature the handler used, counted in the
	// anonymous statistics beside the route (useFeature, R37).
	feature string
}

type stateKey struct{}

func state(r *http.Request) *reqState {
	if st, ok := r.Context().Value(stateKey{}).(*reqState); ok {
		return st
	}
	return &reqState{log: slog.New(slog.DiscardHandler)}
}

func withState(ctx context.Context, st *reqState) context.Context {
	return context.WithValue(ctx, stateKey{}, st)
}

// signIn makes the identity the request's: its actor comes from where the
// request came from.
func (st *reqState) signIn(id kluis.Identity) {
	id.Actor.From = st.from
	st.identity, st.actor = id, id.Actor
	if id.Org.ID != "" {
		st.org = id.Org
	}
}

// person is the signed-in person of an organisation, decrypted on the first
// call of the request: only the routes that show the person ask.
func (st *reqState) person(ctx context.Context) (kluis.User, error) {
	if st.identity.User == nil || !st.actor.IsOrgUser(st.org.ID) {
		return kluis.User{}, kluis.ErrUnauthenticated
	}
	return st.identity.User(ctx)
}

// matched records which route a request matched, for the log, the
// metrics and the enrolment check: the router matches once.
func matched(rt Route, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := state(r)
		st.route, st.enrolment = r.Pattern, rt.Enrolment
		h.ServeHTTP(w, r)
	})
}

// unmatched answers a request no route matched in the contract's shape:
// 405 with Allow for a known path with another method, else 404. Only this
// error path asks the router a second time.
func (s *server) unmatched(w http.ResponseWriter, r *http.Request) {
	probe := &probeWriter{header: http.Header{}}
	h, _ := s.patterns.Handler(r)
	h.ServeHTTP(probe, r)
	err := kluis.ErrNotFound
	if probe.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", probe.header.Get("Allow"))
		err = kluis.Errorf(kluis.EMethodNotAllowed, "this method is not allowed here")
	}
	s.answerError(w, r, err)
}

// probeWriter captures what the router's own 404/405 answer would be.
type probeWriter struct {
	header http.Header
	status int
}

func (p *probeWriter) Header() http.Header         { return p.header }
func (p *probeWriter) Write(b []byte) (int, error) { return len(b), nil }
func (p *probeWriter) WriteHeader(code int)        { p.status = code }

// answerError answers an error that came before any handler: as a page
// when a browser asks for one, else in the contract's JSON shape.
func (s *server) answerError(w http.ResponseWriter, r *http.Request, err error) {
	if isPageRequest(r) {
		setPageHeaders(w, r)
		s.pageError(w, r, s.newPage(w, r), err)
		return
	}
	writeError(w, r, err)
}

// operatorRoute tells whether a route belongs to the operator realm: its
// API (sign-in included) and its pages.
func operatorRoute(rt Route) bool {
	return rt.Realm == "operator" || rt.Realm == "page-operator" || strings.HasPrefix(rt.Pattern, "/api/v1/operator/")
}

// allowOnly serves h to clients within allowed; everyone else gets the
// answer of a path that does not exist.
func (s *server) allowOnly(allowed []netip.Prefix, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client := state(r).from.Client
		for _, p := range allowed {
			if p.Contains(client) {
				h.ServeHTTP(w, r)
				return
			}
		}
		s.answerError(w, r, kluis.ErrNotFound)
	})
}
