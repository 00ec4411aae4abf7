package fiberauth_test

import (
	"net/http"
	"testing"

	"github.com/gofiber/fiber/v3"
	"github.com/valyala/fasthttp"

	"github.com/allauthgo/headless"
	fiberauth "github.com/allauthgo/headless/fiberauth/v3"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// Benchmark_Middleware measures what the middleware adds to a request, in
// Fiber's own style: a fasthttp.RequestCtx straight into app.Handler(). The
// bare case is the same app and handler without the middleware; compare
// /hit with /bare for the cost of a cache hit.
//
//	go test -run '^$' -bench Benchmark_Middleware -benchmem -count 6 ./fiberauth/v3/
func Benchmark_Middleware(b *testing.B) {
	srv := allauthtest.NewServer()
	defer srv.Close()
	srv.AddUser(allauthtest.User{Username: "alice", Email: "alice@example.com", Password: "alice-pass-123"})
	token := srv.IssueToken("alice")

	ok := func(c fiber.Ctx) error { return c.SendStatus(fiber.StatusOK) }
	newApp := func(mw fiber.Handler) fasthttp.RequestHandler {
		app := fiber.New()
		if mw != nil {
			app.Use(mw)
		}
		app.Get("/", ok)
		return app.Handler()
	}
	request := func(tok string) *fasthttp.RequestCtx {
		fctx := &fasthttp.RequestCtx{}
		fctx.Request.Header.SetMethod(fiber.MethodGet)
		fctx.Request.SetRequestURI("/")
		fctx.Request.Header.Set(headless.HeaderSessionToken, tok)
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
		for b.Loop() {
			h(fctx)
		}
	}

	b.Run("bare", func(b *testing.B) {
		run(b, newApp(nil), request(token))
	})

	b.Run("hit", func(b *testing.B) {
		m := must(fiberauth.NewMiddleware(fiberauth.Config{BaseURL: srv.URL}))
		defer func() { _ = m.Close() }()
		run(b, newApp(m.Handler), request(token))
	})

	b.Run("hit-parallel", func(b *testing.B) {
		m := must(fiberauth.NewMiddleware(fiberauth.Config{BaseURL: srv.URL}))
		defer func() { _ = m.Close() }()
		h := newApp(m.Handler)
		h(request(token))
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			fctx := request(token)
			for pb.Next() {
				h(fctx)
			}
		})
	})
}
