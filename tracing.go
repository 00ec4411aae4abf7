package headless

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/allauthgo/headless/internal/allauth"
	"github.com/allauthgo/headless/internal/cache"
	"github.com/allauthgo/headless/internal/version"
	"github.com/allauthgo/headless/introspect"
)

// The span of a lookup (docs/tracing.md lists its attributes). A lookup is a
// cache miss: a cache hit starts no span, and so costs nothing.
const (
	// spanLookup names the span of one lookup at allauth.
	spanLookup = "allauth.session_lookup"
	// tracerName is the instrumentation scope of the spans.
	tracerName = "github.com/allauthgo/headless"
)

// Attribute keys. None holds the token or anything derived from it: a cache
// key (a hash of the token) is a credential to whoever can write the shared
// store.
const (
	attrCredential = attribute.Key("allauth.credential")    // session_token, bearer, cookie
	attrOutcome    = attribute.Key("allauth.outcome")       // authenticated, not_authenticated, session_gone, unavailable
	attrEndpoint   = attribute.Key("allauth.endpoint")      // the endpoint's path, e.g. /_allauth/app/v1/auth/session
	attrTier       = attribute.Key("allauth.cache.tier")    // the tier that answered: local, shared, or none (allauth was asked)
	attrCoalesced  = attribute.Key("allauth.coalesced")     // waited on another request's lookup
	attrStale      = attribute.Key("allauth.stale")         // an expired session served under StaleIfError
	attrBreaker    = attribute.Key("allauth.breaker.state") // closed, half_open, open, disabled (after the lookup)
	attrClass      = attribute.Key("allauth.status_class")  // 2xx, 4xx, 5xx, error (no answer); only on the span that made the call
	attrMethod     = attribute.Key("http.request.method")
	attrStatus     = attribute.Key("http.response.status_code")
	attrAddress    = attribute.Key("server.address")
	attrPort       = attribute.Key("server.port")
)

// The outcomes of a lookup (attrOutcome).
const (
	lookupAuthenticated    = "authenticated"
	lookupNotAuthenticated = "not_authenticated"
	lookupSessionGone      = "session_gone"
	lookupUnavailable      = "unavailable"
)

// tracerOptions are the options of the tracer.
var tracerOptions = []trace.TracerOption{trace.WithInstrumentationVersion(version.Version)}

// tracing is an Authenticator's tracer and the options every lookup span of a
// credential kind starts with, built once.
type tracing struct {
	tracer trace.Tracer                                   // Config.TracerProvider's, or nil for the global provider's
	start  [introspect.Cookie + 1][]trace.SpanStartOption // by kind
}

// newTracing gets the tracer from tp. Without one, each lookup asks
// OpenTelemetry's global provider: a provider the app sets (or replaces)
// after New is used from the next lookup on. (The global provider also
// delegates a tracer taken early to the provider set first, but not to one
// that replaces it.)
func newTracing(tp trace.TracerProvider, client *allauth.Client) tracing {
	var t tracing
	if tp != nil {
		t.tracer = tp.Tracer(tracerName, tracerOptions...)
	}
	for _, kind := range [...]introspect.Kind{introspect.SessionToken, introspect.Bearer, introspect.Cookie} {
		attrs := []attribute.KeyValue{attrCredential.String(kind.String())}
		if u, err := url.Parse(client.Endpoint(kind)); err == nil {
			attrs = append(attrs, attrEndpoint.String(u.EscapedPath()), attrAddress.String(u.Hostname()))
			port := u.Port()
			if port == "" {
				port = "80"
				if u.Scheme == "https" {
					port = "443"
				}
			}
			if n, err := strconv.Atoi(port); err == nil {
				attrs = append(attrs, attrPort.Int(n))
			}
		}
		t.start[kind] = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...)}
	}
	return t
}

// startLookup starts the span of a lookup, a child of the request's span in
// ctx, if any. The returned context carries it to the fetch (which runs on
// context.WithoutCancel of it, keeping its values) and so to allauth, as
// the W3C traceparent.
func (a *Authenticator) startLookup(ctx context.Context, kind introspect.Kind) (context.Context, trace.Span) {
	tracer := a.tracing.tracer
	if tracer == nil {
		tracer = otel.GetTracerProvider().Tracer(tracerName, tracerOptions...)
	}
	return tracer.Start(ctx, spanLookup, a.tracing.start[kind]...)
}

// endLookup ends a lookup's span with what the request got: the outcome,
// the tier that answered, coalesced or not, stale or not, and the breaker's
// state. A failed lookup (allauth unavailable, a stale session served in its
// place included) records its error and has status Error; allauth's own 401
// and 410 are answers, not failures.
func (a *Authenticator) endLookup(span trace.Span, res cache.Result) {
	defer span.End()
	if !span.IsRecording() {
		return
	}
	outcome, failure := lookupOutcome(res)
	span.SetAttributes(
		attrOutcome.String(outcome),
		attrTier.String(res.Tier.String()),
		attrCoalesced.Bool(res.Coalesced),
		attrStale.Bool(res.Stale),
		attrBreaker.String(breakerState(a.client.Protection())),
	)
	if failure != nil {
		span.RecordError(failure)
		span.SetStatus(codes.Error, failure.Error())
	}
}

// lookupOutcome names what a lookup answered, and its failure, if any.
func lookupOutcome(res cache.Result) (string, error) {
	var auth *introspect.AuthError
	switch {
	case res.Stale:
		return lookupUnavailable, res.Cause
	case res.Session != nil:
		return lookupAuthenticated, nil
	case errors.As(res.Err, &auth):
		if auth.Status == http.StatusGone {
			return lookupSessionGone, nil
		}
		return lookupNotAuthenticated, nil
	case res.Err == nil:
		return lookupUnavailable, errors.New("no answer")
	default:
		return lookupUnavailable, res.Err
	}
}

// breakerState is the breaker attribute's value.
func breakerState(p introspect.Protection) string {
	if p.BreakerDisabled {
		return "disabled"
	}
	return p.Breaker.String()
}

// traceCall adds what only the request that called allauth knows to its
// lookup span (in ctx): the HTTP status and its class. A lookup refused
// without a request (breaker open, no slot) adds nothing.
func traceCall(ctx context.Context, err error) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	status := http.StatusOK
	var auth *introspect.AuthError
	var up *introspect.UpstreamError
	switch {
	case err == nil:
	case refusedLocally(err):
		return
	case errors.As(err, &auth):
		if allauth.IsLocal(err) {
			return
		}
		status = auth.Status
	case errors.As(err, &up):
		status = up.Status
	default:
		return
	}
	attrs := []attribute.KeyValue{attrMethod.String(http.MethodGet), attrClass.String(ClassOf(status).String())}
	if status != 0 {
		attrs = append(attrs, attrStatus.Int(status))
	}
	span.SetAttributes(attrs...)
}
