// Package httpauth is net/http middleware that trusts a Django allauth
// headless login: it asks allauth (through a short-lived cache) who holds the
// request's session token, Bearer token or session cookie, and puts the
// session in the request's context.
//
//	auth := httpauth.New(httpauth.Config{BaseURL: "http://127.0.0.1:8000"})
//	mux.Handle("GET /api/me", auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
//		json.NewEncoder(w).Encode(httpauth.UserFrom(r.Context()))
//	})))
//
// The middleware is a func(http.Handler) http.Handler, so it fits wherever
// that shape does:
//
//	r.Use(auth)                      // chi
//	e.Use(echo.WrapMiddleware(auth)) // echo
//
// Gin has no adapter for that shape; a few lines that call c.Next() from
// the wrapped handler do it (see _examples/gin in the repository).
//
// It is a front door of package headless, whose contract it answers: 401
// without a credential (or anonymous, with Optional), the session on
// allauth's 200, 401 and 410 as allauth, 503 with Retry-After when allauth
// fails, in allauth's error envelope with Cache-Control: no-store, byte for
// byte as the Fiber doors answer.
//
// Unlike the Fiber doors, a cache hit allocates: the copy of the
// *http.Request that r.WithContext makes (net/http keeps the context in the
// Request, so there is no way around it), and one small context node
// carrying the session, half of what context.WithValue would take. Reading
// the credential allocates nothing. What a hit costs, measured, with the
// command: docs/performance.md in the repository.
package httpauth

//go:generate go run ../internal/cmd/doorconfig

import (
	"context"
	"net/http"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/internal/doorconfig"
	"github.com/allauthgo/headless/internal/httpreq"
	"github.com/allauthgo/headless/introspect"
)

// Middleware authenticates requests: Handler requires a user, Optional lets
// anonymous requests through, and both share one cache. Its Authenticator
// gives Ready (the readiness check, an http.Handler), Evict, EvictUser,
// Metrics and Close.
type Middleware struct {
	*headless.Authenticator
	cfg Config
}

// New returns the middleware for cfg: Middleware.Handler, or
// Middleware.Optional with Config.Optional. It panics with NewMiddleware's
// error, as http.ServeMux.Handle does on a bad pattern: a config written in
// code is a programming error, found at startup. Its cache lives as long as
// the process; use NewMiddleware and Close where it must be stopped.
func New(cfg Config) func(http.Handler) http.Handler {
	m, err := NewMiddleware(cfg)
	if err != nil {
		panic(err.Error())
	}
	if cfg.Optional {
		return m.Optional
	}
	return m.Handler
}

// NewMiddleware returns the Middleware (one cache for Handler and
// Optional, Evict, Close), or an error, starting "httpauth: ", saying what
// in cfg cannot work (no BaseURL, one without http://, one holding allauth's
// Mount, bad Sources...) and what to write instead.
func NewMiddleware(cfg Config) (*Middleware, error) {
	core := cfg.core()
	core.Sources = cfg.Sources
	a, err := headless.New(core)
	if err != nil {
		return nil, doorconfig.Named(door, err)
	}
	if cfg.ErrorHandler == nil {
		cfg.ErrorHandler = DefaultErrorHandler
	}
	return &Middleware{Authenticator: a, cfg: cfg}, nil
}

func (m *Middleware) auth() *headless.Authenticator { return m.Authenticator }

// door starts every error and panic of this package.
const door = "httpauth"

// EvictHandler is headless.EvictHandler (the eviction webhook Django calls
// when sessions end; see it for its use and the body it reads), evicting
// from the caches of m and more. Route it outside m: it carries no user
// credential. Its error, starting "httpauth: ", says the Secret is shorter
// than 32 bytes.
func EvictHandler(cfg headless.EvictConfig, m *Middleware, more ...*Middleware) (http.Handler, error) {
	return doorconfig.EvictHandler(door, cfg, (*Middleware).auth, m, more)
}

// Handler wraps next so that it runs only for an authenticated request (or,
// with Config.Optional, also for one without a credential); every other
// request is answered by Config.ErrorHandler.
func (m *Middleware) Handler(next http.Handler) http.Handler {
	return m.wrap(next, m.cfg.Optional)
}

// Optional is Handler for routes open to anonymous requests: a request
// without a credential reaches next with no user (UserFrom returns nil); a
// credential that allauth refuses still fails.
func (m *Middleware) Optional(next http.Handler) http.Handler {
	return m.wrap(next, true)
}

func (m *Middleware) wrap(next http.Handler, optional bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.cfg.Next != nil && m.cfg.Next(r) {
			m.Skip()
			next.ServeHTTP(w, r)
			return
		}
		// r's context reaches a lookup through Request.Context, on a miss.
		res := m.Authenticate(httpreq.Request{R: r}, optional) //nolint:contextcheck // see above
		switch {
		case res.Err != nil:
			m.cfg.ErrorHandler(w, r, res.Err)
		case res.Session == nil:
			next.ServeHTTP(w, r) // anonymous
		default:
			next.ServeHTTP(w, r.WithContext(headless.NewContext(r.Context(), res.Session)))
		}
	})
}

// SessionFrom returns the session the middleware put in ctx (a request's
// context, or one derived from it), or nil: anonymous, or the middleware did
// not run. The session is shared with the cache: read it, do not modify it.
// headless.SessionFromContext finds it too.
func SessionFrom(ctx context.Context) *introspect.Session { return headless.SessionFromContext(ctx) }

// UserFrom returns the authenticated user of ctx's request, or nil. Like the
// session, it is shared with the cache and must not be modified.
func UserFrom(ctx context.Context) *introspect.User {
	if s := SessionFrom(ctx); s != nil {
		return &s.User
	}
	return nil
}

// DefaultErrorHandler answers in allauth's JSON envelope (headless.Error's
// Body, with its Header: Cache-Control: no-store, Retry-After on 503,
// WWW-Authenticate on 401 for a Bearer source). An error that is not a
// *headless.Error is a 500 without its text.
func DefaultErrorHandler(w http.ResponseWriter, _ *http.Request, err error) {
	e := headless.ErrorFrom(err)
	h := w.Header()
	e.Header(h.Set)
	h.Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_, _ = w.Write(e.Body())
}
