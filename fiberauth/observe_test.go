package fiberauth_test

import (
	"net/http"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/fiberauth"
)

// What the middleware counts and logs is the core's (root metrics_test.go);
// here, that reading a Fiber request keeps a hit free of allocations.

// Counting outcomes keeps a cache hit free of allocations.
func Test_Observe_HitAllocatesNothing(t *testing.T) {
	srv := newAllauth(t)
	m := newMiddleware(t, srv, fiberauth.Config{})
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(m.Handler)
	app.Get("/", func(c *fiber.Ctx) error { return c.SendStatus(http.StatusOK) })
	t.Cleanup(func() { _ = app.Shutdown() })
	h := app.Handler()
	fctx := &fasthttp.RequestCtx{}
	fctx.Request.Header.SetMethod(fiber.MethodGet)
	fctx.Request.SetRequestURI("/")
	fctx.Request.Header.Set(fiberauth.HeaderSessionToken, srv.IssueToken("alice"))
	h(fctx) // warm the cache
	if fctx.Response.StatusCode() != http.StatusOK {
		t.Fatalf("status %d", fctx.Response.StatusCode())
	}
	if n := testing.AllocsPerRun(1000, func() { h(fctx) }); n != 0 {
		t.Errorf("a cache hit allocates %v times", n)
	}
	if got := m.Metrics().Requests[headless.OutcomeAuthenticated]; got < 1001 {
		t.Errorf("authenticated = %d, want every request counted", got)
	}
}
