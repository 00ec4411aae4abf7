package httpauth

import (
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/introspect"
)

// Config configures the middleware. Only BaseURL is required; every other
// field has a working default. The fields between BaseURL and Logger are
// those of headless.Config, with the same meaning (and the same as in
// fiberauth.Config).
type Config struct {
	// Next defines a function to skip this middleware when it returns true.
	//
	// Optional. Default: nil
	Next func(r *http.Request) bool

	// Sources are where a request's credential is looked for, in order;
	// the first that holds a non-blank value is the credential (see
	// headless.FromHeader, headless.FromAuthHeader and headless.FromCookie).
	//
	// Optional. Default: headless.FromHeader(headless.HeaderSessionToken)
	Sources []headless.Source

	// Optional lets a request without a credential through as anonymous
	// (UserFrom returns nil), as Middleware.Optional does. A credential that
	// allauth rejects still fails.
	//
	// Optional. Default: false
	Optional bool

	// ErrorHandler answers every failure. Its error is a *headless.Error
	// (see headless.ErrorFrom); it must write the answer and not call the
	// next handler.
	//
	// Optional. Default: DefaultErrorHandler (allauth's JSON envelope)
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)

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
	Storage headless.Storage

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
	// child of the request's span (in r.Context()), and sends its trace
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
