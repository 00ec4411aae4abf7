package fiberauth_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/internal/testwait"
)

// A Redis-mode hit is an in-process hit: nothing allocated, no Redis call.
func Test_Redis_HitAllocatesNothing(t *testing.T) {
	prefix := redisPrefix(t)
	st := newRedis(t, prefix)
	srv := newAllauth(t)
	// Recheck is long so that the test's own pace (under -race, on a busy
	// machine) cannot make a hit a recheck.
	m := newMiddleware(t, srv, fiberauth.Config{Storage: st, Prefix: prefix, Recheck: time.Minute})
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(m.Handler)
	app.Get("/", func(c *fiber.Ctx) error { return c.SendStatus(http.StatusOK) })
	t.Cleanup(func() { _ = app.Shutdown() })
	h := app.Handler()
	fctx := &fasthttp.RequestCtx{}
	fctx.Request.Header.SetMethod(fiber.MethodGet)
	fctx.Request.SetRequestURI("/")
	fctx.Request.Header.Set(fiberauth.HeaderSessionToken, srv.IssueToken("alice"))
	h(fctx)
	if fctx.Response.StatusCode() != http.StatusOK {
		t.Fatalf("status %d", fctx.Response.StatusCode())
	}
	// AllocsPerRun counts every goroutine's allocations: let the bus's
	// subscription (a dial, a SUBSCRIBE) finish first, and run enough hits
	// that a stray background allocation cannot round up to one per hit.
	testwait.Until(t, time.Minute, "the bus subscribed", func() bool { return m.Metrics().Cache.Subscribed })
	before := m.Metrics().Cache.SharedReads
	if n := testing.AllocsPerRun(2000, func() { h(fctx) }); n != 0 {
		t.Errorf("a Redis-mode hit allocates %v times", n)
	}
	if s := m.Metrics().Cache; s.SharedReads-before > 1 {
		t.Errorf("%d shared reads for one token within Recheck", s.SharedReads-before)
	}
}
