// Package fiberauth is Fiber v2 middleware that trusts a Django allauth
// headless login: it asks allauth (through a short-lived cache) who holds the
// request's session token, Bearer token or session cookie, and stores the
// user in c.Locals.
//
//	app.Use(fiberauth.New(fiberauth.Config{BaseURL: "http://127.0.0.1:8000"}))
//	app.Get("/api/me", func(c *fiber.Ctx) error {
//		return c.JSON(fiberauth.UserFrom(c))
//	})
//
// # The contract
//
//	allauth's answer / the request        the middleware
//	no credential                         401, or c.Next() anonymously when Optional
//	malformed or oversized credential     what allauth answers for it (410 for an app
//	                                      session token, 401 for a Bearer token or a
//	                                      cookie), without asking allauth
//	200, authenticated                    user in Locals (and in c.UserContext() when
//	                                      Config.UserContext), then c.Next()
//	401 (not authenticated, inactive,     401
//	pending flow)
//	410 (session gone)                    410: apps drop the token, as allauth's spec
//	                                      tells them
//	429, 5xx, timeout, refused, not       503 with Retry-After; never 401/410, so apps
//	allauth's JSON                        keep valid tokens
//
// Error bodies follow allauth's envelope, {"status": 401, "errors": [{"code":
// "...", "message": "..."}]}, with Cache-Control: no-store, and a
// WWW-Authenticate header (RFC 6750) on 401 when KeyLookup reads the
// Authorization header.
package fiberauth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/allauthgo/headless/cache"
	"github.com/allauthgo/headless/introspect"
)

// Middleware authenticates requests. Use its Handler with app.Use, its Evict
// to drop a token from the cache, and Close on shutdown. New is the short
// form for when only the handler is needed.
type Middleware struct {
	cfg         Config
	client      *introspect.Client
	ownClient   bool
	cache       *cache.Cache
	ownCache    bool
	sources     []source
	scheme      []byte
	maxCredLen  int
	contextKey  any // boxed once: boxing a string per request would allocate
	wantsBearer bool
	jwt         *introspect.JWTVerifier // nil: every Bearer token is asked of allauth
	obs         observer                // counters for Metrics and Ready; keep it last (see observer)
}

// New creates the middleware handler. It panics with a clear message when
// the config cannot work (no BaseURL or Client, a URL that is not http(s), a
// bad KeyLookup), as Fiber's own middleware does. Its cache (two small
// goroutines: a clock and a janitor) lives as long as the process; use
// NewMiddleware and Close where it must be stopped, as in tests.
func New(config ...Config) fiber.Handler {
	return NewMiddleware(config...).Handler
}

// NewMiddleware is New, returning the Middleware itself so that its cache can
// be reached (Evict, Stats) and its resources released (Close). It panics on
// a config that cannot work, like New.
func NewMiddleware(config ...Config) *Middleware {
	m, err := build(configDefault(config...))
	if err != nil {
		panic(err.Error())
	}
	return m
}

func build(cfg Config) (*Middleware, error) {
	m := &Middleware{cfg: cfg, client: cfg.Client, cache: cfg.Cache, contextKey: cfg.ContextKey}
	sources, err := parseKeyLookup(cfg.KeyLookup)
	if err != nil {
		return nil, err
	}
	m.sources = sources
	m.scheme = []byte(cfg.AuthScheme)
	cookieName := ""
	for _, s := range sources {
		if s.cookie {
			cookieName = s.name
		}
		if s.kind == introspect.Bearer {
			m.wantsBearer = true
		}
	}
	if m.jwt, err = buildJWT(cfg, m.wantsBearer); err != nil {
		return nil, err
	}
	if m.client == nil {
		if cfg.BaseURL == "" {
			return nil, errors.New("fiberauth: Config.BaseURL (the Django origin, e.g. http://127.0.0.1:8000) or Config.Client is required")
		}
		m.client, err = introspect.New(introspect.Config{
			BaseURL:    cfg.BaseURL,
			Mount:      cfg.Mount,
			CookieName: cookieName,
			Timeout:    cfg.Timeout,

			MaxConcurrentLookups: cfg.MaxConcurrentLookups,
			Breaker:              breakerConfig(cfg),
		})
		if err != nil {
			return nil, fmt.Errorf("fiberauth: %w", err)
		}
		m.ownClient = true
	}
	m.maxCredLen = m.client.MaxCredentialBytes()
	for i := range m.sources {
		m.sources[i].scope = cache.NewScope(m.sources[i].kind, m.client.Endpoint(m.sources[i].kind))
	}
	if m.cache == nil {
		if len(cfg.StorageSecret) > 0 && len(cfg.StorageSecret) < cache.MinSecretLen {
			return nil, fmt.Errorf("fiberauth: Config.StorageSecret must be at least %d bytes", cache.MinSecretLen)
		}
		if len(cfg.StorageSecret) > 0 && cfg.Storage == nil {
			return nil, errors.New("fiberauth: Config.StorageSecret needs Config.Storage")
		}
		var storage cache.Storage
		if cfg.Storage != nil {
			storage = cfg.Storage
		}
		m.cache = cache.New(cache.Config{
			TTL:          cfg.CacheTTL,
			NegativeTTL:  cfg.NegativeTTL,
			StaleIfError: cfg.StaleIfError,
			MaxEntries:   cfg.MaxEntries,
			Storage:      storage,
			Prefix:       cfg.Prefix,
			Secret:       cfg.StorageSecret,
			Recheck:      cfg.Recheck,
			Realm:        m.client.Endpoint(introspect.SessionToken),
			UserIndex:    cfg.UserIndex,
		})
		m.ownCache = true
	}
	return m, nil
}

// Handler is the fiber.Handler. A cache hit allocates nothing.
func (m *Middleware) Handler(c *fiber.Ctx) error {
	if m.cfg.Next != nil && m.cfg.Next(c) {
		m.count(OutcomeSkipped)
		return c.Next()
	}
	src, value, what := m.extract(c)
	switch what {
	case foundNone:
		if m.cfg.Optional {
			m.count(OutcomeAnonymous)
			return c.Next()
		}
		return m.fail(c, m.errNoCredential())
	case foundMalformed:
		return m.fail(c, m.rejection(src.kind, introspect.Rejection(src.kind)))
	case foundToken:
	}
	if src.kind == introspect.Bearer && m.jwt != nil {
		// Under allauth's JWT strategy no other Bearer value is valid.
		return m.authenticateJWT(c, src, value)
	}

	key := cache.NewKey(src.scope, value)
	// The store bounds its own wait; c.UserContext (a lookup in Locals) is
	// only worth its cost on a miss, where it can cut a wait short.
	r, ok := m.cache.Get(context.Background(), key)
	if !ok {
		r = m.load(c.UserContext(), src, key, value, time.Time{})
	}
	if r.Session == nil {
		return m.fail(c, m.outcomeError(src.kind, r.Err))
	}
	return m.succeed(c, r.Session)
}

// load asks allauth through the cache; notAfter, if not zero, caps how long
// the answer is kept (a JWT's exp). value aliases fasthttp's buffer: it is
// copied here, because the fetch may outlive this request (other requests for
// the same key may still be waiting on it).
func (m *Middleware) load(ctx context.Context, src *source, key cache.Key, value []byte, notAfter time.Time) cache.Result {
	cred := introspect.Credential{Kind: src.kind, Token: string(value)}
	return m.cache.Load(ctx, key, notAfter, func(ctx context.Context) (*introspect.Session, error) {
		return m.ask(ctx, src.kind, key, cred) // records and logs the lookup (observe.go)
	})
}

func (m *Middleware) succeed(c *fiber.Ctx, s *introspect.Session) error {
	m.count(OutcomeAuthenticated)
	c.Locals(m.contextKey, &s.User)
	c.Locals(sessionKey{}, s)
	if m.cfg.UserContext {
		c.SetUserContext(context.WithValue(c.UserContext(), sessionKey{}, s))
	}
	return m.cfg.SuccessHandler(c)
}

func (m *Middleware) fail(c *fiber.Ctx, e *Error) error {
	m.count(outcomeOf(e))
	return m.cfg.ErrorHandler(c, e)
}

// Evict drops a token from the cache, so that the next request carrying it
// asks allauth. A Django session key is dropped as an app session token and
// as a browser cookie alike (it is valid as both); a JWT as a Bearer token.
// Evicting a token nobody cached is fine. With a shared Storage the eviction
// reaches every instance.
func (m *Middleware) Evict(ctx context.Context, token string) error {
	var errs []error
	for _, kind := range []introspect.Kind{introspect.SessionToken, introspect.Cookie, introspect.Bearer} {
		key := cache.NewKey(cache.NewScope(kind, m.client.Endpoint(kind)), token)
		if err := m.cache.Delete(ctx, key); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Stats returns the cache's running totals.
func (m *Middleware) Stats() cache.Stats { return m.cache.Stats() }

// Client returns the allauth client in use.
func (m *Middleware) Client() *introspect.Client { return m.client }

// Close releases what the middleware made: the cache's goroutines and the
// client's idle connections. A Client, Cache or Storage passed in is left to
// its owner. Requests still in flight finish normally.
func (m *Middleware) Close() error {
	var err error
	if m.ownCache {
		err = m.cache.Close()
	}
	if m.ownClient {
		m.client.CloseIdleConnections()
	}
	return err
}
