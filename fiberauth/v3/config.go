package fiberauth

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/gofiber/fiber/v3"
	"github.com/gofiber/fiber/v3/extractors"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/introspect"
)

// Config defines the config for the middleware. Only BaseURL is required;
// every other field has a working default. The fields between BaseURL and
// Logger are those of headless.Config, with the same meaning.
type Config struct {
	// Next defines a function to skip this middleware when it returns true.
	//
	// Optional. Default: nil
	Next func(c fiber.Ctx) bool

	// SuccessHandler runs after the user is stored.
	//
	// Optional. Default: func(c fiber.Ctx) error { return c.Next() }
	SuccessHandler fiber.Handler

	// ErrorHandler answers every failure. Its error is a *headless.Error.
	// To let the app's own fiber ErrorHandler answer instead, use
	// AppErrorHandler.
	//
	// Optional. Default: DefaultErrorHandler (allauth's JSON envelope)
	ErrorHandler fiber.ErrorHandler

	// Extractor says where the credential is: extractors.FromHeader(name)
	// (an app session token; FromHeader("Authorization") is
	// FromAuthHeader("Bearer")), extractors.FromAuthHeader(scheme) (a Bearer
	// token; the scheme is matched case-insensitively, another scheme is no
	// credential), extractors.FromCookie(name) (a browser session, checked on
	// allauth's browser endpoint), or extractors.Chain of these, tried in
	// order. It is translated at New into the core's sources, which read the
	// request as allauth would (a repeated header is refused, the last of two
	// cookies counts, a blank value is absent): its Extract function is never
	// called. New refuses FromQuery, FromForm and FromParam (a token in a URL
	// or form ends up in logs), FromCustom (its answer could not be checked as
	// allauth would check it) and FromAuthHeader("") (the raw header is no
	// token allauth knows).
	//
	// Optional. Default: extractors.FromHeader(headless.HeaderSessionToken)
	Extractor extractors.Extractor

	// BaseURL is the Django origin that serves allauth, e.g.
	// "http://127.0.0.1:8000". Required.
	BaseURL string

	// Mount is where the Django project includes allauth.headless.urls. See
	// headless.Config.Mount.
	//
	// Optional. Default: "/_allauth"
	Mount string

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

	// Logger receives one line per failed lookup at allauth (never a token)
	// and one per change of the circuit breaker's state. See
	// headless.Config.Logger.
	//
	// Optional. Default: slog.Default()
	Logger *slog.Logger

	// TracerProvider makes an OpenTelemetry span for each lookup at allauth, a
	// child of the request's span (in c.Context()), and sends its trace
	// context to allauth. A cache hit starts no span. See
	// headless.Config.TracerProvider.
	//
	// Optional. Default: OpenTelemetry's global provider
	// (otel.GetTracerProvider()), asked at each lookup, so that a provider
	// the app sets after New is used. Without an SDK set up, spans are
	// no-ops: nothing on a cache hit, about half a microsecond on a miss
	// (next to allauth's round trip).
	TracerProvider trace.TracerProvider

	// Optional lets a request without a credential through as anonymous
	// (UserFrom returns nil), as Middleware.Optional does. A credential that
	// allauth rejects still fails.
	//
	// Optional. Default: false
	Optional bool

	// ContextKey is the Locals key under which the *introspect.User is
	// stored.
	//
	// Optional. Default: "user"
	ContextKey string
}

// ConfigDefault is the default config.
var ConfigDefault = Config{
	SuccessHandler: func(c fiber.Ctx) error { return c.Next() },
	ErrorHandler:   DefaultErrorHandler,
	Extractor:      extractors.FromHeader(headless.HeaderSessionToken),
	ContextKey:     "user",
}

// configDefault fills in the door's defaults; headless.New fills in the
// core's.
func configDefault(config ...Config) Config {
	var cfg Config
	if len(config) > 0 {
		cfg = config[0]
	}
	if cfg.SuccessHandler == nil {
		cfg.SuccessHandler = ConfigDefault.SuccessHandler
	}
	if cfg.ErrorHandler == nil {
		cfg.ErrorHandler = ConfigDefault.ErrorHandler
	}
	if cfg.Extractor.Extract == nil && cfg.Extractor.Chain == nil && cfg.Extractor.Key == "" {
		cfg.Extractor = ConfigDefault.Extractor // the zero Extractor
	}
	if cfg.ContextKey == "" {
		cfg.ContextKey = ConfigDefault.ContextKey
	}
	return cfg
}

// sources translates an extractor (or a chain of them) into the core's
// sources, or says why it cannot be one. Only Source, Key, AuthScheme and
// Chain are read: the core reads the request itself, as allauth would.
func sources(e extractors.Extractor) ([]headless.Source, error) {
	if e.Chain != nil {
		if len(e.Chain) == 0 {
			return nil, errors.New("fiberauth/v3: Config.Extractor is an empty extractors.Chain: give it FromHeader, FromAuthHeader or FromCookie")
		}
		var out []headless.Source
		for _, x := range e.Chain {
			s, err := sources(x)
			if err != nil {
				return nil, err
			}
			out = append(out, s...)
		}
		return out, nil
	}
	key := strings.TrimSpace(e.Key)
	switch e.Source {
	case extractors.SourceHeader:
		return []headless.Source{headless.FromHeader(key)}, nil
	case extractors.SourceAuthHeader:
		if strings.TrimSpace(e.AuthScheme) == "" {
			return nil, errors.New(`fiberauth/v3: Config.Extractor: FromAuthHeader("") reads the raw Authorization header, which is no token allauth knows; use FromAuthHeader("Bearer")`)
		}
		return []headless.Source{headless.FromAuthHeader(e.AuthScheme)}, nil
	case extractors.SourceCookie:
		return []headless.Source{headless.FromCookie(key)}, nil
	case extractors.SourceQuery, extractors.SourceForm, extractors.SourceParam:
		return nil, fmt.Errorf("fiberauth/v3: Config.Extractor reads %q from the %s, which is not supported: a token in a URL or form ends up in logs; use a header or a cookie", key, sourceName(e.Source))
	case extractors.SourceCustom:
		return nil, fmt.Errorf("fiberauth/v3: Config.Extractor %q is a custom extractor, which is not supported: the middleware must read the credential as allauth would (a repeated header, the last of two cookies, its bytes); use FromHeader, FromAuthHeader or FromCookie", key)
	default:
		return nil, fmt.Errorf("fiberauth/v3: Config.Extractor has an unknown source %d", e.Source)
	}
}

func sourceName(s extractors.Source) string {
	switch s {
	case extractors.SourceQuery:
		return "query string"
	case extractors.SourceForm:
		return "form"
	case extractors.SourceParam:
		return "route parameters"
	default:
		return "request"
	}
}
