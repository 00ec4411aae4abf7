// Package fiberauth is Fiber v3 middleware that trusts a Django allauth
// headless login: it asks allauth (through a short-lived cache) who holds the
// request's session token, Bearer token or session cookie, and stores the
// user in c.Locals.
//
//	app.Use(fiberauth.New(fiberauth.Config{BaseURL: "http://127.0.0.1:8000"}))
//	app.Get("/api/me", func(c fiber.Ctx) error {
//		return c.JSON(fiberauth.UserFrom(c))
//	})
//
// It is a front door of package headless, whose contract it answers: 401
// without a credential (or anonymous, with Optional), the session on
// allauth's 200, 401 and 410 as allauth, 503 with Retry-After when allauth
// fails, in allauth's error envelope with Cache-Control: no-store. The
// credential's sources are v3 extractors (Config.Extractor).
package fiberauth

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/gofiber/fiber/v3"
	"github.com/gofiber/fiber/v3/middleware/adaptor"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/internal/doorconfig"
	"github.com/allauthgo/headless/internal/fasthttpreq"
	"github.com/allauthgo/headless/introspect"
)

// Middleware authenticates requests: Handler requires a user, Optional lets
// anonymous requests through, and both share one cache. Ready is its
// readiness check as a fiber.Handler; its Authenticator gives Evict,
// EvictUser, Metrics and Close.
type Middleware struct {
	*headless.Authenticator
	cfg        Config
	contextKey any // boxed once: boxing a string per request would allocate
	app        atomic.Pointer[appFlag]
}

// New creates the middleware handler: Middleware.Handler, or
// Middleware.Optional with Config.Optional. It panics with NewMiddleware's
// error, as Fiber's own middleware does: a config written in code is a
// programming error, found at startup. Its cache lives as long as the
// process; use NewMiddleware and Close where it must be stopped.
func New(config ...Config) fiber.Handler {
	m, err := NewMiddleware(config...)
	if err != nil {
		panic(err.Error())
	}
	if m.cfg.Optional {
		return m.Optional
	}
	return m.Handler
}

// NewMiddleware returns the Middleware (one cache for Handler and
// Optional, Evict, Close), or an error, starting "fiberauth/v3: ", saying
// what in the config cannot work (no BaseURL, one without http://, one
// holding allauth's Mount, an Extractor reading a query...) and what to
// write instead.
func NewMiddleware(config ...Config) (*Middleware, error) {
	cfg := configDefault(config...)
	core := cfg.core()
	var err error
	if core.Sources, err = sources(cfg.Extractor); err != nil {
		return nil, err
	}
	a, err := headless.New(core)
	if err != nil {
		return nil, doorconfig.Named(door, err)
	}
	return &Middleware{Authenticator: a, cfg: cfg, contextKey: cfg.ContextKey}, nil
}

func (m *Middleware) auth() *headless.Authenticator { return m.Authenticator }

// door starts every error and panic of this package: its import path, so
// that a message tells it from Fiber v2's fiberauth.
const door = "fiberauth/v3"

// Handler is the fiber.Handler that requires a user (or, with
// Config.Optional, lets requests without a credential through). A cache hit
// allocates nothing.
func (m *Middleware) Handler(c fiber.Ctx) error { return m.serve(c, m.cfg.Optional) }

// Optional is Handler for routes open to anonymous requests: a request
// without a credential goes on with no user (UserFrom returns nil); a
// credential that allauth refuses still fails.
func (m *Middleware) Optional(c fiber.Ctx) error { return m.serve(c, true) }

func (m *Middleware) serve(c fiber.Ctx, optional bool) error {
	if m.cfg.Next != nil && m.cfg.Next(c) {
		m.Skip()
		return c.Next()
	}
	r := requests.Get().(*request) //nolint:errcheck,forcetypeassert // the pool holds nothing else
	r.c = c
	res := m.Authenticate(r, optional)
	r.c = nil // Fiber reuses c for other requests: the pool must not keep it
	requests.Put(r)
	switch {
	case res.Err != nil:
		return m.cfg.ErrorHandler(c, res.Err)
	case res.Session == nil:
		return c.Next() // anonymous
	}
	// c.Locals(k, v) would allocate its variadic slice: set what it sets.
	// Locals are what c.Value reads, so UserFromContext(c) works; the
	// session also goes in c.Context() when the app asks for it, as
	// fiber.StoreInContext does.
	rc := c.RequestCtx()
	rc.SetUserValue(m.contextKey, &res.Session.User)
	rc.SetUserValue(sessionKey{}, res.Session)
	if m.passLocalsToContext(c.App()) {
		c.SetContext(context.WithValue(c.Context(), sessionKey{}, res.Session))
	}
	return m.cfg.SuccessHandler(c)
}

// appFlag caches an app's PassLocalsToContext: App.Config copies the whole
// config.
type appFlag struct {
	app  *fiber.App
	pass bool
}

func (m *Middleware) passLocalsToContext(app *fiber.App) bool {
	if f := m.app.Load(); f != nil && f.app == app {
		return f.pass
	}
	f := &appFlag{app: app, pass: app.Config().PassLocalsToContext}
	m.app.Store(f)
	return f.pass
}

// request is a fiber.Ctx read as a headless.Request, without copying. It is
// pooled: an interface holding a fresh one per request would allocate.
type request struct{ c fiber.Ctx }

var requests = sync.Pool{New: func() any { return new(request) }}

func (r *request) Header(name string) ([]byte, int) {
	return fasthttpreq.Header(&r.c.Request().Header, name)
}

func (r *request) Cookie(name string) []byte {
	return fasthttpreq.LastCookie(&r.c.Request().Header, name)
}

// Context is c.Context() (what a tracer set with c.SetContext), not c: c is
// a context.Context only while the handler runs (Fiber then pools it for the
// next request), and a lookup may outlive the request that started it (the
// other requests waiting for the token get its answer). c's Done is nil
// anyway.
func (r *request) Context() context.Context { return r.c.Context() }

// sessionKey is the private key of the session in Locals.
type sessionKey struct{}

// SessionFrom returns the session the middleware stored for this request, or
// nil (anonymous, or the middleware did not run). The session is shared with
// the cache: read it, do not modify it. It stays valid after the handler
// returns.
func SessionFrom(c fiber.Ctx) *introspect.Session {
	s, _ := c.Locals(sessionKey{}).(*introspect.Session)
	return s
}

// UserFrom returns the authenticated user of this request, or nil. Like the
// session, it is shared with the cache and must not be modified.
func UserFrom(c fiber.Ctx) *introspect.User {
	if s := SessionFrom(c); s != nil {
		return &s.User
	}
	return nil
}

// UserFromContext returns the user in ctx, or nil: ctx is c itself or a
// context derived from it while the handler runs, c.Context() (and what
// derives from it) when the app sets fiber.Config.PassLocalsToContext (an
// allocation per request), or a context made by headless.NewContext.
func UserFromContext(ctx context.Context) *introspect.User {
	if s, ok := ctx.Value(sessionKey{}).(*introspect.Session); ok && s != nil {
		return &s.User
	}
	return headless.UserFromContext(ctx)
}

// DefaultErrorHandler answers in allauth's JSON envelope (headless.Error's
// Body, with its Header: Cache-Control: no-store, Retry-After on 503,
// WWW-Authenticate on 401 for a Bearer source). An error that is not a
// *headless.Error is a 500 without its text.
func DefaultErrorHandler(c fiber.Ctx, err error) error {
	e := headless.ErrorFrom(err)
	e.Header(c.Set)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Status(e.Status).Send(e.Body())
}

// AppErrorHandler hands the failure to the app's own fiber ErrorHandler as a
// *fiber.Error (status and message), after setting Cache-Control: no-store
// and the Retry-After and WWW-Authenticate headers. An error that is not a
// *headless.Error is returned as is.
func AppErrorHandler(c fiber.Ctx, err error) error {
	var e *headless.Error
	if !errors.As(err, &e) {
		return err
	}
	e.Header(c.Set)
	return fiber.NewError(e.Status, e.Message)
}

// EvictHandler is headless.EvictHandler (the eviction webhook Django calls
// when sessions end; see it for its use and the body it reads) as a
// fiber.Handler, evicting from the caches of m and more. Route it before
// app.Use(m.Handler): it carries no user credential. Its error, starting
// "fiberauth/v3: ", says the Secret is shorter than 32 bytes.
func EvictHandler(cfg headless.EvictConfig, m *Middleware, more ...*Middleware) (fiber.Handler, error) {
	h, err := doorconfig.EvictHandler(door, cfg, (*Middleware).auth, m, more)
	if err != nil {
		return nil, err
	}
	return adaptor.HTTPHandler(fasthttpreq.Detached(h)), nil
}

// Ready is the readiness check (see headless.Authenticator.Ready, which it
// wraps) as a fiber.Handler:
//
//	app.Get("/readyz", m.Ready()) // before app.Use(m.Handler), or skipped by Next
func (m *Middleware) Ready(config ...headless.ReadyConfig) fiber.Handler {
	return adaptor.HTTPHandler(fasthttpreq.Detached(m.Authenticator.Ready(config...)))
}
