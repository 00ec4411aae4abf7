package fiberauth_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// anonymous is what the test handler answers when no user is stored.
const anonymous = "anonymous"

// newAllauth starts a stand-in allauth server, closed when the test ends,
// with alice (ID 1) and bob (ID 2) in it.
func newAllauth(tb testing.TB, opts ...allauthtest.Option) *allauthtest.Server {
	tb.Helper()
	srv := allauthtest.NewServer(opts...)
	tb.Cleanup(srv.Close)
	srv.AddUser(allauthtest.User{ID: 1, Username: "alice", Email: "alice@example.com", Password: "alice-pass"})
	srv.AddUser(allauthtest.User{ID: 2, Username: "bob", Email: "bob@example.com", Password: "bob-pass"})
	return srv
}

// quietLogger discards the middleware's log lines; logBuffer keeps them.
func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// logBuffer is a goroutine-safe sink for a slog text handler.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newMiddleware builds a middleware pointed at srv (unless cfg names a
// BaseURL already), closed when the test ends.
func newMiddleware(tb testing.TB, srv *allauthtest.Server, cfg fiberauth.Config) *fiberauth.Middleware {
	tb.Helper()
	if cfg.BaseURL == "" {
		cfg.BaseURL = srv.URL
	}
	// Tests that count allauth's calls need every Storage call to succeed:
	// on a loaded machine one can outlast the 50 ms default and turn a
	// shared read into a (correct, but there unwanted) miss. A test about
	// the bound sets its own.
	if cfg.Storage != nil && cfg.StoreTimeout == 0 {
		cfg.StoreTimeout = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	m, err := fiberauth.NewMiddleware(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := m.Close(); err != nil {
			tb.Errorf("Middleware.Close: %v", err)
		}
	})
	return m
}

// newApp returns an app that runs h behind the middleware on every path and
// answers with whoHandler unless routes are given. It is shut down when the
// test ends.
func newApp(tb testing.TB, h fiber.Handler, cfg ...fiber.Config) *fiber.App {
	tb.Helper()
	var c fiber.Config
	if len(cfg) > 0 {
		c = cfg[0]
	}
	c.DisableStartupMessage = true
	if c.ReadBufferSize == 0 {
		c.ReadBufferSize = 16 << 10 // room for the oversized credentials
	}
	app := fiber.New(c)
	app.Use(h)
	app.Get("/*", whoHandler)
	tb.Cleanup(func() {
		if err := app.Shutdown(); err != nil {
			tb.Errorf("app.Shutdown: %v", err)
		}
	})
	return app
}

// whoHandler answers the username of the request's user, or "anonymous".
func whoHandler(c *fiber.Ctx) error {
	if u := fiberauth.UserFrom(c); u != nil {
		return c.SendString(u.Username)
	}
	return c.SendString(anonymous)
}

// result is an answer of the app.
type result struct {
	Status int
	Body   string
	Header http.Header
}

// do runs req through the app in process, without Fiber's test timeout.
func do(tb testing.TB, app *fiber.App, req *http.Request) result {
	tb.Helper()
	resp, err := app.Test(req, -1)
	if err != nil {
		tb.Fatalf("app.Test: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("read body: %v", err)
	}
	return result{Status: resp.StatusCode, Body: string(body), Header: resp.Header}
}

// get builds a GET / with the given header pairs ("Name", "value", ...).
func get(headers ...string) *http.Request { return getPath("/", headers...) }

// getPath is get for another path.
func getPath(path string, headers ...string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, path, http.NoBody)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	return req
}

// withToken is GET / with an X-Session-Token.
func withToken(token string) *http.Request { return get(fiberauth.HeaderSessionToken, token) }

// withCookie is GET / with a session cookie named name.
func withCookie(name, value string) *http.Request {
	req := get()
	req.Header.Set("Cookie", name+"="+value)
	return req
}

// errorBody is allauth's error envelope.
type errorBody struct {
	Status int `json:"status"`
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

// wantError checks an error answer of the default ErrorHandler: status, the
// envelope with code, JSON, no-store.
func wantError(tb testing.TB, r result, status int, code string) {
	tb.Helper()
	if r.Status != status {
		tb.Fatalf("status = %d, want %d (body %q)", r.Status, status, r.Body)
	}
	var eb errorBody
	if err := json.Unmarshal([]byte(r.Body), &eb); err != nil {
		tb.Fatalf("body %q is not JSON: %v", r.Body, err)
	}
	if eb.Status != status || len(eb.Errors) != 1 || eb.Errors[0].Code != code || eb.Errors[0].Message == "" {
		tb.Fatalf("body = %q, want status %d and one error with code %q and a message", r.Body, status, code)
	}
	if ct := r.Header.Get("Content-Type"); ct != fiber.MIMEApplicationJSON {
		tb.Errorf("Content-Type = %q, want %q", ct, fiber.MIMEApplicationJSON)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		tb.Errorf("Cache-Control = %q, want no-store", cc)
	}
	if status != http.StatusServiceUnavailable && r.Header.Get("Retry-After") != "" {
		tb.Errorf("Retry-After = %q on a %d", r.Header.Get("Retry-After"), status)
	}
}

// wantUser checks a 200 naming username.
func wantUser(tb testing.TB, r result, username string) {
	tb.Helper()
	if r.Status != http.StatusOK || r.Body != username {
		tb.Fatalf("got %d %q, want 200 %q", r.Status, r.Body, username)
	}
}

// wantCalls checks how many session lookups allauth received.
func wantCalls(tb testing.TB, srv *allauthtest.Server, want int64) {
	tb.Helper()
	if got := srv.SessionCalls(); got != want {
		tb.Fatalf("allauth session calls = %d, want %d", got, want)
	}
}

// memStorage is a fiber.Storage in a map: a store several middlewares share,
// as instances share a Redis, without needing one.
type memStorage struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemStorage() *memStorage { return &memStorage{m: map[string][]byte{}} }

func (s *memStorage) Get(k string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[k], nil
}

func (s *memStorage) Set(k string, v []byte, _ time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = append([]byte(nil), v...)
	return nil
}

func (s *memStorage) Delete(k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
	return nil
}

func (s *memStorage) Reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.m)
	return nil
}

func (*memStorage) Close() error { return nil }

// recheckAlways makes an instance read the shared store on every request,
// so that an eviction on another instance is seen by the very next request
// (Redis pub/sub does that too, but asynchronously; twotier_test.go proves
// it).
const recheckAlways = time.Nanosecond

// must is NewMiddleware's middleware, for configs that cannot fail.
func must(m *fiberauth.Middleware, err error) *fiberauth.Middleware {
	if err != nil {
		panic(err)
	}
	return m
}

// mustEvict is EvictHandler's handler, for configs that cannot fail.
func mustEvict(tb testing.TB, cfg headless.EvictConfig, m *fiberauth.Middleware, more ...*fiberauth.Middleware) fiber.Handler {
	tb.Helper()
	h, err := fiberauth.EvictHandler(cfg, m, more...)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}
