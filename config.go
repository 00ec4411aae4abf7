package headless

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/allauthgo/headless/internal/cache"
	"github.com/allauthgo/headless/introspect"
)

// Config configures an Authenticator. Only BaseURL is required; every other
// field has a working default. The front doors (fiberauth, fiberauth/v3,
// httpauth) carry the same fields in their own Config, with the same
// meaning.
type Config struct {
	// BaseURL is the Django origin that serves allauth, e.g.
	// "http://127.0.0.1:8000".
	BaseURL string

	// Mount is where the Django project includes allauth.headless.urls.
	//
	// Optional. Default: "/_allauth"
	Mount string

	// Sources are where a request's credential is looked for, in order;
	// the first that holds a non-blank value is the credential (see
	// FromHeader, FromAuthHeader and FromCookie).
	//
	// Optional. Default: FromHeader("X-Session-Token")
	Sources []Source

	// Timeout bounds one lookup at allauth, a retry included.
	//
	// Optional. Default: 2 * time.Second
	Timeout time.Duration

	// MaxConcurrentLookups bounds the lookups in flight at allauth (cache
	// misses; concurrent misses for one token share one). A miss beyond it
	// waits for a slot within Timeout, then gets 503 with Retry-After.
	// Cache hits never wait. A negative value means unlimited.
	//
	// Optional. Default: 64
	MaxConcurrentLookups int

	// Breaker tunes the circuit breaker in front of allauth: when at least
	// 5 lookups within 10 s failed (no answer, refused, 429, 5xx, not
	// allauth's JSON; never a 401 or 410) and they are at least half of
	// them, the breaker pings allauth without a credential; only if allauth
	// does not answer that either do misses answer at once for a 1 s
	// cool-down (stale under StaleIfError, else 503 with Retry-After = the
	// cool-down left), after which a ping allauth answers closes it. So
	// one client's failing tokens never open it. Breaker.Disabled turns it
	// off. See introspect.BreakerConfig.
	//
	// Optional. Default: on, 5 failures and half the lookups within 10 s, 1 * time.Second cool-down
	Breaker introspect.BreakerConfig

	// CacheTTL is how long an authenticated answer is served without asking
	// allauth again: the longest a logout elsewhere goes unnoticed unless the
	// token is evicted.
	//
	// Optional. Default: 30 * time.Second
	CacheTTL time.Duration

	// NegativeTTL is how long allauth's 401 or 410 is served. A negative
	// value turns negative caching off.
	//
	// Optional. Default: 5 * time.Second
	NegativeTTL time.Duration

	// MaxEntries bounds the in-process cache (authenticated and negative
	// answers, each), with or without Storage.
	//
	// Optional. Default: 100000
	MaxEntries int

	// Storage is a cache shared by several instances (e.g.
	// gofiber/storage/redis/v3, or any Fiber v2 or v3 Storage), kept behind
	// the in-process cache: an in-process miss reads it, a miss there asks
	// allauth and writes both. With gofiber/storage's Redis driver, Evict,
	// EvictUser and the webhook reach every instance's in-process cache at
	// once (Redis pub/sub); otherwise, or while that subscription is down,
	// within Recheck. The Authenticator does not close it.
	//
	// Optional. Default: nil (in process only)
	Storage Storage

	// Prefix is put before every key written to Storage. Set one per
	// deployment when two deployments (staging and production, say) share a
	// Redis and reach their allauth by the same URL: they would otherwise
	// serve each other's sessions.
	//
	// Optional. Default: "allauthgo:"
	Prefix string

	// StorageSecret authenticates every value written to Storage together
	// with its key (HMAC-SHA256; at least 16 bytes, e.g. 32 random bytes
	// shared by the instances). Without it, whoever can write to the Redis
	// can log in as anyone; with it, a planted, tampered or moved value is a
	// miss, never a login.
	//
	// Optional. Default: nil (values are not authenticated)
	StorageSecret []byte

	// StoreTimeout bounds every Storage operation (a read, a write, a
	// delete, an eviction's announcement), whatever the driver's own
	// timeouts: past it the operation counts as failed and allauth is asked
	// instead. A miss waits at most about two of these for Storage. Raise it
	// for a Redis whose round trip comes near it (another zone, TLS); zero
	// or negative means the default.
	//
	// Optional. Default: 50 * time.Millisecond
	StoreTimeout time.Duration

	// Recheck bounds how long an instance serves its in-process copy of a
	// shared answer without Storage vouching for it: how late an eviction on
	// another instance is seen when Redis pub/sub is not there (another
	// Storage) or is down. An instance reads Storage at most once per token
	// per Recheck.
	//
	// Optional. Default: 1 * time.Second
	Recheck time.Duration

	// StaleIfError lets a session that expired less than this long ago be
	// served while allauth fails (never after a 401 or 410).
	//
	// Optional. Default: 0 (off)
	StaleIfError time.Duration

	// RefreshAhead is how long before a cached session expires a request
	// that uses it starts a background lookup at allauth, answered from the
	// cache meanwhile: a session in use never waits for allauth. It costs
	// allauth at most CacheTTL/(CacheTTL-RefreshAhead) lookups per token per
	// CacheTTL (1.25 by default) instead of one, and only for tokens in use
	// then. Refreshes take at most half of MaxConcurrentLookups, never run
	// while the breaker is open, and never extend what allauth said: the
	// longest a logout goes unnoticed without an eviction stays CacheTTL.
	// A negative value turns it off.
	//
	// Optional. Default: CacheTTL / 5
	RefreshAhead time.Duration

	// UserIndex keeps a user → cache keys index, so that EvictUser (and
	// "user_ids" sent to the eviction webhook) can drop every cached session
	// of one user. It costs nothing on a cache hit; each authenticated
	// answer stored costs an index update (with Storage: one read and one
	// write there). It keeps at most MaxKeysPerUser keys per user.
	//
	// Optional. Default: false
	UserIndex bool

	// JWT verifies the access tokens of allauth's JWT token strategy in
	// process: every Bearer value is checked against these keys (see
	// introspect.JWTConfig) and, if a valid access token, authenticates with
	// no call to allauth; the user then has ID = sub and the token's Claims.
	// The answer is kept in process until the earlier of its exp and
	// CacheTTL, so a repeat skips the signature check. Any other Bearer
	// value (bad signature, expired, a refresh token, or no JWT at all, e.g.
	// "header.payload." or four segments) is a 401 with WWW-Authenticate,
	// also without a call: under allauth's JWT strategy it can never be
	// valid. Session tokens and cookies are asked of allauth as before.
	// Needs a FromAuthHeader source. A logout is only noticed at the
	// token's exp unless JWTStateful is on.
	//
	// Optional. Default: nil (every Bearer token is asked of allauth)
	JWT *introspect.JWTConfig

	// JWTStateful also asks allauth about every JWT that verified, as
	// allauth's HEADLESS_JWT_STATEFUL_VALIDATION_ENABLED does for its own
	// endpoints, through the cache (never kept past the token's exp): a
	// logout then ends the token within CacheTTL instead of at its exp (300
	// s by default). The trade: a cache miss costs a call to allauth (which
	// checks a JWT slowly, about 128 ms), allauth being down means 503s (or
	// StaleIfError) instead of local answers, and the user is allauth's
	// (username, email...) with the token's Claims added. Needs JWT.
	//
	// Optional. Default: false (signature and claims only)
	JWTStateful bool

	// Logger receives one line per failed lookup at allauth (never a
	// token; a short hash prefix correlates lines) and one per change of
	// the circuit breaker's state. Successful and cached lookups are not
	// logged. A failed lookup's line is at level Warn:
	//
	//	msg="allauth lookup failed" kind=session_token key=<12 hex> status=502 class=5xx duration=3.1ms error="..."
	//
	// status is 0 and class "error" when allauth did not answer. Pass
	// slog.New(slog.DiscardHandler) to silence it.
	//
	// Optional. Default: slog.Default()
	Logger *slog.Logger

	// TracerProvider makes an OpenTelemetry span for each lookup at allauth
	// (a cache miss), "allauth.session_lookup", a child of the request's
	// span (its context), with the credential's kind, the outcome, the cache
	// tier that answered, coalesced or not, stale or not, allauth's status
	// and the breaker's state: never the token nor any hash of it. The
	// lookup sends the span's W3C trace context (traceparent) to allauth. A
	// cache hit starts no span and allocates nothing. See docs/tracing.md.
	//
	// Optional. Default: OpenTelemetry's global provider
	// (otel.GetTracerProvider()), asked at each lookup, so that a provider
	// the app sets after New is used. Without an SDK set up, spans are
	// no-ops: nothing on a cache hit, about half a microsecond on a miss
	// (next to allauth's round trip).
	TracerProvider trace.TracerProvider

	// now is the cache's clock, for the package's own tests (nil: the
	// cache's coarse clock).
	now func() time.Time
}

// defaultMount is Config.Mount's default, as introspect.New applies it.
const defaultMount = "/_allauth"

// HeaderSessionToken is the header allauth's app client sends.
const HeaderSessionToken = "X-Session-Token"

// withDefaults fills in the defaults.
func (cfg Config) withDefaults() Config {
	if len(cfg.Sources) == 0 {
		cfg.Sources = []Source{FromHeader(HeaderSessionToken)}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = cache.DefaultTTL
	}
	if cfg.NegativeTTL == 0 {
		cfg.NegativeTTL = cache.DefaultNegativeTTL
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = cache.DefaultMaxEntries
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg
}

// checkBaseURL refuses the BaseURL mistakes that introspect.New would let
// through or explain poorly, each with what to write instead: no scheme
// ("127.0.0.1:8000", which url.Parse reads as a path or as a scheme), and a
// URL that already holds allauth's mount or one of its endpoints, which
// would make every lookup a 404 at mount + mount + "/app/v1/...". Other
// faults (another scheme, no host, a query) are left to introspect.New.
func checkBaseURL(raw, mount string) error {
	if raw == "" {
		return errors.New("headless: Config.BaseURL (the Django origin, e.g. http://127.0.0.1:8000) is required")
	}
	if !strings.Contains(raw, "://") {
		if strings.Contains(raw, "@") { // user info: not to be echoed into logs
			return errors.New("headless: Config.BaseURL has no scheme: write http:// (or https:// when Django serves TLS) before the host")
		}
		return fmt.Errorf("headless: Config.BaseURL %q has no scheme: write %q (or https:// when Django serves TLS)", raw, "http://"+strings.TrimLeft(raw, "/"))
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil //nolint:nilerr // introspect.New says what is wrong with it
	}
	if mount == "" {
		mount = defaultMount
	}
	m := strings.TrimRight(mount, "/")
	p := strings.TrimRight(u.Path, "/")
	cut := -1
	switch {
	case m != "" && strings.HasSuffix(p, m):
		cut = len(p) - len(m)
	case m != "" && strings.Contains(p+"/", m+"/app/"):
		cut = strings.Index(p+"/", m+"/app/")
	case m != "" && strings.Contains(p+"/", m+"/browser/"):
		cut = strings.Index(p+"/", m+"/browser/")
	case strings.Contains(p+"/", "/app/v1/"):
		cut = strings.Index(p+"/", "/app/v1/")
	case strings.Contains(p+"/", "/browser/v1/"):
		cut = strings.Index(p+"/", "/browser/v1/")
	}
	if cut < 0 {
		return nil
	}
	origin := u.Scheme + "://" + u.Host + p[:cut]
	return fmt.Errorf("headless: Config.BaseURL %q holds allauth's own path: BaseURL is the Django origin (here %q) and Config.Mount is where the project includes allauth.headless.urls (%q); the middleware adds Mount and /app/v1/auth/session itself", u.Redacted(), origin, mount)
}

// warnUnauthenticatedStorage logs, once at New, that a Storage without a
// StorageSecret trusts whatever the shared store holds. It is a warning, not
// an error: a store only this service can write to is a fair choice, and an
// unset secret variable (StorageSecret: []byte(os.Getenv(...))) must not go
// unnoticed either.
func warnUnauthenticatedStorage(cfg Config) {
	if cfg.Storage == nil || len(cfg.StorageSecret) > 0 {
		return
	}
	cfg.Logger.Warn("allauthgo: Config.Storage without Config.StorageSecret: values in the shared store are not authenticated",
		"risk", "whoever can write to the store (e.g. the Redis) can plant an answer and be served as any user",
		"fix", "set StorageSecret to the same 32 random bytes on every instance (at least 16)")
}
