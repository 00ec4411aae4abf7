package fiberauth_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// Benchmark_Middleware measures what the middleware adds to a request, in
// Fiber's own style: a fasthttp.RequestCtx straight into app.Handler(). The
// bare case is the same app and handler without the middleware; compare
// /hit with /bare for the cost of a cache hit, and /redis-hit for the same
// hit with the cache in Redis.
//
//	go test -run '^$' -bench Benchmark_Middleware -benchmem -count 6 ./fiberauth/
func Benchmark_Middleware(b *testing.B) {
	srv := allauthtest.NewServer()
	defer srv.Close()
	srv.AddUser(allauthtest.User{Username: "alice", Email: "alice@example.com", Password: "alice-pass-123"})
	token := srv.IssueToken("alice")

	ok := func(c *fiber.Ctx) error { return c.SendStatus(fiber.StatusOK) }
	newApp := func(mw ...fiber.Handler) fasthttp.RequestHandler {
		app := fiber.New(fiber.Config{DisableStartupMessage: true})
		for _, h := range mw {
			app.Use(h)
		}
		app.Get("/", ok)
		return app.Handler()
	}
	request := func(tok string) *fasthttp.RequestCtx {
		fctx := &fasthttp.RequestCtx{}
		fctx.Request.Header.SetMethod(fiber.MethodGet)
		fctx.Request.SetRequestURI("/")
		fctx.Request.Header.Set(fiberauth.HeaderSessionToken, tok)
		return fctx
	}
	run := func(b *testing.B, h fasthttp.RequestHandler, fctx *fasthttp.RequestCtx) {
		b.Helper()
		h(fctx) // warm the cache
		if fctx.Response.StatusCode() != http.StatusOK {
			b.Fatalf("status %d: %s", fctx.Response.StatusCode(), fctx.Response.Body())
		}
		b.ReportAllocs()
		b.ResetTimer()
		for n := 0; n < b.N; n++ {
			h(fctx)
		}
	}

	b.Run("bare", func(b *testing.B) {
		run(b, newApp(), request(token))
	})

	b.Run("hit", func(b *testing.B) {
		m := must(fiberauth.NewMiddleware(fiberauth.Config{BaseURL: srv.URL}))
		defer func() { _ = m.Close() }()
		run(b, newApp(m.Handler), request(token))
	})

	// The hit with OpenTelemetry: the request carries a span that does not
	// record (sampled out), as an app's tracing middleware would put in
	// c.UserContext(); the middleware has an SDK TracerProvider (otel-sdk)
	// or the global default, a no-op (otel-off). A hit starts no span: both
	// must allocate nothing, as /hit.
	//
	//	go test -run '^$' -bench 'Benchmark_Middleware/hit-otel' -benchmem ./fiberauth/
	sampledOut := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, // TraceFlags 0: not sampled
	}))
	withSpan := func(c *fiber.Ctx) error { c.SetUserContext(sampledOut); return c.Next() }
	b.Run("hit-otel-sdk", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider() // samples every root span, parent-based otherwise
		defer func() { _ = tp.Shutdown(context.Background()) }()
		m := must(fiberauth.NewMiddleware(fiberauth.Config{BaseURL: srv.URL, TracerProvider: tp}))
		defer func() { _ = m.Close() }()
		run(b, newApp(withSpan, m.Handler), request(token))
	})
	b.Run("hit-otel-off", func(b *testing.B) {
		m := must(fiberauth.NewMiddleware(fiberauth.Config{BaseURL: srv.URL}))
		defer func() { _ = m.Close() }()
		run(b, newApp(withSpan, m.Handler), request(token))
	})

	// The same hit with the cache in Redis (Config.Storage): every request
	// is a GET to Redis (REDIS_ADDR, else a private redis-server). Compare
	// with /hit (in process) and Benchmark_MiddlewareJWT/rs256 (no cache).
	b.Run("redis-hit", func(b *testing.B) {
		m := must(fiberauth.NewMiddleware(fiberauth.Config{BaseURL: srv.URL, Storage: newRedis(b, ""), Logger: quietLogger()})) // quiet: no StorageSecret, as measured before
		defer func() { _ = m.Close() }()
		run(b, newApp(m.Handler), request(token))
		b.StopTimer()
		if s := m.Metrics().Cache; s.Fetches != 1 {
			b.Errorf("allauth asked %d times, want 1 (every other request a Redis hit)", s.Fetches)
		}
		if err := m.Evict(b.Context(), token); err != nil { // its one key, under the shared default prefix
			b.Error(err)
		}
	})

	b.Run("bare-parallel", func(b *testing.B) {
		h := newApp()
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			fctx := request(token)
			for pb.Next() {
				h(fctx)
			}
		})
	})

	// Each goroutine sends its own user's token, as real traffic does: the
	// cache is sharded by key, so different tokens do not contend.
	b.Run("hit-parallel", func(b *testing.B) {
		m := must(fiberauth.NewMiddleware(fiberauth.Config{BaseURL: srv.URL}))
		defer func() { _ = m.Close() }()
		h := newApp(m.Handler)
		tokens := make([]string, 64)
		for i := range tokens {
			tokens[i] = srv.IssueToken("alice")
			h(request(tokens[i]))
		}
		var next atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			fctx := request(tokens[int(next.Add(1)-1)%len(tokens)])
			for pb.Next() {
				h(fctx)
				if fctx.Response.StatusCode() != http.StatusOK {
					b.Errorf("status %d", fctx.Response.StatusCode())
					return
				}
			}
		})
	})

	// Every iteration is a cold key: 64 requests for one fresh token at once,
	// which must cost allauth one call. Reported per request.
	b.Run("miss-coalesced", func(b *testing.B) {
		m := must(fiberauth.NewMiddleware(fiberauth.Config{BaseURL: srv.URL, Timeout: 5 * time.Second}))
		defer func() { _ = m.Close() }()
		h := newApp(m.Handler)
		const burst = 64
		tokens := make([]string, b.N)
		for i := range tokens {
			tokens[i] = srv.IssueToken("alice")
		}
		srv.ResetCounters()
		var failed atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			done := make(chan struct{}, burst)
			for j := 0; j < burst; j++ {
				go func() {
					fctx := request(tokens[i])
					h(fctx)
					if fctx.Response.StatusCode() != http.StatusOK {
						failed.Add(1)
					}
					done <- struct{}{}
				}()
			}
			for j := 0; j < burst; j++ {
				<-done
			}
		}
		b.StopTimer()
		if failed.Load() != 0 {
			b.Fatalf("%d requests failed", failed.Load())
		}
		if calls := srv.SessionCalls(); calls != int64(b.N) {
			b.Fatalf("allauth saw %d calls for %d cold tokens", calls, b.N)
		}
		b.ReportMetric(float64(b.N*burst), "requests")
		b.ReportMetric(float64(srv.SessionCalls())/float64(b.N), "upstream-calls/token")
	})
}
