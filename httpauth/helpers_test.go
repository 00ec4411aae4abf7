package httpauth_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/httpauth"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// anonymous is what whoHandler answers when the request has no user.
const anonymous = "anonymous"

// newAllauth starts a stand-in allauth server, closed when the test ends,
// with alice (ID 1) and bob (ID 2) in it.
func newAllauth(tb testing.TB) *allauthtest.Server {
	tb.Helper()
	srv := allauthtest.NewServer()
	tb.Cleanup(srv.Close)
	srv.AddUser(allauthtest.User{ID: 1, Username: "alice", Email: "alice@example.com", Password: "alice-pass"})
	srv.AddUser(allauthtest.User{ID: 2, Username: "bob", Email: "bob@example.com", Password: "bob-pass"})
	return srv
}

// newMiddleware builds a middleware pointed at srv (unless cfg names a
// BaseURL already), closed when the test ends.
func newMiddleware(tb testing.TB, srv *allauthtest.Server, cfg httpauth.Config) *httpauth.Middleware {
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
	m, err := httpauth.NewMiddleware(cfg)
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

// whoHandler answers the username of the request's user, or "anonymous".
var whoHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if u := httpauth.UserFrom(r.Context()); u != nil {
		_, _ = io.WriteString(w, u.Username)
		return
	}
	_, _ = io.WriteString(w, anonymous)
})

// result is an answer of a handler.
type result struct {
	Status int
	Body   string
	Header http.Header
}

// do runs req through h in process.
func do(h http.Handler, req *http.Request) result {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return result{Status: rec.Code, Body: rec.Body.String(), Header: rec.Header()}
}

// get builds a GET / with the given header pairs ("Name", "value", ...).
func get(headers ...string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, "/", http.NoBody)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	return req
}

// withToken is GET / with an X-Session-Token.
func withToken(token string) *http.Request { return get(headless.HeaderSessionToken, token) }

// wantError checks an answer of DefaultErrorHandler: status, the exact
// envelope, JSON, no-store, Retry-After only on a 503.
func wantError(tb testing.TB, r result, status int, code string) {
	tb.Helper()
	if r.Status != status {
		tb.Fatalf("status = %d, want %d (body %q)", r.Status, status, r.Body)
	}
	var eb struct {
		Status int `json:"status"`
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal([]byte(r.Body), &eb); err != nil {
		tb.Fatalf("body %q is not JSON: %v", r.Body, err)
	}
	if eb.Status != status || len(eb.Errors) != 1 || eb.Errors[0].Code != code || eb.Errors[0].Message == "" {
		tb.Fatalf("body = %q, want status %d and one error with code %q", r.Body, status, code)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		tb.Errorf("Content-Type = %q, want application/json", ct)
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
