package fiberauth_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// lookupSpanName is the span of one lookup at allauth (docs/tracing.md).
const lookupSpanName = "allauth.session_lookup"

// tracer is an SDK TracerProvider whose ended spans a SpanRecorder keeps.
type tracer struct {
	tp  *sdktrace.TracerProvider
	rec *tracetest.SpanRecorder
}

func newTracer(tb testing.TB) *tracer {
	tb.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tb.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return &tracer{tp: tp, rec: rec}
}

// requestSpan is middleware that starts the request's span, as an app's
// OpenTelemetry middleware for Fiber v2 does, in c.UserContext().
func (tr *tracer) requestSpan(c *fiber.Ctx) error {
	ctx, span := tr.tp.Tracer("app").Start(c.UserContext(), "GET "+c.Path(), trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	c.SetUserContext(ctx)
	return c.Next()
}

// tracedApp is an app that starts each request's span, then runs mw.
func (tr *tracer) tracedApp(tb testing.TB, mw fiber.Handler) *fiber.App {
	tb.Helper()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(tr.requestSpan, mw)
	app.Get("/*", whoHandler)
	tb.Cleanup(func() { _ = app.Shutdown() })
	return app
}

// spans returns the ended spans named name.
func (tr *tracer) spans(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range tr.rec.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// lookups returns the ended lookup spans.
func (tr *tracer) lookups() []sdktrace.ReadOnlySpan { return tr.spans(lookupSpanName) }

// parentOf returns the ended span that is s's parent.
func (tr *tracer) parentOf(tb testing.TB, s sdktrace.ReadOnlySpan) sdktrace.ReadOnlySpan {
	tb.Helper()
	for _, p := range tr.rec.Ended() {
		if p.SpanContext().SpanID() == s.Parent().SpanID() && p.SpanContext().TraceID() == s.SpanContext().TraceID() {
			return p
		}
	}
	tb.Fatalf("span %s has no recorded parent (parent %v)", s.Name(), s.Parent())
	return nil
}

// traceparent is the W3C header that names s as the parent.
func traceparent(s sdktrace.ReadOnlySpan) string {
	sc := s.SpanContext()
	return fmt.Sprintf("00-%s-%s-%s", sc.TraceID(), sc.SpanID(), sc.TraceFlags())
}

// What the core traces is tested in the root package (tracing_test.go);
// here, that the middleware hands the core c.UserContext(), so that the
// lookup span is a child of the app's request span, and that a traced hit
// through Fiber allocates nothing.
func Test_Tracing_ParentFromUserContext(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	tr := newTracer(t)
	m := newMiddleware(t, srv, fiberauth.Config{TracerProvider: tr.tp})
	app := tr.tracedApp(t, m.Handler)
	tok := srv.IssueToken("alice")
	wantUser(t, do(t, app, withToken(tok)), "alice")
	wantUser(t, do(t, app, withToken(tok)), "alice")
	spans := tr.lookups()
	if len(spans) != 1 {
		t.Fatalf("%d lookup spans, want 1", len(spans))
	}
	if p := tr.parentOf(t, spans[0]); p.Name() != "GET /" || p.SpanKind() != trace.SpanKindServer {
		t.Errorf("parent %q (%v), want the request's span", p.Name(), p.SpanKind())
	}
	if got := srv.LastSessionHeader("traceparent"); got != traceparent(spans[0]) {
		t.Errorf("allauth got traceparent %q, want %q", got, traceparent(spans[0]))
	}
}

// A cache hit allocates nothing, with an SDK TracerProvider configured and
// the request's span not recording (sampled out), and with tracing off.
func Test_Tracing_HitAllocatesNothing(t *testing.T) {
	srv := newAllauth(t)
	tr := newTracer(t)
	sampledOut := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()), sdktrace.WithSpanProcessor(tr.rec))
	t.Cleanup(func() { _ = sampledOut.Shutdown(context.Background()) })
	tok := srv.IssueToken("alice")
	for name, tp := range map[string]trace.TracerProvider{"sdk, not sampled": sampledOut, "off (global default)": nil} {
		t.Run(name, func(t *testing.T) { hitAllocs(t, srv, tok, sampledOut, tp) })
	}
	if n := len(tr.rec.Ended()); n != 0 {
		t.Errorf("%d spans recorded by a provider that samples nothing", n)
	}
}

// hitAllocs checks that a hit allocates nothing through a middleware with
// tp, for a request whose span (of sampledOut) does not record.
func hitAllocs(t *testing.T, srv *allauthtest.Server, tok string, sampledOut, tp trace.TracerProvider) {
	t.Helper()
	m := newMiddleware(t, srv, fiberauth.Config{TracerProvider: tp})
	// The request carries a span that does not record, as an app's tracing
	// middleware would put in c.UserContext() for a request sampled out.
	ctx, span := sampledOut.Tracer("app").Start(context.Background(), "GET /")
	defer span.End()
	if span.IsRecording() {
		t.Fatal("the request's span records")
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	defer func() { _ = app.Shutdown() }()
	app.Use(func(c *fiber.Ctx) error { c.SetUserContext(ctx); return c.Next() }, m.Handler)
	app.Get("/", func(c *fiber.Ctx) error { return c.SendStatus(http.StatusOK) })
	h := app.Handler()
	fctx := directRequest(tok)
	h(fctx) // the miss
	if fctx.Response.StatusCode() != http.StatusOK {
		t.Fatalf("status %d", fctx.Response.StatusCode())
	}
	if n := testing.AllocsPerRun(200, func() { h(fctx) }); n != 0 {
		t.Errorf("a hit allocates %v times, want 0", n)
	}
}

// directRequest is a GET / with an X-Session-Token, to run straight
// through app.Handler().
func directRequest(tok string) *fasthttp.RequestCtx {
	fctx := &fasthttp.RequestCtx{}
	fctx.Request.Header.SetMethod(fiber.MethodGet)
	fctx.Request.SetRequestURI("/")
	fctx.Request.Header.Set(fiberauth.HeaderSessionToken, tok)
	return fctx
}
