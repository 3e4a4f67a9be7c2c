package httpserver

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Cookie names. The __Host- prefix pins a cookie to this host and path "/";
// browsers accept Secure cookies on http://localhost.
const (
	sessionCookie  = "__Host-kluis_session"
	operatorCookie = "__Host-kluis_operator"
	// deviceCookie holds a browser's device entries (DESIGN §6): proof that
	// it signed in to an account before, which exempts it from that
	// account's lock and from the address block.
	deviceCookie = "__Host-kluis_device"
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
// client address, response headers, and one log line and metrics per request.
func (s *server) begin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		st := &reqState{id: newRequestID(), client: s.clientAddr(r), secure: s.isSecure(r)}
		_, st.route = s.mux.Handler(r)
		if st.route == "" {
			st.route = "unmatched"
		}
		st.log = s.log.With("request_id", st.id)
		sw := &statusWriter{ResponseWriter: w}
		h := w.Header()
		h.Set("X-Request-Id", st.id)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		r.Body = http.MaxBytesReader(sw, r.Body, s.maxBody)
		// The client address goes into the audit events of the request,
		// sealed under the organisation key (R28).
		ctx := sqlstore.WithDevice(sqlstore.WithClient(withState(r.Context(), st), st.client), deviceName(r.UserAgent()))
		if c, err := r.Cookie(deviceCookie); err == nil && len(c.Value) <= 4096 {
			ctx = sqlstore.WithDeviceCookie(ctx, c.Value)
		}
		r = r.WithContext(ctx)
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				st.log.Error("panic", "route", st.route, "panic", fmt.Sprint(p))
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

// dispatch serves a matched route, and answers unknown paths and wrong
// methods in the contract's error shape instead of the mux's plain text.
func (s *server) dispatch(w http.ResponseWriter, r *http.Request) {
	h, pattern := s.mux.Handler(r)
	if pattern != "" {
		s.mux.ServeHTTP(w, r)
		return
	}
	probe := &probeWriter{header: http.Header{}}
	h.ServeHTTP(probe, r)
	if isPageRequest(r) {
		setPageHeaders(w, r)
		err := kluis.ErrNotFound
		if probe.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", probe.header.Get("Allow"))
			err = kluis.Errorf(kluis.EMethodNotAllowed, "this method is not allowed here")
		}
		s.pageError(w, r, s.newPage(w, r), err)
		return
	}
	if probe.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", probe.header.Get("Allow"))
		writeError(w, r, kluis.Errorf(kluis.EMethodNotAllowed, "this method is not allowed here"))
		return
	}
	writeError(w, r, kluis.ErrNotFound)
}

// probeWriter captures what the mux's own 404/405 handler would answer.
type probeWriter struct {
	header http.Header
	status int
}

func (p *probeWriter) Header() http.Header         { return p.header }
func (p *probeWriter) Write(b []byte) (int, error) { return len(b), nil }
func (p *probeWriter) WriteHeader(code int)        { p.status = code }

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

// org resolves the organisation of the URL once. A credential of this realm
// is authenticated (a session, or a personal API token, authenticateOrg); a session of another organisation gets not_found before
// any handler runs (R1). Credentials of the operator realm are worthless here.
// A valid session resolves its organisation in the same query; without one,
// the slug is looked up on its own.
func (s *server) org(next handlerFunc) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		slug := r.PathValue("org")
		if token := bearerOrCookie(r, sessionCookie); token != "" {
			actor, user, org, err := s.authenticateOrg(r, token)
			switch {
			case err == nil && org.Slug != slug:
				return kluis.ErrNotFound
			case err == nil:
				st.org, st.actor, st.user = org, actor, user
				return next(w, r)
			case kluis.ErrorCode(err) != kluis.EUnauthenticated:
				return err
			}
		}
		org, err := s.store.FindOrgBySlug(r.Context(), slug)
		if err != nil {
			return err
		}
		st.org = org
		return next(w, r)
	})
}

// orgUser is org for routes that need a signed-in user of the organisation.
func (s *server) orgUser(next handlerFunc) http.Handler {
	return s.org(func(w http.ResponseWriter, r *http.Request) error {
		if !state(r).actor.IsOrgUser(state(r).org.ID) {
			return kluis.ErrUnauthenticated
		}
		if err := checkEnrolment(state(r)); err != nil {
			return err
		}
		return next(w, r)
	})
}

// operator authenticates an operator session; organisation credentials are
// not found in this realm (R22). A session of an operator without a second
// factor reaches only the enrolment routes (R17, checkEnrolment).
func (s *server) operator(next handlerFunc) http.Handler {
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		token := bearerOrCookie(r, operatorCookie)
		if token == "" {
			return kluis.ErrUnauthenticated
		}
		actor, err := s.store.AuthenticateOperator(r.Context(), token)
		if err != nil {
			return err
		}
		state(r).actor = actor
		if err := checkEnrolment(state(r)); err != nil {
			return err
		}
		return next(w, r)
	})
}
