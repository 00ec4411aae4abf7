package headless

// Helpers of the core's own tests: a fake Request (what a front door hands
// Authenticate), a stand-in allauth with alice and bob, an Authenticator
// closed when the test ends, and checks of a Result as a door would render
// it (status, envelope, headers).

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allauthgo/headless/introspect/allauthtest"
)

// req is a fake Request: headers by canonical name (every occurrence) and
// cookies in the order sent. Its values are buffers the test may overwrite
// after Authenticate returns (scribble), as a framework reuses its own.
type req struct {
	headers map[string][][]byte
	cookies [][2][]byte
	ctx     context.Context
	asked   int // calls to Context: a cache hit makes none
}

// get builds a request from header pairs ("Name", "value", ...). A "Cookie"
// pair is parsed as "a=1; b=2", as the doors' frameworks do.
func get(kv ...string) *req {
	r := &req{headers: map[string][][]byte{}}
	for i := 0; i+1 < len(kv); i += 2 {
		name := textproto.CanonicalMIMEHeaderKey(kv[i])
		if name == "Cookie" {
			for _, c := range strings.Split(kv[i+1], ";") {
				k, v, _ := strings.Cut(strings.TrimSpace(c), "=")
				r.cookies = append(r.cookies, [2][]byte{[]byte(k), []byte(v)})
			}
			continue
		}
		r.headers[name] = append(r.headers[name], []byte(kv[i+1]))
	}
	return r
}

// withToken is a request with an X-Session-Token.
func withToken(token string) *req { return get(HeaderSessionToken, token) }

// withCookie is a request with one cookie.
func withCookie(name, value string) *req { return get("Cookie", name+"="+value) }

// bearer is a request with "Authorization: Bearer <token>".
func bearer(token string) *req { return get("Authorization", "Bearer "+token) }

func (r *req) Header(name string) ([]byte, int) {
	vs := r.headers[name]
	if len(vs) == 0 {
		return nil, 0
	}
	return vs[0], len(vs)
}

func (r *req) Cookie(name string) []byte {
	var v []byte
	for _, c := range r.cookies {
		if string(c[0]) == name {
			v = c[1]
		}
	}
	return v
}

func (r *req) Context() context.Context {
	r.asked++
	if r.ctx != nil {
		return r.ctx
	}
	return context.Background()
}

// scribble overwrites every buffer of the request, as a framework does when
// it reuses them for the next request.
func (r *req) scribble() {
	for _, vs := range r.headers {
		for _, v := range vs {
			for i := range v {
				v[i] = 'x'
			}
		}
	}
	for _, c := range r.cookies {
		for i := range c[1] {
			c[1][i] = 'x'
		}
	}
}

// newAllauth starts a stand-in allauth, closed when the test ends, with alice
// (ID 1) and bob (ID 2).
func newAllauth(tb testing.TB, opts ...allauthtest.Option) *allauthtest.Server {
	tb.Helper()
	srv := allauthtest.NewServer(opts...)
	tb.Cleanup(srv.Close)
	srv.AddUser(allauthtest.User{ID: 1, Username: "alice", Email: "alice@example.com", Password: "alice-pass"})
	srv.AddUser(allauthtest.User{ID: 2, Username: "bob", Email: "bob@example.com", Password: "bob-pass"})
	return srv
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newCore builds an Authenticator pointed at srv (unless cfg names a
// BaseURL), silent unless cfg has a Logger, closed when the test ends.
func newCore(tb testing.TB, srv *allauthtest.Server, cfg Config) *Authenticator {
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
	a, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() {
		if err := a.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return a
}

// setup is the common case: alice and bob at a stand-in, and an
// Authenticator with cfg.
func setup(tb testing.TB, cfg Config) (*allauthtest.Server, *Authenticator) {
	tb.Helper()
	srv := newAllauth(tb)
	return srv, newCore(tb, srv, cfg)
}

// auth authenticates r, not optional.
func auth(a *Authenticator, r Request) Result { return a.Authenticate(r, false) }

// wantUser checks that res is username's session.
func wantUser(tb testing.TB, res Result, username string) {
	tb.Helper()
	if res.Err != nil || res.Session == nil || res.Session.User.Username != username {
		tb.Fatalf("got %s, want %s", describe(res), username)
	}
}

// wantAnonymous checks an anonymous result.
func wantAnonymous(tb testing.TB, res Result) {
	tb.Helper()
	if res.Err != nil || res.Session != nil {
		tb.Fatalf("got %s, want anonymous", describe(res))
	}
}

func describe(res Result) string {
	switch {
	case res.Err != nil:
		return "error " + string(res.Err.Body()) + " (" + res.Err.Message + ")"
	case res.Session != nil:
		return "user " + res.Session.User.ID + " " + res.Session.User.Username
	default:
		return "anonymous"
	}
}

// errorBody is allauth's error envelope.
type errorBody struct {
	Status int `json:"status"`
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

// wantError checks a refusal as a door renders it: status, the envelope with
// code, no-store, and Retry-After only on a 503. It returns the headers.
func wantError(tb testing.TB, res Result, status int, code string) http.Header {
	tb.Helper()
	if res.Err == nil {
		tb.Fatalf("got %s, want a %d", describe(res), status)
	}
	e := res.Err
	if e.Status != status {
		tb.Fatalf("status = %d, want %d (%s)", e.Status, status, describe(res))
	}
	var eb errorBody
	body := e.Body()
	if err := json.Unmarshal(body, &eb); err != nil {
		tb.Fatalf("body %q is not JSON: %v", body, err)
	}
	if eb.Status != status || len(eb.Errors) != 1 || eb.Errors[0].Code != code || eb.Errors[0].Message == "" {
		tb.Fatalf("body = %q, want status %d and one error with code %q and a message", body, status, code)
	}
	h := headers(e)
	if cc := h.Get("Cache-Control"); cc != "no-store" {
		tb.Errorf("Cache-Control = %q, want no-store", cc)
	}
	if status != http.StatusServiceUnavailable && h.Get("Retry-After") != "" {
		tb.Errorf("Retry-After = %q on a %d", h.Get("Retry-After"), status)
	}
	return h
}

// headers are the headers a door answers e with.
func headers(e *Error) http.Header {
	h := http.Header{}
	e.Header(h.Set)
	return h
}

// wantCalls checks how many session lookups allauth received.
func wantCalls(tb testing.TB, srv *allauthtest.Server, want int64) {
	tb.Helper()
	if got := srv.SessionCalls(); got != want {
		tb.Fatalf("allauth session calls = %d, want %d", got, want)
	}
}

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

// memStorage is a cache.Storage in a map: a store several Authenticators
// share, as instances share a Redis, without needing one.
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
