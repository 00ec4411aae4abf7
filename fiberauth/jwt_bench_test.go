package fiberauth_test

import (
	"net/http"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// Benchmark_MiddlewareJWT is Benchmark_Middleware for allauth's JWT access
// tokens: a request with Authorization: Bearer <access token> verified in
// process (RS256 and HS256), and the stateful mode's cache hit; compare rs256
// with bare-rs256-token, the same request without the middleware. Compare
// allauth's own check of a Bearer token: about 128 ms.
//
//	go test -run '^$' -bench Benchmark_MiddlewareJWT -benchmem ./fiberauth/
func Benchmark_MiddlewareJWT(b *testing.B) {
	for _, bc := range []struct {
		name     string
		alg      string
		stateful bool
		bare     bool // the same request, without the middleware
	}{
		{"bare-rs256-token", "RS256", false, true},
		{"rs256", "RS256", false, false},
		{"hs256", "HS256", false, false},
		{"rs256-stateful-hit", "RS256", true, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv := newJWTAllauth(b, allauthtest.JWTConfig{Algorithm: bc.alg})
			m := newMiddleware(b, srv, fiberauth.Config{
				KeyLookup:   "header:Authorization",
				JWT:         &introspect.JWTConfig{PublicKey: srv.JWTPublicKeyPEM(), Secret: srv.JWTSecret()},
				JWTStateful: bc.stateful,
			})
			app := fiber.New(fiber.Config{DisableStartupMessage: true})
			if !bc.bare {
				app.Use(m.Handler)
			}
			app.Get("/", func(c *fiber.Ctx) error { return c.SendStatus(fiber.StatusOK) })
			h := app.Handler()
			access, _ := srv.IssueJWT("alice")
			fctx := &fasthttp.RequestCtx{}
			fctx.Request.Header.SetMethod(fiber.MethodGet)
			fctx.Request.SetRequestURI("/")
			fctx.Request.Header.Set(fiber.HeaderAuthorization, "Bearer "+access)
			h(fctx)
			if fctx.Response.StatusCode() != http.StatusOK {
				b.Fatalf("status %d: %s", fctx.Response.StatusCode(), fctx.Response.Body())
			}
			srv.ResetCounters()
			b.ReportAllocs()
			b.ResetTimer()
			for n := 0; n < b.N; n++ {
				h(fctx)
			}
			b.StopTimer()
			b.ReportMetric(float64(srv.SessionCalls()), "upstream-calls")
		})
	}
}
