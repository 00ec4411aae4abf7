package fiberauth_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/internal/testwait"
)

// waitSubscribed waits until each middleware hears evictions from the others.
func waitSubscribed(tb testing.TB, ms ...*fiberauth.Middleware) {
	tb.Helper()
	for _, m := range ms {
		testwait.Until(tb, 5*time.Second, "the eviction subscription", func() bool { return m.Metrics().Cache.Subscribed })
	}
}

// waitHeard waits until m has applied n eviction messages from other
// instances, so that a test goes on only once an eviction has reached it.
func waitHeard(tb testing.TB, m *fiberauth.Middleware, n int64) {
	tb.Helper()
	testwait.Until(tb, 5*time.Second, fmt.Sprintf("%d eviction messages heard", n), func() bool { return m.Metrics().Cache.EvictionsHeard >= n })
}

// waitStatus repeats req until app answers want, failing after 2 s: far
// less than the Recheck of the tests that use it, so only an eviction
// message can explain the change.
func waitStatus(tb testing.TB, app *fiber.App, req func() *http.Request, want int) {
	tb.Helper()
	testwait.Until(tb, 2*time.Second, fmt.Sprintf("the answer %d", want), func() bool { return do(tb, app, req()).Status == want })
}

// Two instances on one Redis: the second learns a login from the shared tier
// (no call to allauth), then answers from its own process; Evict and
// EvictUser on one instance reach the other's in-process tier by pub/sub,
// long before Recheck.
func Test_Redis_TwoTiersEvictByPubSub(t *testing.T) {
	t.Parallel()
	prefix := redisPrefix(t)
	st := newRedis(t, prefix)
	srv := newAllauth(t)
	cfg := fiberauth.Config{Storage: st, Prefix: prefix, Recheck: time.Minute, CacheTTL: time.Minute, UserIndex: true}
	ma, mb := newMiddleware(t, srv, cfg), newMiddleware(t, srv, cfg)
	a, b := newApp(t, ma.Handler), newApp(t, mb.Handler)
	waitSubscribed(t, ma, mb)

	tok := srv.IssueToken("alice")
	wantUser(t, do(t, a, withToken(tok)), "alice")
	wantCalls(t, srv, 1)
	for range 3 {
		wantUser(t, do(t, b, withToken(tok)), "alice")
	}
	wantCalls(t, srv, 1)
	if s := mb.Metrics().Cache; s.SharedReads != 1 || s.Hits != 2 || s.Fetches != 0 {
		t.Errorf("B: %+v, want one shared read, then in-process hits", s)
	}

	// Logout, then Evict on A: B's in-process copy goes at once.
	srv.Logout(tok)
	if err := ma.Evict(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, b, func() *http.Request { return withToken(tok) }, http.StatusGone)

	// EvictUser on B reaches A's copy of bob's two sessions.
	bob1, bob2 := srv.IssueToken("bob"), srv.IssueToken("bob")
	wantUser(t, do(t, b, withToken(bob1)), "bob")
	wantUser(t, do(t, b, withToken(bob2)), "bob")
	wantUser(t, do(t, a, withToken(bob1)), "bob")
	wantUser(t, do(t, a, withToken(bob2)), "bob")
	srv.SetActive("bob", false)
	if n, err := mb.EvictUser(t.Context(), "2"); n != 2 || err != nil {
		t.Fatalf("EvictUser = %d, %v; want 2", n, err)
	}
	waitStatus(t, a, func() *http.Request { return withToken(bob1) }, http.StatusUnauthorized)
	waitStatus(t, a, func() *http.Request { return withToken(bob2) }, http.StatusUnauthorized)
}

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
	before := m.Metrics().Cache.SharedReads
	if n := testing.AllocsPerRun(200, func() { h(fctx) }); n != 0 {
		t.Errorf("a Redis-mode hit allocates %v times", n)
	}
	if s := m.Metrics().Cache; s.SharedReads-before > 1 {
		t.Errorf("%d shared reads for one token within Recheck", s.SharedReads-before)
	}
}
