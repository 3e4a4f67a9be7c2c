package httpserver

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/kluis/kluis"
)

// statusWriter remembers the status for the request log and metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// begin is the outermost middleware: request id, panic recovery, body limit,
// where the request comes from, response headers, and one log line and
// metrics per request (labelled with the route that matched, see matched).
func (s *server) begin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// Where the request comes from travels with every call that
		// records or throttles (kluis.Origin): the client address, a
		// coarse device name, the device cookie.
		st := &reqState{id: newRequestID(), route: "unmatched", secure: s.isSecure(r),
			from: kluis.Origin{Client: s.clientAddr(r), Device: deviceName(r.UserAgent())}}
		if c, err := r.Cookie(deviceCookie); err == nil && len(c.Value) <= 4096 {
			st.from.DeviceCookie = c.Value
		}
		st.log = s.log.With("request_id", st.id)
		sw := &statusWriter{ResponseWriter: w}
		h := w.Header()
		h.Set("X-Request-Id", st.id)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		s.labelEnvironment(h) // R48
		st.rawBody = r.Body
		r.Body = http.MaxBytesReader(sw, r.Body, s.maxBody)
		r = r.WithContext(withState(r.Context(), st))
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.recordCrash(r, st, p, debug.Stack()) // R38
				if sw.status == 0 {
					writeError(sw, r, errors.New("panic"))
				}
			}
			d := time.Since(start)
			if sw.status == 0 {
				sw.status = http.StatusOK
			}
			// Never bodies, tokens, query strings or personal data.
			st.log.Info("request", "method", r.Method, "route", st.route, "status", sw.status, "duration_ms", float64(d.Microseconds())/1000)
			if s.metrics != nil {
				s.metrics.observeRequest(r.Method, st.route, sw.status, d)
			}
			s.countUse(st) // R37: the pattern, never the path
		}()
		next.ServeHTTP(sw, r)
	})
}

func newRequestID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// clientAddr is the peer's address, or the first address in X-Forwarded-For
// counted from the right that is not a trusted proxy, when the peer is one.
func (s *server) clientAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	peer = peer.Unmap()
	if !s.trusted(peer) {
		return peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return peer
		}
		a = a.Unmap()
		if !s.trusted(a) {
			return a
		}
	}
	return peer
}

// isSecure tells whether the person's connection is TLS: served over TLS
// here, configured as https, or forwarded as https by a trusted proxy.
func (s *server) isSecure(r *http.Request) bool {
	if r.TLS != nil || s.https {
		return true
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	peer, err := netip.ParseAddr(host)
	return err == nil && s.trusted(peer.Unmap()) && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func (s *server) trusted(a netip.Addr) bool {
	for _, p := range s.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// sameOrigin reports whether a browser says the request came from this
// origin or from the person (typing, a bookmark); a request without the
// header (an older browser, a script) counts as such.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return true
	}
	return false
}

// bearerOrCookie returns the credential a request carries: the bearer token,
// else the named cookie. A browser request that another site, or another
// origin of the same site, started (a link, an image) does not use the
// cookie: SameSite=Lax would send it on a top-level GET, and the API has
// nothing such a request should read or record.
func bearerOrCookie(r *http.Request, cookie string) string {
	if a := r.Header.Get("Authorization"); a != "" {
		if t, ok := strings.CutPrefix(a, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
		return ""
	}
	if !sameOrigin(r) {
		return ""
	}
	if c, err := r.Cookie(cookie); err == nil {
		return c.Value
	}
	return ""
}

// authenticate resolves a credential of the realm into its identity, made
// the request's. A personal API token counts only in the Authorization
// header, never as a cookie, so a page can never run on one.
func (s *server) authenticate(r *http.Request, realm kluis.Realm, credential string) (kluis.Identity, error) {
	if kluis.IsAPIToken(credential) && !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		return kluis.Identity{}, kluis.ErrUnauthenticated
	}
	if kluis.IsSupportToken(credential) {
		if realm != kluis.RealmOrg {
			return kluis.Identity{}, kluis.ErrUnauthenticated
		}
		return s.support.AuthenticateSupport(r.Context(), state(r).from, credential)
	}
	return s.sessions.Authenticate(r.Context(), realm, state(r).from, credential)
}

// supportCookie holds a support session for the pages (R22): set by the
// operator's page that opens one, sent with the organisation's pages and
// API calls alike, and taken before a person's session cookie.
const supportCookie = "__Host-kluis_support"

// supportCookieOf is the support session's cookie of a browser request
// (never with an Authorization header).
func supportCookieOf(r *http.Request) string {
	if r.Header.Get("Authorization") != "" || !sameOrigin(r) {
		return ""
	}
	if c, err := r.Cookie(supportCookie); err == nil {
		return c.Value
	}
	return ""
}

// errNotForSupport refuses a support session on a route of a person:
// their account, credentials, factors, tokens, sessions (R22).
var errNotForSupport = kluis.Errorf(kluis.EForbidden, "support access cannot do this")

// asSupport runs a request of a support session (R22): a view grant
// changes nothing (forbidden before any handler), and every request is
// recorded as a use of the grant — in the organisation's chain and on its
// managers' support page — before it runs, so none goes unrecorded.
func (s *server) asSupport(w http.ResponseWriter, r *http.Request, next handlerFunc) error {
	st := state(r)
	use := kluis.SupportUse{Method: r.Method, Route: st.route, Object: supportObject(r, st.org.ID)}
	if err := s.support.RecordSupportUse(r.Context(), st.actor, use); err != nil {
		return err
	}
	write := r.Method != http.MethodGet && r.Method != http.MethodHead
	if write && st.actor.Support.Right != kluis.SupportEdit {
		return kluis.ErrForbidden
	}
	return next(w, r)
}

// supportObject names what a support request touches for its record: the
// person, project or group of the URL, else the organisation. Never a file
// path or a name: those are the customer's data.
func supportObject(r *http.Request, org kluis.OrgID) string {
	id := r.PathValue("id")
	if id == "" || !kluis.ValidID(id) {
		return "org:" + string(org)
	}
	for _, k := range [][2]string{{"/users/{id}", "user:"}, {"/projects/{id}", "project:"}, {"/groups/{id}", "group:"}} {
		if strings.Contains(r.Pattern, k[0]) {
			return k[1] + id
		}
	}
	return "org:" + string(org)
}

// org resolves the organisation of the URL once and puts its realm in the
// request's state. A credential of this realm is authenticated (a session,
// or a personal API token); one of another organisation gets not_found
// before any handler runs (R1), and credentials of the operator realm are
// worthless here. A valid credential resolves its organisation in the same
// lookup; without one, the slug is looked up on its own. A read-only token
// on a request that may change state is refused (and recorded) once the
// organisation is known to be the URL's.
func (s *server) org(next handlerFunc) http.Handler {
	next = s.readOnly(next)
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		slug := r.PathValue("org")
		// A browser in a support session (R22) sends its cookie to every
		// organisation: it counts for its own; elsewhere the browser's
		// person's credential does, as on the pages.
		if token := supportCookieOf(r); token != "" {
			id, err := s.authenticate(r, kluis.RealmOrg, token)
			switch {
			case err == nil && id.Org.Slug == slug:
				st.signIn(id)
				st.realm = orgRealm(st.org)
				return s.asSupport(w, r, next)
			case err != nil && kluis.ErrorCode(err) == kluis.EUnauthenticated:
				return kluis.ErrNotFound // it ended: revoked, expired, idle
			case err != nil:
				return err
			}
		}
		if token := bearerOrCookie(r, sessionCookie); token != "" {
			id, err := s.authenticate(r, kluis.RealmOrg, token)
			switch {
			case err == nil && id.Org.Slug != slug:
				return kluis.ErrNotFound
			case err == nil && id.Actor.Support != nil:
				st.signIn(id)
				st.realm = orgRealm(st.org)
				return s.asSupport(w, r, next)
			case err != nil && kluis.IsSupportToken(token):
				// A support session that ended (revoked, expired, idle):
				// the organisation is not there for it (R22).
				return kluis.ErrNotFound
			case err != nil && kluis.ErrorCode(err) == kluis.EUnauthenticated && s.isOperatorCredential(r, token):
				// An operator's own credential sees no organisation:
				// support reaches one only through a grant (R22).
				return kluis.ErrNotFound
			case err == nil:
				st.signIn(id)
				st.realm = orgRealm(st.org)
				write := r.Method != http.MethodGet && r.Method != http.MethodHead
				if !kluis.AllowedByScope(st.actor, write) {
					return s.tokens.RefuseTokenScope(r.Context(), st.org.ID, st.actor)
				}
				return next(w, r)
			case kluis.ErrorCode(err) == kluis.EMFAEnrolmentRequired && id.Org.Slug != slug:
				// A token whose owner must first enrol a second factor,
				// shown to another organisation: R1 comes first.
				return kluis.ErrNotFound
			case kluis.ErrorCode(err) != kluis.EUnauthenticated:
				return err
			}
		}
		org, err := s.orgs.FindOrgBySlug(r.Context(), slug)
		if err != nil {
			return err
		}
		st.org, st.realm = org, orgRealm(org)
		return next(w, r)
	})
}

// isOperatorCredential reports whether a bearer token presented to an
// organisation's route is an operator's session.
func (s *server) isOperatorCredential(r *http.Request, token string) bool {
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") || kluis.IsAPIToken(token) {
		return false
	}
	_, err := s.sessions.Authenticate(r.Context(), kluis.RealmOperator, state(r).from, token)
	return err == nil
}

// orgActor is org for the routes a support session may use as well as
// the organisation's people: what managers read and change, and projects.
// The services' rules decide what the grant allows (R22).
func (s *server) orgActor(next handlerFunc) http.Handler {
	return s.org(func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		if st.actor.IsSupport(st.org.ID) {
			return next(w, r)
		}
		if !st.actor.IsOrgUser(st.org.ID) {
			return kluis.ErrUnauthenticated
		}
		if err := checkEnrolment(st); err != nil {
			return err
		}
		return next(w, r)
	})
}

// orgUser is org for routes that need a signed-in user of the
// organisation: a person's own account. A support session is refused.
func (s *server) orgUser(next handlerFunc) http.Handler {
	return s.org(func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		if st.actor.IsSupport(st.org.ID) {
			return errNotForSupport
		}
		if !st.actor.IsOrgUser(st.org.ID) {
			return kluis.ErrUnauthenticated
		}
		if err := checkEnrolment(st); err != nil {
			return err
		}
		return next(w, r)
	})
}

// errSessionOnly refuses a personal API token on a route that needs a
// person in a session: credentials, factors, tokens, the e-mail address,
// re-authentication and sessions.
var errSessionOnly = kluis.Errorf(kluis.EForbidden, "an API token cannot do this; sign in")

// orgSession is orgUser for routes that need a session: a personal API
// token, whatever its scope, gets forbidden. The services behind them
// refuse tokens too (a token is never a fresh authentication); this makes
// the route table say so.
func (s *server) orgSession(next handlerFunc) http.Handler {
	return s.orgUser(func(w http.ResponseWriter, r *http.Request) error {
		if state(r).actor.ViaToken() {
			return errSessionOnly
		}
		return next(w, r)
	})
}

// orgOrOperator serves a path of an organisation that both realms use
// (the licence, R13): a signed-in operator's credential (session cookie or
// bearer) is taken in the operator's realm, for the organisation of the
// URL, and the service checks the operator's role; anything else goes
// through orgActor (a person, or a support session), so an organisation's credential of another organisation
// is still not_found.
func (s *server) orgOrOperator(next handlerFunc) http.Handler {
	orgRoute := s.orgActor(next)
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if token := bearerOrCookie(r, operatorCookie); token != "" && !kluis.IsAPIToken(token) {
			if id, err := s.authenticate(r, kluis.RealmOperator, token); err == nil {
				st := state(r)
				st.realm = operatorRealm
				st.signIn(id)
				if !kluis.OperatorScope.Signed(st.actor) {
					return kluis.ErrUnauthenticated
				}
				if err := checkEnrolment(st); err != nil {
					return err
				}
				org, err := s.orgs.FindOrgBySlug(r.Context(), r.PathValue("org"))
				if err != nil {
					return err
				}
				st.org = org
				return next(w, r)
			}
		}
		orgRoute.ServeHTTP(w, r)
		return nil
	})
}

// operatorPublic puts the operator's realm in the request's state, for its
// routes before sign-in.
func (s *server) operatorPublic(next handlerFunc) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		state(r).realm = operatorRealm
		return next(w, r)
	})
}

// operator authenticates an operator session; organisation credentials are
// not found in this realm (R22). A session of an operator without a second
// factor reaches only the enrolment routes (R17, checkEnrolment).
func (s *server) operator(next handlerFunc) http.Handler {
	return s.operatorPublic(func(w http.ResponseWriter, r *http.Request) error {
		token := bearerOrCookie(r, operatorCookie)
		if token == "" {
			return kluis.ErrUnauthenticated
		}
		id, err := s.authenticate(r, kluis.RealmOperator, token)
		if err != nil {
			return err
		}
		st := state(r)
		st.signIn(id)
		if !kluis.OperatorScope.Signed(st.actor) {
			return kluis.ErrUnauthenticated
		}
		if err := checkEnrolment(st); err != nil {
			return err
		}
		return next(w, r)
	})
}

// checkEnrolment refuses a request of a session limited to enrolling a
// second factor (R17, kluis.Actor.MFAEnrolmentOnly) on every route that is
// not one of enrolment's (Route.Enrolment): the organisation requires a
// factor and the person has none yet, or the person is operator staff, who
// must always have one. The API answers mfa_enrolment_required; a page
// sends the person to their account, where the set-up is.
func checkEnrolment(st *reqState) error {
	if st.actor.MFAEnrolmentOnly && !st.enrolment {
		if st.actor.Realm == kluis.RealmOperator {
			return kluis.ErrOperatorMFAEnrolmentRequired
		}
		return kluis.ErrMFAEnrolmentRequired
	}
	return nil
}
