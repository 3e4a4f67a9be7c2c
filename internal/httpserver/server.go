// Package httpserver is kluis's HTTP surface (shared/CONTRACT.md). Every
// request passes one middleware chain (request id, panic recovery, limits,
// client address, authentication, tenant resolution) before a handler decodes
// its input and calls one store method, where rights and audit are enforced
// (DESIGN §1). Handlers return errors; one mapper turns them into the
// contract's error shape.
package httpserver

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Config holds the server's dependencies.
type Config struct {
	Store   *sqlstore.Store
	Logger  *slog.Logger
	Metrics *Metrics // may be nil
	// MaxBodyBytes caps every request body; 0 means 1 MiB.
	MaxBodyBytes int64
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
}

// server carries the dependencies shared by the middleware; handlers get only
// what they need from their maker functions.
type server struct {
	store   *sqlstore.Store
	log     *slog.Logger
	metrics *Metrics
	maxBody int64
	proxies []netip.Prefix
	https   bool
	mux     *http.ServeMux
	pages   templates
	static  http.Handler
}

// NewServer returns the kluis HTTP handler.
func NewServer(c Config) http.Handler {
	s := &server{store: c.Store, log: c.Logger, metrics: c.Metrics, maxBody: c.MaxBodyBytes, proxies: c.TrustedProxies, https: c.HTTPS, mux: http.NewServeMux()}
	if s.maxBody <= 0 {
		s.maxBody = 1 << 20
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
	for _, rt := range s.routes() {
		h := rt.Handler
		if len(c.OperatorAddresses) > 0 && operatorRoute(rt) {
			h = s.allowOnly(c.OperatorAddresses, h)
		}
		s.mux.Handle(rt.Method+" "+rt.Pattern, h)
	}
	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refused := kluis.Errorf(kluis.EForbidden, "cross-origin request refused")
		if isPageRequest(r) {
			setPageHeaders(w, r)
			s.pageError(w, r, s.newPage(w, r), refused)
			return
		}
		writeError(w, r, refused)
	}))
	return s.begin(csrf.Handler(http.HandlerFunc(s.dispatch)))
}

// reqState is the request's own record, filled in by the middleware as the
// request goes down the chain and read by the request log at the end.
type reqState struct {
	id     string
	route  string
	client netip.Addr
	secure bool // the person's connection is TLS (here or at a trusted proxy)
	org    kluis.Org
	actor  kluis.Actor
	user   kluis.User // the signed-in organisation user, as loaded by authentication
	log    *slog.Logger
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

// operatorRoute tells whether a route belongs to the operator realm: its
// API (sign-in included) and its pages.
func operatorRoute(rt Route) bool {
	return rt.Realm == "operator" || rt.Realm == "page-operator" || strings.HasPrefix(rt.Pattern, "/api/v1/operator/")
}

// allowOnly serves h to clients within allowed; everyone else gets the
// answer of a path that does not exist.
func (s *server) allowOnly(allowed []netip.Prefix, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client := state(r).client
		for _, p := range allowed {
			if p.Contains(client) {
				h.ServeHTTP(w, r)
				return
			}
		}
		if isPageRequest(r) {
			setPageHeaders(w, r)
			s.pageError(w, r, s.newPage(w, r), kluis.ErrNotFound)
			return
		}
		writeError(w, r, kluis.ErrNotFound)
	})
}
