package fiberauth_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// Sizes of the safety proof.
const (
	loadClients  = 256
	loadTokens   = 10_000
	loadRequests = 200_000
)

// lightConfig trims what the load tests do not need from every answer.
var lightConfig = fiber.Config{
	DisableStartupMessage:     true,
	DisableDefaultDate:        true,
	DisableDefaultContentType: true,
}

// listen serves app on a loopback port until the test ends and returns its
// base URL.
func listen(tb testing.TB, app *fiber.App) string {
	tb.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	// fasthttp's worker pool cleaner sleeps MaxIdleWorkerDuration (10 s by
	// default) between rounds and notices a shutdown only after a round:
	// shorten it so no goroutine outlives the test.
	app.Server().MaxIdleWorkerDuration = 50 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- app.Listener(ln) }()
	tb.Cleanup(func() {
		if err := app.ShutdownWithTimeout(10 * time.Second); err != nil {
			tb.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			tb.Errorf("app.Listener: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// newHTTPClient returns a client with its own keep-alive pool, closed when
// the test ends.
func newHTTPClient(tb testing.TB, perHost int) *http.Client {
	tb.Helper()
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        perHost,
		MaxIdleConnsPerHost: perHost,
		IdleConnTimeout:     time.Minute,
	}
	tb.Cleanup(tr.CloseIdleConnections)
	// No Client.Timeout: it costs a timer per request; callers bound their
	// requests with a context instead.
	return &http.Client{Transport: tr}
}

// fetch sends GET url with an X-Session-Token and returns status and body.
func fetch(ctx context.Context, client *http.Client, url, token string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, http.NoBody)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set(fiberauth.HeaderSessionToken, token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// loadFixture is allauth with loadTokens users, u0..u9999, one token each.
type loadFixture struct {
	srv    *allauthtest.Server
	tokens []string
}

func newLoadFixture(tb testing.TB) *loadFixture {
	tb.Helper()
	srv := allauthtest.NewServer()
	tb.Cleanup(srv.Close)
	f := &loadFixture{srv: srv, tokens: make([]string, loadTokens)}
	for i := range f.tokens {
		name := "u" + strconv.Itoa(i)
		srv.AddUser(allauthtest.User{ID: i + 1, Username: name}) // an explicit ID keeps AddUser O(1)
		f.tokens[i] = srv.IssueToken(name)
		if f.tokens[i] == "" {
			tb.Fatalf("no token for %s", name)
		}
	}
	return f
}

// tokenOf spreads request r over the tokens so that every token is used,
// each by many clients at once (token r%loadTokens is asked by requests r,
// r+loadTokens, ... which different clients send at about the same time).
func tokenOf(r int) int { return r % loadTokens }

// run sends n requests from loadClients concurrent clients, request r
// carrying tokenOf(r), and checks every answer names its own user. It
// returns the number of mismatches and of other failures.
func (f *loadFixture) run(tb testing.TB, url string, n int) (mismatches, failures int64) {
	tb.Helper()
	client := newHTTPClient(tb, loadClients)
	ctx, cancel := context.WithTimeout(tb.Context(), 10*time.Minute)
	defer cancel()
	var next atomic.Int64
	var mis, fail atomic.Int64
	var firstErr sync.Once
	var wg sync.WaitGroup
	for range loadClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				r := int(next.Add(1) - 1)
				if r >= n {
					return
				}
				i := tokenOf(r)
				status, body, err := fetch(ctx, client, url+"/r/"+strconv.Itoa(r), f.tokens[i])
				switch {
				case err != nil || status != http.StatusOK:
					fail.Add(1)
					firstErr.Do(func() { tb.Errorf("request %d: status %d, body %q, error %v", r, status, body, err) })
				case body != "u"+strconv.Itoa(i):
					mis.Add(1)
					firstErr.Do(func() { tb.Errorf("request %d for u%d answered %q", r, i, body) })
				}
			}
		}()
	}
	wg.Wait()
	return mis.Load(), fail.Load()
}

// loadConfig is cfg for the load tests, which prove identities, not speed:
// under -race on a busy machine a lookup may take seconds, and a 503 from a
// timeout or the breaker would fail a test about who is named.
func loadConfig(cfg fiberauth.Config) fiberauth.Config {
	cfg.CacheTTL = 10 * time.Minute
	cfg.Timeout = time.Minute
	cfg.Breaker = introspect.BreakerConfig{Disabled: true}
	return cfg
}

// The safety proof: 256 concurrent clients, 10,000 tokens of 10,000 users,
// 200,000 requests over real loopback HTTP. Every answer names its own user,
// and allauth is asked exactly once per token.
func Test_Concurrency_EveryAnswerNamesItsOwnUser(t *testing.T) {
	if testing.Short() {
		t.Skip("200,000 requests; skipped with -short")
	}
	f := newLoadFixture(t)
	m := newMiddleware(t, f.srv, loadConfig(fiberauth.Config{}))
	app := fiber.New(lightConfig)
	app.Use(m.Handler)
	app.Get("/r/:n", func(c *fiber.Ctx) error {
		return c.SendString(fiberauth.UserFrom(c).Username)
	})
	url := listen(t, app)

	// The run allocates a lot and keeps little: collecting less often saves
	// a few seconds under -race.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	start := time.Now()
	mismatches, failures := f.run(t, url, loadRequests)
	t.Logf("%d requests, %d clients, %d tokens in %v", loadRequests, loadClients, loadTokens, time.Since(start))
	if mismatches != 0 || failures != 0 {
		t.Fatalf("%d answers named another user, %d requests failed", mismatches, failures)
	}
	if got := f.srv.SessionCalls(); got != loadTokens {
		t.Fatalf("allauth session calls = %d, want exactly %d (one per token)", got, loadTokens)
	}
	if s := m.Metrics().Cache; s.Fetches != loadTokens || s.Entries != loadTokens {
		t.Errorf("stats %+v", s)
	}
}

// The same, with a handler that keeps what the middleware stored after the
// request has ended (the user from Locals and from UserFrom, the session):
// checked once every request is done, they must still name the right user,
// so they cannot alias buffers Fiber or fasthttp reuse.
func Test_Concurrency_KeptUsersStayValid(t *testing.T) {
	if testing.Short() {
		t.Skip("20,000 requests; skipped with -short")
	}
	const n = 2 * loadTokens // every token twice: once fetched, once from the cache
	f := newLoadFixture(t)
	m := newMiddleware(t, f.srv, loadConfig(fiberauth.Config{UserContext: true}))
	type kept struct {
		local, from, fromCtx *introspect.User
		sess                 *introspect.Session
	}
	keep := make([]kept, n)
	app := fiber.New(lightConfig)
	app.Use(m.Handler)
	app.Get("/r/:n", func(c *fiber.Ctx) error {
		r, err := strconv.Atoi(c.Params("n"))
		if err != nil || r < 0 || r >= n {
			return c.SendStatus(http.StatusBadRequest)
		}
		u, _ := c.Locals("user").(*introspect.User)
		keep[r] = kept{
			local:   u,
			from:    fiberauth.UserFrom(c),
			fromCtx: fiberauth.UserFromContext(c.UserContext()),
			sess:    fiberauth.SessionFrom(c),
		}
		return c.SendString(u.Username)
	})
	url := listen(t, app)

	defer debug.SetGCPercent(debug.SetGCPercent(400))
	mismatches, failures := f.run(t, url, n)
	if mismatches != 0 || failures != 0 {
		t.Fatalf("%d answers named another user, %d requests failed", mismatches, failures)
	}
	// Every request is done and its buffers recycled; what was kept must
	// still be right.
	var wrong int
	for r, k := range keep {
		want := "u" + strconv.Itoa(tokenOf(r))
		wantID := strconv.Itoa(tokenOf(r) + 1)
		if k.local == nil || k.local != k.from || k.local != k.fromCtx || k.sess == nil || &k.sess.User != k.local ||
			k.local.Username != want || k.local.ID != wantID || k.local.Display != want {
			wrong++
			if wrong <= 5 {
				t.Errorf("request %d: kept %+v, want %s (id %s)", r, k.local, want, wantID)
			}
		}
	}
	if wrong != 0 {
		t.Fatalf("%d kept users are wrong", wrong)
	}
	if got := f.srv.SessionCalls(); got != loadTokens {
		t.Fatalf("allauth session calls = %d, want %d", got, loadTokens)
	}
}

// A request in flight when the app shuts down still gets its answer: the
// lookup (300 ms at allauth) finishes and the handler runs.
func Test_Shutdown_InFlightRequestAnswered(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := must(fiberauth.NewMiddleware(fiberauth.Config{BaseURL: srv.URL, Logger: quietLogger()}))
	defer func() { _ = m.Close() }()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(m.Handler)
	app.Get("/", whoHandler)

	var lc net.ListenConfig
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app.Server().MaxIdleWorkerDuration = 50 * time.Millisecond // see listen
	served := make(chan error, 1)
	go func() { served <- app.Listener(ln) }()

	tok := srv.IssueToken("alice")
	srv.SetFault(allauthtest.Fault{Delay: 300 * time.Millisecond})
	client := newHTTPClient(t, 1)
	type answer struct {
		status int
		body   string
		err    error
	}
	got := make(chan answer, 1)
	go func() {
		status, body, err := fetch(t.Context(), client, "http://"+ln.Addr().String()+"/", tok)
		got <- answer{status, body, err}
	}()
	// Wait until the lookup is at allauth, then shut down.
	deadline := time.Now().Add(5 * time.Second)
	for srv.SessionCalls() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if srv.SessionCalls() == 0 {
		t.Fatal("the request never reached allauth")
	}
	if err := app.ShutdownWithTimeout(5 * time.Second); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	a := <-got
	if a.err != nil || a.status != http.StatusOK || a.body != "alice" {
		t.Fatalf("in-flight request: %d %q %v", a.status, a.body, a.err)
	}
	if err := <-served; err != nil && !errors.Is(err, net.ErrClosed) {
		t.Errorf("app.Listener: %v", err)
	}
}
