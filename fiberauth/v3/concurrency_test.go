package fiberauth_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v3"

	"github.com/allauthgo/headless"
	fiberauth "github.com/allauthgo/headless/fiberauth/v3"
	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// Sizes of the leak test: every token is asked about once (a miss), then a
// quarter of them again (a hit). The 10,000 lookups at the stand-in set its
// time: about 3 s, 12 s under -race; the v2 door's suite runs 200,000
// requests.
const (
	loadClients  = 256
	loadTokens   = 10_000
	loadRequests = loadTokens + loadTokens/4
)

// listen serves app on a loopback port until the test ends and returns its
// base URL.
func listen(tb testing.TB, app *fiber.App) string {
	tb.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	// fasthttp's worker pool cleaner notices a shutdown only after a round
	// of MaxIdleWorkerDuration: shorten it so no goroutine outlives the test.
	app.Server().MaxIdleWorkerDuration = 50 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- app.Listener(ln, fiber.ListenConfig{DisableStartupMessage: true}) }()
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

// newHTTPClient returns a client with its own keep-alive pool of at most
// conns connections, closed when the test ends.
func newHTTPClient(tb testing.TB, conns int) *http.Client {
	tb.Helper()
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// fetch sends GET url with an X-Session-Token (none if token is "") and
// returns status and body.
func fetch(ctx context.Context, client *http.Client, url, token string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, http.NoBody)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set(headless.HeaderSessionToken, token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// Test_Concurrency_EveryAnswerNamesItsOwnUser sends loadRequests requests
// from loadClients concurrent clients over real connections, spread over
// loadTokens users, and checks that every answer names the user of its own
// token: no answer leaks across requests, though Fiber recycles its Ctx and
// fasthttp its buffers, and misses run while other requests reuse them.
func Test_Concurrency_EveryAnswerNamesItsOwnUser(t *testing.T) {
	srv := allauthtest.NewServer()
	t.Cleanup(srv.Close)
	tokens := make([]string, loadTokens)
	for i := range tokens {
		name := "u" + strconv.Itoa(i)
		srv.AddUser(allauthtest.User{ID: i + 1, Username: name}) // an explicit ID keeps AddUser O(1)
		tokens[i] = srv.IssueToken(name)
	}
	m := newMiddleware(t, srv, fiberauth.Config{Timeout: time.Minute, CacheTTL: 10 * time.Minute})
	app := fiber.New()
	app.Use(m.Handler)
	app.Get("/*", whoHandler)
	url := listen(t, app)
	client := newHTTPClient(t, loadClients)
	// The run allocates a lot and keeps little: collecting less often saves
	// seconds under -race.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	start := time.Now()
	defer func() {
		t.Logf("%d requests, %d clients, %d tokens in %v", loadRequests, loadClients, loadTokens, time.Since(start))
	}()

	var next, mismatches, failures atomic.Int64
	var firstErr sync.Once
	var wg sync.WaitGroup
	for range loadClients {
		wg.Go(func() {
			for {
				r := int(next.Add(1) - 1)
				if r >= loadRequests {
					return
				}
				i := (r * 7) % loadTokens // 7 is prime to loadTokens: each token once, then repeats
				status, body, err := fetch(t.Context(), client, url, tokens[i])
				switch {
				case err != nil || status != http.StatusOK:
					failures.Add(1)
					firstErr.Do(func() { t.Errorf("request %d: %d %q %v", r, status, body, err) })
				case body != "u"+strconv.Itoa(i):
					mismatches.Add(1)
					firstErr.Do(func() { t.Errorf("request %d for u%d was answered %q", r, i, body) })
				}
			}
		})
	}
	wg.Wait()
	if mismatches.Load() != 0 || failures.Load() != 0 {
		t.Fatalf("%d answers named another user, %d failed, of %d", mismatches.Load(), failures.Load(), loadRequests)
	}
	if calls := srv.SessionCalls(); calls != loadTokens {
		t.Errorf("allauth saw %d lookups for %d tokens, want one each", calls, loadTokens)
	}
}

// TestRecycledCtx guards against Fiber's reuse of Ctx objects: requests of
// every kind (a user, another user, none, a refused token) follow each other
// on the same connections, hence on the same recycled Ctx, and none may see
// a previous request's session, user or Locals. The users a handler keeps
// past its return must still name the user of their own request.
func TestRecycledCtx(t *testing.T) {
	srv := newAllauth(t)
	m := newMiddleware(t, srv, fiberauth.Config{})
	type kept struct {
		user *introspect.User
		want string
	}
	var mu sync.Mutex
	var keep []kept
	ctxs := map[string]bool{}
	app := fiber.New()
	app.Get("/", m.Optional, func(c fiber.Ctx) error {
		u := fiberauth.UserFrom(c)
		if (u == nil) != (fiberauth.SessionFrom(c) == nil) || (u == nil) != (fiberauth.UserFromContext(c) == nil) ||
			(u == nil) != (c.Locals("user") == nil) {
			return c.Status(http.StatusInternalServerError).SendString("UserFrom, SessionFrom, UserFromContext and Locals disagree")
		}
		mu.Lock()
		ctxs[fmt.Sprintf("%p", c)] = true
		if u != nil {
			keep = append(keep, kept{u, strings.Clone(u.Username)})
		}
		mu.Unlock()
		return whoHandler(c)
	})
	url := listen(t, app)

	alice, bob := srv.IssueToken("alice"), srv.IssueToken("bob")
	cycle := []struct{ token, want string }{
		{alice, "alice"},
		{"", anonymous},
		{bob, "bob"},
		{"nosuchtoken0000000000000000000000", "410"},
		{alice, "alice"},
		{bob, "bob"},
		{"", anonymous},
	}
	for _, clients := range []int{1, 8} {
		client := newHTTPClient(t, clients)
		var wg sync.WaitGroup
		for g := range clients {
			wg.Go(func() {
				for i := range 70 {
					s := cycle[(g+i)%len(cycle)]
					status, body, err := fetch(t.Context(), client, url, s.token)
					if s.want == "410" && status == http.StatusGone {
						continue
					}
					if err != nil || status != http.StatusOK || body != s.want {
						t.Errorf("%d clients, request %d for %q: %d %q %v", clients, i, s.want, status, body, err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	for _, k := range keep {
		if k.user.Username != k.want {
			t.Fatalf("a user kept past its request now names %q, want %q", k.user.Username, k.want)
		}
	}
	t.Logf("%d requests with a user ran on %d distinct Ctx objects", len(keep), len(ctxs))
}
