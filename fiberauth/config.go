package fiberauth

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"go.opentelemetry.io/otel/trace"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/introspect"
)

// Config defines the config for the middleware. Only BaseURL is required;
// every other field has a working default. Its fields but Next, KeyLookup,
// AuthScheme, Optional, SuccessHandler, ErrorHandler, ContextKey and
// UserContext are those of headless.Config, with the same meaning.
type Config struct {
	// Next defines a function to skip this middleware when it returns true.
	//
	// Optional. Default: nil
	Next func(c *fiber.Ctx) bool

	// BaseURL is the Django origin that serves allauth, e.g.
	// "http://127.0.0.1:8000". Required.
	BaseURL string

	// Mount is where the Django project includes allauth.headless.urls. See
	// headless.Config.Mount.
	//
	// Optional. Default: "/_allauth"
	Mount string

	// KeyLookup is a comma-separated list of "<source>:<name>" tried in
	// order; the first that holds a non-blank value is the credential.
	// Sources: "header:X-Session-Token" (an app session token; any header name
	// but Authorization), "header:Authorization" (a Bearer token, see
	// AuthScheme) and "cookie:<name>" (a browser session cookie, checked on
	// allauth's browser endpoint). Query strings are not supported: a token in
	// a URL ends up in access logs.
	//
	// Optional. Default: "header:X-Session-Token"
	KeyLookup string

	// AuthScheme is the scheme expected in the Authorization header, matched
	// case-insensitively. Another scheme (e.g. Basic) is not a credential.
	//
	// Optional. Default: "Bearer"
	AuthScheme string

	// Timeout bounds one lookup at allauth, a retry and the wait for a slot
	// included. See headless.Config.Timeout.
	//
	// Optional. Default: 2 * time.Second
	Timeout time.Duration

	// MaxConcurrentLookups bounds the lookups in flight at allauth (cache
	// misses; concurrent misses for one token share one): a miss beyond it
	// waits for a slot within Timeout, then gets 503 with Retry-After.
	// Negative: unlimited. See headless.Config.MaxConcurrentLookups.
	//
	// Optional. Default: 64
	MaxConcurrentLookups int

	// Breaker tunes the circuit breaker in front of allauth: a rate of
	// failed lookups (never a 401 or 410) makes it ping allauth, and if
	// allauth does not answer the ping either it opens for a cool-down,
	// during which misses answer at once. Breaker.Disabled turns it off.
	// See headless.Config.Breaker.
	//
	// Optional. Default: on, 5 failures and half the lookups within 10 s, 1 * time.Second cool-down
	Breaker introspect.BreakerConfig

	// CacheTTL is how long an authenticated answer is served without asking
	// allauth again: the longest a logout elsewhere goes unnoticed unless the
	// token is evicted. See headless.Config.CacheTTL.
	//
	// Optional. Default: 30 * time.Second
	CacheTTL time.Duration

	// NegativeTTL is how long allauth's 401 or 410 is served. A negative value
	// turns negative caching off. See headless.Config.NegativeTTL.
	//
	// Optional. Default: 5 * time.Second
	NegativeTTL time.Duration

	// MaxEntries bounds the in-process cache (authenticated and negative
	// answers, each), with or without Storage. See headless.Config.MaxEntries.
	//
	// Optional. Default: 100000
	MaxEntries int

	// Storage is a cache shared by several instances (e.g.
	// gofiber/storage/redis/v3), behind the in-process one; with Redis,
	// evictions reach every instance at once (pub/sub). The middleware does
	// not close it. See headless.Config.Storage.
	//
	// Optional. Default: nil (in process only)
	Storage fiber.Storage

	// Prefix is put before every key written to Storage: set one per
	// deployment when two share a Redis and reach their allauth by the same
	// URL. See headless.Config.Prefix.
	//
	// Optional. Default: "allauthgo:"
	Prefix string

	// StorageSecret authenticates every value written to Storage with its key
	// (HMAC-SHA256, at least 16 bytes). Without it, whoever can write to the
	// Redis can log in as anyone. See headless.Config.StorageSecret.
	//
	// Optional. Default: nil (values are not authenticated)
	StorageSecret []byte

	// Recheck bounds how long an in-process copy of a shared answer is served
	// without Storage vouching for it, when Redis pub/sub is absent or down.
	// See headless.Config.Recheck.
	//
	// Optional. Default: 1 * time.Second
	Recheck time.Duration

	// RefreshAhead is how long before a cached session expires a request
	// that uses it starts a background refresh at allauth, served from the
	// cache meanwhile. Negative: off. See headless.Config.RefreshAhead.
	//
	// Optional. Default: CacheTTL / 5
	RefreshAhead time.Duration

	// StaleIfError serves a session that expired less than this long ago while
	// allauth fails (never after a 401 or 410). See
	// headless.Config.StaleIfError.
	//
	// Optional. Default: 0 (off)
	StaleIfError time.Duration

	// UserIndex keeps a user → cache keys index, so that EvictUser (and the
	// webhook's user_ids) drop every cached session of one user. See
	// headless.Config.UserIndex.
	//
	// Optional. Default: false
	UserIndex bool

	// JWT verifies allauth's JWT access tokens in process: a valid one
	// authenticates without allauth (and is cached until the earlier of its
	// exp and CacheTTL); any other Bearer value is a 401, also without
	// allauth. See headless.Config.JWT.
	//
	// Optional. Default: nil (every Bearer token is asked of allauth)
	JWT *introspect.JWTConfig

	// JWTStateful also asks allauth, through the cache, about every JWT that
	// verified, so that a logout bites within CacheTTL instead of at the
	// token's exp. Needs JWT. See headless.Config.JWTStateful.
	//
	// Optional. Default: false (signature and claims only)
	JWTStateful bool

	// Optional lets a request without a credential through as anonymous
	// (UserFrom returns nil), as Middleware.Optional does. A credential that
	// allauth rejects still fails.
	//
	// Optional. Default: false
	Optional bool

	// SuccessHandler runs after the user is stored.
	//
	// Optional. Default: func(c *fiber.Ctx) error { return c.Next() }
	SuccessHandler fiber.Handler

	// ErrorHandler answers every failure. Its error is an *Error. To let the
	// app's own fiber ErrorHandler answer instead, use AppErrorHandler.
	//
	// Optional. Default: DefaultErrorHandler (allauth's JSON envelope)
	ErrorHandler fiber.ErrorHandler

	// ContextKey is the Locals key under which the *introspect.User is
	// stored.
	//
	// Optional. Default: "user"
	ContextKey string

	// UserContext also stores the session in c.UserContext(), for code that
	// only gets a context.Context (see UserFromContext). It costs two
	// allocations per request, so it is off by default.
	//
	// Optional. Default: false
	UserContext bool

	// Logger receives one line per failed lookup at allauth (never a token)
	// and one per change of the circuit breaker's state. See
	// headless.Config.Logger.
	//
	// Optional. Default: slog.Default()
	Logger *slog.Logger

	// TracerProvider makes an OpenTelemetry span for each lookup at allauth, a
	// child of the request's span (c.UserContext()), and sends its trace
	// context to allauth. A cache hit starts no span. See
	// headless.Config.TracerProvider.
	//
	// Optional. Default: OpenTelemetry's global provider
	// (otel.GetTracerProvider()), asked at each lookup, so that a provider
	// the app sets after New is used. Without an SDK set up, spans are
	// no-ops: nothing on a cache hit, about half a microsecond on a miss
	// (next to allauth's round trip).
	TracerProvider trace.TracerProvider
}

// ConfigDefault is the default config.
var ConfigDefault = Config{
	Next:           nil,
	KeyLookup:      "header:" + HeaderSessionToken,
	AuthScheme:     "Bearer",
	Timeout:        headless.DefaultTimeout,
	CacheTTL:       headless.DefaultCacheTTL,
	NegativeTTL:    headless.DefaultNegativeTTL,
	MaxEntries:     headless.DefaultMaxEntries,
	Recheck:        headless.DefaultRecheck,
	SuccessHandler: func(c *fiber.Ctx) error { return c.Next() },
	ErrorHandler:   DefaultErrorHandler,
	ContextKey:     "user",
}

// HeaderSessionToken is the header allauth's app client sends.
const HeaderSessionToken = headless.HeaderSessionToken

// configDefault fills in the door's defaults; headless.New fills in the
// core's.
func configDefault(config ...Config) Config {
	var cfg Config
	if len(config) > 0 {
		cfg = config[0]
	}
	if cfg.KeyLookup == "" {
		cfg.KeyLookup = ConfigDefault.KeyLookup
	}
	if cfg.AuthScheme == "" {
		cfg.AuthScheme = ConfigDefault.AuthScheme
	}
	if cfg.SuccessHandler == nil {
		cfg.SuccessHandler = ConfigDefault.SuccessHandler
	}
	if cfg.ErrorHandler == nil {
		cfg.ErrorHandler = ConfigDefault.ErrorHandler
	}
	if cfg.ContextKey == "" {
		cfg.ContextKey = ConfigDefault.ContextKey
	}
	return cfg
}

// parseKeyLookup turns "header:X-Session-Token,cookie:sessionid" into
// sources, or says what is wrong with it.
func parseKeyLookup(lookup, scheme string) ([]headless.Source, error) {
	var out []headless.Source
	for _, part := range strings.Split(lookup, ",") {
		part = strings.TrimSpace(part)
		where, name, ok := strings.Cut(part, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("fiberauth: KeyLookup entry %q must be \"header:<name>\" or \"cookie:<name>\"", part)
		}
		switch strings.ToLower(strings.TrimSpace(where)) {
		case "header":
			if strings.EqualFold(name, fiber.HeaderAuthorization) {
				out = append(out, headless.FromAuthHeader(scheme))
			} else {
				out = append(out, headless.FromHeader(name))
			}
		case "cookie":
			out = append(out, headless.FromCookie(name))
		case "query", "param", "form":
			return nil, fmt.Errorf("fiberauth: KeyLookup source %q is not supported: a token in a URL or form ends up in logs; use a header or a cookie", where)
		default:
			return nil, fmt.Errorf("fiberauth: KeyLookup source %q is unknown; use header or cookie", where)
		}
	}
	return out, nil
}
