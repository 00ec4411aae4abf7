package fiberauth_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/storage/redis/v3"
	"go.uber.org/goleak"

	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/internal/redistest"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// Closing everything the middleware uses leaves no goroutine behind, even
// when it is closed while a lookup is in flight, and that in-flight request
// still gets its answer. The setup has everything that starts goroutines: a
// listening app with keep-alive clients, the middleware's cache (clock and
// janitor), its HTTP client's pooled connections to allauth, a Redis storage
// (go-redis's pool), and the allauth stand-in. The shutdown order is the
// hard one: the middleware and Redis are closed first, while the request is
// still at allauth, then the app.
//
// Test_Shutdown_InFlightRequestAnswered (concurrency_test.go) covers an app
// shutdown alone. Not parallel: goleak sees every goroutine of the process
// (those alive when the test starts are ignored).
func Test_Shutdown_ClosesEverything(t *testing.T) {
	// A private redis-server's watcher goroutine lives until the test ends:
	// start it before taking the snapshot of goroutines to ignore.
	var addr string
	if redistest.Available() {
		addr = redistest.Addr(t)
	} else {
		t.Log("checking shutdown without a shared store:", redistest.SkipMessage)
	}
	ignore := goleak.IgnoreCurrent()

	srv := allauthtest.NewServer()
	srv.AddUser(allauthtest.User{ID: 1, Username: "alice"})
	cfg := fiberauth.Config{BaseURL: srv.URL, Logger: quietLogger()}
	var st *redis.Storage
	if addr != "" {
		st = redis.New(redis.Config{Addrs: []string{addr}, PoolSize: 4})
		cfg.Storage = st
	}
	m := must(fiberauth.NewMiddleware(cfg))
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(m.Handler)
	app.Get("/", whoHandler)
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app.Server().MaxIdleWorkerDuration = 50 * time.Millisecond // see listen
	served := make(chan error, 1)
	go func() { served <- app.Listener(ln) }()
	url := "http://" + ln.Addr().String() + "/"
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4}
	client := &http.Client{Transport: tr}

	// Warm everything up: pooled connections on both sides, cache entries.
	tokens := []string{srv.IssueToken("alice"), srv.IssueToken("alice")}
	for _, tok := range tokens {
		for range 2 {
			if status, body, err := fetch(t.Context(), client, url, tok); err != nil || status != 200 || body != "alice" {
				t.Fatalf("warm-up: %d %q %v", status, body, err)
			}
		}
	}

	// A lookup in flight (allauth answers after 300 ms) while the
	// middleware, then Redis, are closed.
	srv.SetFault(allauthtest.Fault{Delay: 300 * time.Millisecond})
	type reply struct {
		status int
		body   string
		err    error
	}
	got := make(chan reply, 1)
	calls := srv.SessionCalls()
	go func() {
		status, body, err := fetch(context.Background(), client, url, srv.IssueToken("alice"))
		got <- reply{status, body, err}
	}()
	for deadline := time.Now().Add(5 * time.Second); srv.SessionCalls() == calls; {
		if time.Now().After(deadline) {
			t.Fatal("the request never reached allauth")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := m.Close(); err != nil {
		t.Errorf("Middleware.Close: %v", err)
	}
	if st != nil {
		if err := st.Close(); err != nil {
			t.Errorf("redis Close: %v", err)
		}
	}
	if err := app.ShutdownWithTimeout(5 * time.Second); err != nil {
		t.Errorf("app shutdown: %v", err)
	}
	r := <-got
	if r.err != nil || r.status != http.StatusOK || r.body != "alice" {
		t.Errorf("in-flight request: %d %q %v", r.status, r.body, r.err)
	}
	if err := <-served; err != nil && !errors.Is(err, net.ErrClosed) {
		t.Errorf("app.Listener: %v", err)
	}
	srv.Close()
	tr.CloseIdleConnections()

	goleak.VerifyNone(t, ignore,
		// Process-wide, started by the first request fasthttp serves, by design.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	)
}
