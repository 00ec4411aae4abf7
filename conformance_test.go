package headless_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// The contract, as one table run against every front door: the same
// requests get the same statuses, bodies, headers and calls to allauth,
// whichever framework serves them.

// doorConfig is what a conformance row asks of a door, in words every door
// understands.
type doorConfig struct {
	baseURL     string
	mount       string
	sources     []string // "header:X-Session-Token", "header:Authorization", "cookie:sessionid"
	optional    bool
	jwt         *introspect.JWTConfig
	logger      *slog.Logger
	evictSecret []byte // the webhook's, at POST evictPath; the readiness check is at GET readyPath
}

// Where every door's app mounts the eviction webhook and the readiness
// check, ahead of the middleware, and the webhook's secret.
const (
	evictPath   = "/_allauthgo/evict"
	readyPath   = "/readyz"
	evictSecret = "conformance-evict-secret-0123456789abcdef"
)

// roundTrip serves one request and returns the answer.
type roundTrip func(t *testing.T, req *http.Request) answer

type answer struct {
	status int
	header http.Header
	body   string
}

// door builds an app for a config: it answers "<id> <username>" for an
// authenticated request and "anonymous" for an anonymous one, and serves
// the door's eviction webhook and readiness check.
type door struct {
	name   string
	prefix string // that starts the door's errors and panics
	build  func(t *testing.T, cfg doorConfig) roundTrip
	// refuse builds the door from a config that cannot work, both ways:
	// NewMiddleware's error and New's panic (nil and "" when accepted), and
	// EvictHandler's error for cfg.evictSecret.
	refuse func(cfg doorConfig) (newErr error, newPanic string, evictErr error)
}

// doors are the front doors under test (see doors_test.go).
var doors []door

func readAnswer(t *testing.T, resp *http.Response) answer {
	t.Helper()
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// who is the body the apps answer for a user (or anonymous).
func who(id, username string) string {
	if id == "" {
		return "anonymous"
	}
	return id + " " + username
}

type row struct {
	name       string
	cfg        func(base doorConfig) doorConfig
	setup      func(srv *allauthtest.Server)                 // e.g. a fault
	before     func(srv *allauthtest.Server) []*http.Request // sent first, each must answer 200
	request    func(srv *allauthtest.Server) *http.Request
	status     int
	body       string            // exact
	bodyPrefix string            // instead of body, for answers that hold a time
	headers    map[string]string // exact; "" means absent
	calls      int64             // session calls at allauth for this request
	repeat     int               // the request is sent this many more times, with no further calls
}

func req(headers ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", http.NoBody)
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Add(headers[i], headers[i+1])
	}
	return r
}

const (
	bodyNoCredential = `{"status": 401, "errors": [{"code": "not_authenticated", "message": "No credential was provided."}]}`
	bodyInvalid      = `{"status": 401, "errors": [{"code": "not_authenticated", "message": "The credential is not valid."}]}`
	bodyGone         = `{"status": 410, "errors": [{"code": "session_gone", "message": "The session is gone; log in again."}]}`
	bodyUnavailable  = `{"status": 503, "errors": [{"code": "upstream_unavailable", "message": "Authentication is unavailable; try again shortly."}]}`
)

func conformanceRows() []row {
	token := func(tok string) func(*allauthtest.Server) *http.Request {
		return func(*allauthtest.Server) *http.Request { return req("X-Session-Token", tok) }
	}
	issued := func(user string) func(*allauthtest.Server) *http.Request {
		return func(srv *allauthtest.Server) *http.Request {
			return req("X-Session-Token", srv.IssueToken(user))
		}
	}
	noStore := map[string]string{"Cache-Control": "no-store", "WWW-Authenticate": "", "Retry-After": ""}
	with := func(m map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	bearer := func(c doorConfig) doorConfig {
		c.sources = []string{"header:Authorization", "header:X-Session-Token"}
		return c
	}
	cookie := func(c doorConfig) doorConfig { c.sources = []string{"cookie:sessionid"}; return c }
	optional := func(c doorConfig) doorConfig { c.optional = true; return c }
	fault := func(f allauthtest.Fault) func(*allauthtest.Server) {
		return func(srv *allauthtest.Server) { srv.SetFault(f) }
	}
	// The eviction webhook, signed as Django signs it.
	evict := func(tokens ...string) *http.Request {
		body := []byte(`{"nonce": "` + strconv.FormatInt(time.Now().UnixNano(), 10) + `", "session_keys": ["` + strings.Join(tokens, `", "`) + `"]}`)
		r := httptest.NewRequest(http.MethodPost, evictPath, bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		ts := time.Now().Unix()
		r.Header.Set(headless.HeaderEvictTimestamp, strconv.FormatInt(ts, 10))
		r.Header.Set(headless.HeaderEvictSignature, headless.SignEvict([]byte(evictSecret), ts, body))
		return r
	}
	var alice string // issued by a row's before, asked by its request
	cached := func(srv *allauthtest.Server) []*http.Request {
		alice = srv.IssueToken("alice")
		return []*http.Request{req("X-Session-Token", alice)}
	}
	ready := func(*allauthtest.Server) *http.Request {
		return httptest.NewRequest(http.MethodGet, readyPath, http.NoBody)
	}
	return []row{
		{
			name: "eviction webhook: a signed eviction of a cached token", before: cached,
			request: func(*allauthtest.Server) *http.Request { return evict(alice) },
			status:  200, body: `{"status": 200, "data": {"evicted": 1}}`,
		},
		{
			name: "eviction webhook: then the token is asked of allauth again",
			before: func(srv *allauthtest.Server) []*http.Request {
				return append(cached(srv), evict(alice))
			},
			request: func(*allauthtest.Server) *http.Request { return req("X-Session-Token", alice) },
			status:  200, body: who("1", "alice"), calls: 1,
		},
		{
			name: "eviction webhook: unsigned", request: func(*allauthtest.Server) *http.Request {
				r := evict("abcdefghijklmnopqrstuvwxyz012345")
				r.Header.Del(headless.HeaderEvictSignature)
				return r
			},
			status: 401, body: `{"status": 401, "errors": [{"code": "unsigned", "message": "The request is not signed."}]}`,
		},
		{
			name: "readiness: allauth answered a lookup lately", before: cached, request: ready,
			status: 200, bodyPrefix: `{"status": "up", "checked": "recent", "age_seconds": `, headers: map[string]string{"Cache-Control": "no-store"},
		},
		{
			name: "readiness: allauth asked, answers", request: ready,
			status: 200, bodyPrefix: `{"status": "up", "checked": "probe", "age_seconds": `, calls: 1,
		},
		{
			name: "readiness: allauth asked, fails", setup: fault(allauthtest.Fault{Status: 502}), request: ready,
			status: 503, bodyPrefix: `{"status": "down", "checked": "probe", "age_seconds": `, headers: map[string]string{"Cache-Control": "no-store"}, calls: 1,
		},
		{
			name: "no credential", request: func(*allauthtest.Server) *http.Request { return req() },
			status: 401, body: bodyNoCredential, headers: noStore,
		},
		{
			name: "blank credential", request: token(" \t "),
			status: 401, body: bodyNoCredential, headers: noStore,
		},
		{
			name: "no credential, Bearer read", cfg: bearer, request: func(*allauthtest.Server) *http.Request { return req() },
			status: 401, body: bodyNoCredential, headers: with(noStore, "WWW-Authenticate", "Bearer"),
		},
		{
			name: "no credential, optional", cfg: optional, request: func(*allauthtest.Server) *http.Request { return req() },
			status: 200, body: who("", ""),
		},
		{
			name: "valid session token, then cache hits", request: issued("alice"),
			status: 200, body: who("1", "alice"), calls: 1, repeat: 3,
		},
		{
			name: "valid session token, optional", cfg: optional, request: issued("alice"),
			status: 200, body: who("1", "alice"), calls: 1,
		},
		{
			name: "unknown session token: 410, cached", request: token("abcdefghijklmnopqrstuvwxyz012345"),
			status: 410, body: bodyGone, headers: noStore, calls: 1, repeat: 2,
		},
		{
			name: "unknown session token, optional", cfg: optional, request: token("abcdefghijklmnopqrstuvwxyz012345"),
			status: 410, body: bodyGone, headers: noStore, calls: 1,
		},
		{
			name: "malformed session token: 410 without allauth", request: token("abc def"),
			status: 410, body: bodyGone, headers: noStore,
		},
		{
			name: "oversized session token", request: token(strings.Repeat("a", 4097)),
			status: 410, body: bodyGone, headers: noStore,
		},
		{name: "two session tokens", request: func(srv *allauthtest.Server) *http.Request {
			return req("X-Session-Token", srv.IssueToken("alice"), "X-Session-Token", srv.IssueToken("bob"))
		}, status: 410, body: bodyGone, headers: noStore},
		{
			name: "inactive user: 401", setup: func(srv *allauthtest.Server) { srv.SetActive("carol", false) }, request: issued("carol"),
			status: 401, body: bodyInvalid, headers: noStore, calls: 1,
		},
		{
			name: "Bearer garbage under JWT: 401 without allauth", cfg: func(c doorConfig) doorConfig { return bearer(c) },
			request: func(*allauthtest.Server) *http.Request { return req("Authorization", "Bearer header.payload.") },
			status:  401, body: bodyInvalid, headers: with(noStore, "WWW-Authenticate", `Bearer error="invalid_token"`),
		},
		{
			name: "unknown cookie: 401 at the browser endpoint", cfg: cookie,
			request: func(*allauthtest.Server) *http.Request {
				return req("Cookie", "sessionid=abcdefghijklmnopqrstuvwxyz012345")
			}, status: 401, body: bodyInvalid, headers: noStore, calls: 1,
		},
		{name: "valid cookie, the last of two", cfg: cookie, request: func(srv *allauthtest.Server) *http.Request {
			return req("Cookie", "sessionid=abcdefghijklmnopqrstuvwxyz012345; sessionid="+srv.IssueCookie("bob"))
		}, status: 200, body: who("2", "bob"), calls: 1},
		{
			name: "allauth 502: 503 with Retry-After", setup: fault(allauthtest.Fault{Status: 502}), request: issued("alice"),
			status: 503, body: bodyUnavailable, headers: with(noStore, "Retry-After", "1"), calls: 1,
		},
		{
			name: "allauth 429 with an absurd Retry-After: capped", setup: fault(allauthtest.Fault{Status: 429, RetryAfter: "2147483647"}),
			request: issued("alice"), status: 503, body: bodyUnavailable, headers: with(noStore, "Retry-After", "300"), calls: 1,
		},
		{
			name: "allauth answers garbage: 503", setup: fault(allauthtest.Fault{Status: 200, Body: `{"Status": 200, "DATA": {"User": {"ID": 7}}, "Meta": {"Is_Authenticated": true}}`}),
			request: issued("alice"), status: 503, body: bodyUnavailable, headers: with(noStore, "Retry-After", "1"), calls: 1,
		},
	}
}

// TestConformance runs every row against every door.
func TestConformance(t *testing.T) {
	if len(doors) == 0 {
		t.Fatal("no front door registered")
	}
	for _, d := range doors {
		t.Run(d.name, func(t *testing.T) {
			for _, rw := range conformanceRows() {
				t.Run(rw.name, func(t *testing.T) {
					srv := newStandin(t)
					cfg := doorConfig{
						baseURL: srv.URL, sources: []string{"header:X-Session-Token"}, logger: slog.New(slog.DiscardHandler),
						evictSecret: []byte(evictSecret),
					}
					cfg.jwt = &introspect.JWTConfig{Secret: srv.JWTSecret()}
					if rw.cfg != nil {
						cfg = rw.cfg(cfg)
					}
					if !hasBearer(cfg.sources) {
						cfg.jwt = nil
					}
					serve := d.build(t, cfg)
					if rw.setup != nil {
						rw.setup(srv)
					}
					if rw.before != nil {
						for _, r := range rw.before(srv) {
							if a := serve(t, r); a.status != http.StatusOK {
								t.Fatalf("%s %s before the request: %d %q", r.Method, r.URL, a.status, a.body)
							}
						}
					}
					request := rw.request(srv)
					srv.ResetCounters()
					for i := range 1 + rw.repeat {
						a := serve(t, request.Clone(request.Context()))
						check(t, fmt.Sprintf("request %d", i+1), a, rw)
					}
					if got := srv.SessionCalls(); got != rw.calls {
						t.Errorf("allauth asked %d times, want %d", got, rw.calls)
					}
				})
			}
		})
	}
}

func hasBearer(sources []string) bool {
	for _, s := range sources {
		if s == "header:Authorization" {
			return true
		}
	}
	return false
}

func check(t *testing.T, which string, a answer, rw row) {
	t.Helper()
	switch {
	case rw.bodyPrefix != "":
		if a.status != rw.status || !strings.HasPrefix(a.body, rw.bodyPrefix) {
			t.Errorf("%s: %d %q, want %d %q...", which, a.status, a.body, rw.status, rw.bodyPrefix)
		}
	case a.status != rw.status || a.body != rw.body:
		t.Errorf("%s: %d %q, want %d %q", which, a.status, a.body, rw.status, rw.body)
	}
	for k, want := range rw.headers {
		if got := a.header.Get(k); got != want {
			t.Errorf("%s: %s = %q, want %q", which, k, got, want)
		}
	}
	if rw.status >= 400 {
		if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s: Content-Type = %q", which, ct)
		}
	}
}

// newStandin is a stand-in allauth under the JWT strategy, with alice (1),
// bob (2) and carol (3).
func newStandin(t *testing.T) *allauthtest.Server {
	t.Helper()
	srv := allauthtest.NewServer(allauthtest.WithJWT(allauthtest.JWTConfig{Algorithm: "HS256"}))
	t.Cleanup(srv.Close)
	for _, u := range []string{"alice", "bob", "carol"} {
		srv.AddUser(allauthtest.User{Username: u, Email: u + "@example.com", Password: u + "-pass-123"})
	}
	return srv
}

// closeAtEnd closes a door's middleware when its test ends, so that no
// goroutine outlives it.
func closeAtEnd(t *testing.T, c interface{ Close() error }) {
	t.Helper()
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

// TestDoorsRefuseConfigs checks that every door refuses a config that
// cannot work alike: NewMiddleware returns an error that starts with the
// door's name and says what to write, New panics with the same text, and
// EvictHandler returns an error for a secret that cannot work.
func TestDoorsRefuseConfigs(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  doorConfig
		want string // in the message
	}{
		{"no BaseURL", doorConfig{}, "Config.BaseURL"},
		{"no scheme", doorConfig{baseURL: "127.0.0.1:8000"}, `write "http://127.0.0.1:8000"`},
		{"BaseURL ends in the mount", doorConfig{baseURL: "http://127.0.0.1:8000/_allauth"}, "Config.Mount"},
		{"BaseURL is allauth's endpoint", doorConfig{baseURL: "http://127.0.0.1:8000/_allauth/app/v1/auth/session"}, "Config.Mount"},
		{"BaseURL ends in a custom mount", doorConfig{baseURL: "http://127.0.0.1:8000/accounts", mount: "/accounts"}, "Config.Mount"},
		{"not http", doorConfig{baseURL: "ftp://127.0.0.1"}, "http or https"},
		{"JWT without a Bearer source", doorConfig{baseURL: "http://127.0.0.1:8000", jwt: &introspect.JWTConfig{Secret: bytes.Repeat([]byte("k"), 32)}}, "Authorization"},
	} {
		for _, d := range doors {
			t.Run(tc.name+"/"+d.name, func(t *testing.T) {
				tc.cfg.evictSecret = []byte("too short")
				newErr, newPanic, evictErr := d.refuse(tc.cfg)
				if newErr == nil {
					t.Fatal("NewMiddleware accepted it")
				}
				msg := newErr.Error()
				if !strings.HasPrefix(msg, d.prefix) || strings.HasPrefix(strings.TrimPrefix(msg, d.prefix), "headless:") || !strings.Contains(msg, tc.want) {
					t.Errorf("NewMiddleware: %q, want %q... saying %q", msg, d.prefix, tc.want)
				}
				if newPanic != msg {
					t.Errorf("New panicked with %q, want NewMiddleware's %q", newPanic, msg)
				}
				if evictErr == nil || !strings.HasPrefix(evictErr.Error(), d.prefix) || !strings.Contains(evictErr.Error(), "32 bytes") {
					t.Errorf("EvictHandler with a short secret: %v, want an error starting %q", evictErr, d.prefix)
				}
			})
		}
	}
}

// panicOf runs f and returns what it panicked with, as text, or "".
func panicOf(f func()) (msg string) {
	defer func() {
		if p := recover(); p != nil {
			msg = fmt.Sprint(p)
		}
	}()
	f()
	return ""
}
