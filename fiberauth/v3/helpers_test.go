package fiberauth_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gofiber/fiber/v3"

	"github.com/allauthgo/headless"
	fiberauth "github.com/allauthgo/headless/fiberauth/v3"
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
		cfg.Logger = slog.New(slog.DiscardHandler)
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

// newApp returns an app that runs h on every path, then whoHandler. It is
// shut down when the test ends.
func newApp(tb testing.TB, h fiber.Handler, cfg ...fiber.Config) *fiber.App {
	tb.Helper()
	app := fiber.New(cfg...)
	app.Use(h)
	app.Get("/*", whoHandler)
	tb.Cleanup(func() {
		if err := app.Shutdown(); err != nil {
			tb.Errorf("app.Shutdown: %v", err)
		}
	})
	return app
}

// whoHandler answers the username of the request's user ("sub:<id>" for a
// JWT's, which has none), or "anonymous".
func whoHandler(c fiber.Ctx) error {
	if u := fiberauth.UserFrom(c); u != nil {
		if u.Username == "" {
			return c.SendString("sub:" + u.ID)
		}
		return c.SendString(u.Username)
	}
	return c.SendString(anonymous)
}

// setup is the common case: alice and bob upstream, a middleware with cfg,
// and an app that names the user.
func setup(tb testing.TB, cfg fiberauth.Config) (*allauthtest.Server, *fiberauth.Middleware, *fiber.App) {
	tb.Helper()
	srv := newAllauth(tb)
	m := newMiddleware(tb, srv, cfg)
	return srv, m, newApp(tb, m.Handler)
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
	resp, err := app.Test(req, fiber.TestConfig{Timeout: 0})
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
func withToken(token string) *http.Request { return get(headless.HeaderSessionToken, token) }

// wantStatus checks an answer's status and, for an error, the envelope's
// code and the headers every refusal carries.
func wantStatus(tb testing.TB, r result, status int, body string) {
	tb.Helper()
	if r.Status != status || r.Body != body {
		tb.Fatalf("got %d %q, want %d %q", r.Status, r.Body, status, body)
	}
	if status >= 400 {
		if ct := r.Header.Get("Content-Type"); ct != fiber.MIMEApplicationJSON {
			tb.Errorf("Content-Type = %q, want %q", ct, fiber.MIMEApplicationJSON)
		}
		if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
			tb.Errorf("Cache-Control = %q, want no-store", cc)
		}
	}
}

// wantCalls checks how many session lookups allauth received.
func wantCalls(tb testing.TB, srv *allauthtest.Server, want int64) {
	tb.Helper()
	if got := srv.SessionCalls(); got != want {
		tb.Fatalf("allauth session calls = %d, want %d", got, want)
	}
}

// The bodies of the default ErrorHandler, as allauth's envelope.
const (
	body401        = `{"status": 401, "errors": [{"code": "not_authenticated", "message": "No credential was provided."}]}`
	body401Invalid = `{"status": 401, "errors": [{"code": "not_authenticated", "message": "The credential is not valid."}]}`
	body410        = `{"status": 410, "errors": [{"code": "session_gone", "message": "The session is gone; log in again."}]}`
	body503        = `{"status": 503, "errors": [{"code": "upstream_unavailable", "message": "Authentication is unavailable; try again shortly."}]}`
)

// must is NewMiddleware's middleware, for configs that cannot fail.
func must(m *fiberauth.Middleware, err error) *fiberauth.Middleware {
	if err != nil {
		panic(err)
	}
	return m
}
