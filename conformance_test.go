package headless_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// The contract, as one table run against every front door: the same
// requests get the same statuses, bodies, headers and calls to allauth,
// whichever framework serves them.

// doorConfig is what a conformance row asks of a door, in words every door
// understands.
type doorConfig struct {
	baseURL  string
	sources  []string // "header:X-Session-Token", "header:Authorization", "cookie:sessionid"
	optional bool
	jwt      *introspect.JWTConfig
	logger   *slog.Logger
}

// roundTrip serves one request and returns the answer.
type roundTrip func(t *testing.T, req *http.Request) answer

type answer struct {
	status int
	header http.Header
	body   string
}

// door builds an app for a config: it answers "<id> <username>" for an
// authenticated request and "anonymous" for an anonymous one.
type door struct {
	name  string
	build func(t *testing.T, cfg doorConfig) roundTrip
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
	name    string
	cfg     func(base doorConfig) doorConfig
	setup   func(srv *allauthtest.Server) // e.g. a fault
	request func(srv *allauthtest.Server) *http.Request
	status  int
	body    string            // exact
	headers map[string]string // exact; "" means absent
	calls   int64             // session calls at allauth for this request
	repeat  int               // the request is sent this many more times, with no further calls
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
	return []row{
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
					cfg := doorConfig{baseURL: srv.URL, sources: []string{"header:X-Session-Token"}, logger: slog.New(slog.DiscardHandler)}
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
	if a.status != rw.status || a.body != rw.body {
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
