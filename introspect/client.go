package introspect

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-resty/resty/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/allauthgo/headless/internal/credential"
	v "github.com/allauthgo/headless/internal/version"
)

// version is this library's version, sent in the User-Agent.
const version = v.Version

// Defaults for [Config].
const (
	defaultMount               = "/_allauth"
	defaultCookieName          = "sessionid"
	DefaultTimeout             = 2 * time.Second
	defaultMaxBodyBytes        = 1 << 20
	defaultMaxCredentialBytes  = credential.MaxBytes
	defaultMaxIdleConnsPerHost = 256
	defaultUserAgent           = "allauthgo-headless/" + version + " (+https://github.com/allauthgo/headless)"
)

// Config says where allauth is and how to talk to it. Only BaseURL is
// required.
type Config struct {
	// BaseURL is the Django origin, e.g. "https://auth.internal:8000". It
	// must be http or https with a host, and may carry a path prefix.
	BaseURL string
	// Mount is where the Django project includes allauth.headless.urls.
	// Default "/_allauth".
	Mount string
	// CookieName is Django's SESSION_COOKIE_NAME. Default "sessionid".
	CookieName string
	// Timeout bounds one lookup, including a retry; a sooner deadline on the
	// caller's context wins. Default 2s.
	Timeout time.Duration
	// HTTPClient, if set, is used as is (its Transport, its TLS settings).
	// Its own Timeout is replaced by Timeout.
	HTTPClient *http.Client
	// RootCAs, if set, are the CAs trusted for an https BaseURL (internal
	// TLS). Ignored when HTTPClient is set.
	RootCAs *x509.CertPool
	// MaxIdleConnsPerHost sizes the connection pool to allauth. Go's default
	// of 2 collapses into constant reconnects under load. Default 256.
	// Ignored when HTTPClient is set.
	MaxIdleConnsPerHost int
	// MaxBodyBytes bounds allauth's answer; a longer one is an
	// [*UpstreamError]. Default 1 MiB.
	MaxBodyBytes int
	// MaxCredentialBytes bounds a credential; a longer one is rejected
	// without a request, as allauth answers a malformed one (see
	// [Client.Session]). Default 4 KiB.
	MaxCredentialBytes int
	// UserAgent is sent with every request. Default names this library and
	// its version.
	UserAgent string
	// MaxConcurrentLookups bounds the session lookups in flight at allauth.
	// A lookup beyond it waits for a slot within its own deadline (Timeout
	// or the caller's), then fails with an [*UpstreamError] wrapping
	// [ErrTooManyLookups], without a request. Default 64; a negative value
	// means unlimited. Default 64.
	MaxConcurrentLookups int
	// Breaker tunes the circuit breaker that fails lookups at once while
	// allauth keeps failing. The zero value is on with the defaults (at
	// least 5 failures and half of the lookups within 10 s, 1 s cool-down,
	// then a ping); see [BreakerConfig].
	Breaker BreakerConfig
}

// Client asks allauth about credentials. It is safe for concurrent use; one
// per process (per allauth) is the norm, since it holds a connection pool.
type Client struct {
	http        *resty.Client
	transport   *http.Transport // ours to close; nil when the caller gave an HTTPClient
	appURL      string
	browserURL  string
	cookieName  string
	timeout     time.Duration
	maxCredLen  int
	maxBodySize int

	// Overload protection (protect.go).
	slots          chan struct{} // a lookup slot each; nil when unlimited
	breaker        *breaker      // nil when off
	inFlight       atomic.Int64
	waiting        atomic.Int64
	slotRejections atomic.Uint64
}

// New checks cfg and returns a Client. It returns an error, and no Client,
// when BaseURL is missing or not an absolute http(s) URL, or when Mount or
// CookieName are unusable.
func New(cfg Config) (*Client, error) {
	base, err := parseBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	mount := cfg.Mount
	if mount == "" {
		mount = defaultMount
	}
	if !strings.HasPrefix(mount, "/") || strings.ContainsAny(mount, "?#") {
		return nil, fmt.Errorf("introspect: Mount %q must be a path starting with /", mount)
	}
	mount = strings.TrimRight(mount, "/")
	c := &Client{
		appURL:      base + mount + "/app/v1/auth/session",
		browserURL:  base + mount + "/browser/v1/auth/session",
		cookieName:  orDefault(cfg.CookieName, defaultCookieName),
		maxCredLen:  orDefaultInt(cfg.MaxCredentialBytes, defaultMaxCredentialBytes),
		maxBodySize: orDefaultInt(cfg.MaxBodyBytes, defaultMaxBodyBytes),
	}
	if !validCookieName(c.cookieName) {
		return nil, fmt.Errorf("introspect: CookieName %q is not a valid cookie name", c.cookieName)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	c.timeout = timeout
	if n := cfg.MaxConcurrentLookups; n >= 0 {
		c.slots = make(chan struct{}, orDefaultInt(n, defaultMaxConcurrentLookups))
	}
	c.breaker = newBreaker(cfg.Breaker)

	hc := cfg.HTTPClient
	if hc == nil {
		c.transport = newTransport(cfg)
		hc = &http.Client{Transport: c.transport}
	} else {
		copied := *hc // never change the caller's client
		// A cookie jar would send cookies allauth set for one caller along
		// with the next caller's credential (Django keeps the last of two
		// sessionid cookies): each lookup must carry only its own.
		copied.Jar = nil
		hc = &copied
	}
	hc.CheckRedirect = noRedirects

	c.http = resty.NewWithClient(hc).
		SetTimeout(timeout).
		SetLogger(discardLogger{}).
		SetHeader("User-Agent", orDefault(cfg.UserAgent, defaultUserAgent)).
		SetHeader("Accept", "application/json").
		SetResponseBodyLimit(c.maxBodySize).
		// One retry, and only when the connection failed before a byte of
		// the request was sent: nothing can have been half-processed.
		SetRetryCount(1).
		SetRetryWaitTime(5 * time.Millisecond).
		SetRetryMaxWaitTime(20 * time.Millisecond).
		AddRetryCondition(func(_ *resty.Response, err error) bool { return isDialError(err) })
	return c, nil
}

// Endpoint returns the URL that answers for credentials of kind k. Caches use
// it so that answers of different allauth servers never mix.
func (c *Client) Endpoint(k Kind) string {
	if k == Cookie {
		return c.browserURL
	}
	return c.appURL
}

// Session asks allauth who holds cred.
//
// It returns a Session only for a well-formed 200 that says the user is
// authenticated. A missing or malformed credential is answered without a
// request, as allauth would answer it: an empty or blank one as no
// credential ([ErrUnauthenticated]), one longer than Config.MaxCredentialBytes or
// holding bytes outside visible ASCII as an unknown one ([ErrSessionGone]
// for a session token, [ErrUnauthenticated] for a Bearer token or a
// cookie). allauth's own
// 401 and 410 are an [*AuthError] matching [ErrUnauthenticated] or
// [ErrSessionGone]; every other failure, including the caller's context
// ending, is an [*UpstreamError]. So is a lookup refused without a request
// by the overload protections: no free slot before the deadline
// ([ErrTooManyLookups]) or an open circuit breaker ([ErrBreakerOpen]).
//
// The request carries the W3C trace context (traceparent, tracestate) of the
// span in ctx, if any, and whatever OpenTelemetry's global propagator adds,
// so that a Django project instrumented with OpenTelemetry shows its side of
// the same trace.
func (c *Client) Session(ctx context.Context, cred Credential) (*Session, error) {
	if err := checkCredential(cred, c.maxCredLen); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, &UpstreamError{Reason: "caller gave up", Err: err}
	}
	if cred.Kind != SessionToken && cred.Kind != Bearer && cred.Kind != Cookie {
		return nil, fmt.Errorf("introspect: unknown credential kind %d", cred.Kind)
	}

	// http.Client.Timeout restarts with every attempt; this deadline makes
	// Timeout bound the whole lookup (the wait for a slot and the retry
	// after a dial error included).
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	done, err := c.admit(parent, ctx, cred.Kind)
	if err != nil {
		return nil, err
	}
	s, err := c.lookup(ctx, cred)
	done(classify(parent, err))
	return s, err
}

// lookup makes the request for Session.
func (c *Client) lookup(ctx context.Context, cred Credential) (*Session, error) {
	token := trimSpace(cred.Token)
	req := c.http.R().SetContext(ctx)
	switch cred.Kind {
	case SessionToken:
		req.SetHeader("X-Session-Token", token)
	case Bearer:
		req.SetHeader("Authorization", "Bearer "+token)
	case Cookie:
		// The token holds only cookie-octets (checked above), so it cannot
		// smuggle a second cookie in.
		req.SetHeader("Cookie", c.cookieName+"="+token)
	default:
		return nil, fmt.Errorf("introspect: unknown credential kind %d", cred.Kind)
	}
	propagate(ctx, req.Header)

	resp, err := req.Get(c.Endpoint(cred.Kind))
	if err != nil {
		return nil, transportError(resp, err)
	}
	status := resp.StatusCode()
	switch status {
	case http.StatusOK, http.StatusUnauthorized, http.StatusGone:
		return decodeAnswer(status, resp.Body())
	default: // 429, 5xx, a proxy's 400 or 404: nothing said about the credential
		return nil, &UpstreamError{
			Status:     status,
			Reason:     "unexpected status",
			URL:        c.Endpoint(cred.Kind),
			RetryAfter: parseRetryAfter(resp.Header().Get("Retry-After"), time.Now()),
		}
	}
}

// traceContext is W3C Trace Context: traceparent and tracestate.
var traceContext propagation.TraceContext

// propagate writes the trace context of ctx's span into h, so that an
// allauth instrumented with OpenTelemetry continues the caller's trace: W3C
// traceparent (and tracestate) always, then whatever the app's global
// propagator (otel.SetTextMapPropagator) adds, e.g. baggage or B3. Without a
// valid span context in ctx it writes nothing W3C; the global propagator
// writes nothing unless the app set one.
func propagate(ctx context.Context, h http.Header) {
	carrier := propagation.HeaderCarrier(h)
	traceContext.Inject(ctx, carrier)
	otel.GetTextMapPropagator().Inject(ctx, carrier)
}

// CloseIdleConnections closes the idle connections of the pool this Client
// made. Call it when shutting down; a Client built on a caller's HTTPClient
// leaves that client alone.
func (c *Client) CloseIdleConnections() {
	if c.transport != nil {
		c.transport.CloseIdleConnections()
	}
}

func transportError(resp *resty.Response, err error) error {
	status := 0
	if resp != nil && resp.RawResponse != nil {
		status = resp.StatusCode()
	}
	reason := "request failed"
	if errors.Is(err, resty.ErrResponseBodyTooLarge) {
		reason = "body over the size limit"
	}
	return &UpstreamError{Status: status, Reason: reason, Err: err}
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func newTransport(cfg Config) *http.Transport {
	perHost := orDefaultInt(cfg.MaxIdleConnsPerHost, defaultMaxIdleConnsPerHost)
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		Proxy:                  nil, // allauth sits beside us; never route session checks through an env proxy
		DialContext:            dialer.DialContext,
		MaxIdleConns:           perHost,
		MaxIdleConnsPerHost:    perHost,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    5 * time.Second,
		ExpectContinueTimeout:  time.Second,
		ForceAttemptHTTP2:      true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	if cfg.RootCAs != nil {
		t.TLSClientConfig = &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12}
	}
	return t
}

func parseBaseURL(raw string) (string, error) {
	if raw == "" {
		return "", errors.New("introspect: BaseURL is required (the Django origin, e.g. http://127.0.0.1:8000)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("introspect: BaseURL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("introspect: BaseURL %q must be http or https", raw)
	}
	if u.Host == "" {
		return "", fmt.Errorf("introspect: BaseURL %q has no host", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("introspect: BaseURL %q must be an origin with an optional path, no user info, query or fragment", u.Redacted())
	}
	return strings.TrimRight(u.Scheme+"://"+u.Host+u.EscapedPath(), "/"), nil
}

func validCookieName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		if b <= 0x20 || b >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", b) >= 0 {
			return false
		}
	}
	return true
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

func orDefaultInt(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}

// discardLogger keeps resty quiet: it would otherwise print to stderr, and
// errors are returned to the caller anyway.
type discardLogger struct{}

func (discardLogger) Errorf(string, ...any) {}
func (discardLogger) Warnf(string, ...any)  {}
func (discardLogger) Debugf(string, ...any) {}
