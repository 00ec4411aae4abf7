package gateway_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/allauthgo/headless/internal/gateway"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// A proxy under test: it starts in front of a gateway and an app, and
// returns its URL.
type proxy struct {
	name  string
	start func(t *testing.T, gatewayAddr, appAddr string) string
}

var proxies = []proxy{
	{"Nginx", startNginx},
	{"Caddy", startCaddy},
}

// identity is the identity headers in the order of identityHeaders.
var identity = []string{gateway.HeaderUserID, gateway.HeaderUserEmail, gateway.HeaderUserUsername, gateway.HeaderUserDisplay, gateway.HeaderUser}

// forged is what a client sends to name itself.
var forged = []string{
	gateway.HeaderUserID, "999", gateway.HeaderUserEmail, "mallory@example.com",
	gateway.HeaderUserUsername, "mallory", gateway.HeaderUserDisplay, "Mallory",
	gateway.HeaderUser, base64.StdEncoding.EncodeToString([]byte(`{"id": 999}`)),
}

// wantRefused checks a refusal as the client got it: the doors' status,
// body and headers, and no request at the app.
func wantRefused(t *testing.T, a *app, got answer, status int, body, wwwAuth, retryAfter string) {
	t.Helper()
	if got.status != status || got.body != body {
		t.Errorf("got %d %q, want %d %q", got.status, got.body, status, body)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if cc := got.header.Values("Cache-Control"); len(cc) != 1 || cc[0] != "no-store" {
		t.Errorf("Cache-Control %q, want [no-store]", cc)
	}
	checkOne(t, got.header, "WWW-Authenticate", wwwAuth)
	checkOne(t, got.header, "Retry-After", retryAfter)
	if n := len(a.take()); n != 0 {
		t.Errorf("the app got %d requests, want none", n)
	}
}

// checkOne checks that h holds name once with value want, or not at all
// for "".
func checkOne(t *testing.T, h http.Header, name, want string) {
	t.Helper()
	vs := h.Values(name)
	switch {
	case want == "" && len(vs) != 0:
		t.Errorf("%s: %q, want none", name, vs)
	case want != "" && (len(vs) != 1 || vs[0] != want):
		t.Errorf("%s: %q, want [%q]", name, vs, want)
	}
}

// wantUser checks that the app got exactly one request, with the identity
// headers of the user (all absent or empty for "" values) and nothing the
// client forged, and returns it.
func wantUser(t *testing.T, a *app, got answer, id, email, username, display string) seen {
	t.Helper()
	if got.status != http.StatusOK || got.body != "app" {
		t.Fatalf("got %d %q, want the app's 200", got.status, got.body)
	}
	reqs := a.take()
	if len(reqs) != 1 {
		t.Fatalf("the app got %d requests, want 1", len(reqs))
	}
	h := reqs[0].header
	for i, want := range []string{id, email, username, display} {
		vs := h.Values(identity[i])
		if (want == "" && len(vs) > 1) || (want == "" && len(vs) == 1 && vs[0] != "") || (want != "" && (len(vs) != 1 || vs[0] != want)) {
			t.Errorf("the app got %s: %q, want %q", identity[i], vs, want)
		}
	}
	raw, err := base64.StdEncoding.DecodeString(h.Get(gateway.HeaderUser))
	var u struct {
		ID json.Number `json:"id"`
	}
	if err != nil || json.Unmarshal(raw, &u) != nil || u.ID.String() != id {
		t.Errorf("the app got %s %q (%q), want the user object of %s", gateway.HeaderUser, h.Get(gateway.HeaderUser), raw, id)
	}
	return reqs[0]
}

// Each proxy's documented configuration, run for real in front of the
// gateway and an app, passes the gateway's answers to the client as the
// doors answer them, and the identity (never the client's) to the app.
func TestProxies_Contract(t *testing.T) {
	for _, p := range proxies {
		t.Run(p.name, func(t *testing.T) {
			srv := newAllauth(t)
			a := newApp(t)
			_, gw := startGateway(t, testConfig(srv.URL))
			base := p.start(t, gw, a.addr())
			c := client(t)

			t.Run("200 session token", func(t *testing.T) {
				tok := srv.IssueToken("alice")
				got := do(t, c, "GET", base+"/api/me?x=1", "X-Session-Token", tok)
				r := wantUser(t, a, got, "1", "alice@example.com", "alice", "Alice Liddell")
				if r.path != "/api/me?x=1" {
					t.Errorf("the app got %q", r.path)
				}
			})
			t.Run("200 on POST", func(t *testing.T) {
				got := do(t, c, "POST", base+"/api/x", "X-Session-Token", srv.IssueToken("alice"))
				wantUser(t, a, got, "1", "alice@example.com", "alice", "Alice Liddell")
			})
			t.Run("forged identity headers never reach the app", func(t *testing.T) {
				// nomail has no email: the gateway's X-Auth-User-Email is
				// empty, and the client's must not survive.
				h := append([]string{"X-Session-Token", srv.IssueToken("nomail")}, forged...)
				got := do(t, c, "GET", base+"/api/me", h...)
				wantUser(t, a, got, "2", "", "nomail", "nomail")
			})
			t.Run("forged headers with no credential", func(t *testing.T) {
				got := do(t, c, "GET", base+"/api/me", forged...)
				wantRefused(t, a, got, 401, bodyNoCredential, "Bearer", "")
			})
			t.Run("non-ASCII values pass as UTF-8", func(t *testing.T) {
				srv.AddUser(allauthtest.User{ID: 3, Username: "jürgen", Display: "Jürgen 🦫", Email: "j@example.com"})
				got := do(t, c, "GET", base+"/api/me", "X-Session-Token", srv.IssueToken("jürgen"))
				wantUser(t, a, got, "3", "j@example.com", "jürgen", "Jürgen 🦫")
			})
			t.Run("browser cookie", func(t *testing.T) {
				cookie := "csrftoken=abc; sessionid=" + srv.IssueCookie("alice")
				got := do(t, c, "GET", base+"/page", "Cookie", cookie)
				r := wantUser(t, a, got, "1", "alice@example.com", "alice", "Alice Liddell")
				if r.header.Get("Cookie") != cookie {
					t.Errorf("the app got Cookie %q, want %q", r.header.Get("Cookie"), cookie)
				}
			})
			t.Run("the app's own 401, 410 and 500 pass untouched", func(t *testing.T) {
				tok := srv.IssueToken("alice")
				for _, code := range []string{"401", "410", "500", "503"} {
					got := do(t, c, "GET", base+"/status/"+code, "X-Session-Token", tok)
					if itoa(got.status) != code || got.body != "app says "+code {
						t.Errorf("the app's %s reached the client as %d %q", code, got.status, got.body)
					}
					if n := len(a.take()); n != 1 {
						t.Errorf("the app got %d requests, want 1", n)
					}
				}
			})
			t.Run("401 no credential", func(t *testing.T) {
				wantRefused(t, a, do(t, c, "GET", base+"/api/me"), 401, bodyNoCredential, "Bearer", "")
			})
			t.Run("401 bad Bearer token", func(t *testing.T) {
				got := do(t, c, "GET", base+"/api/me", "Authorization", "Bearer "+strings.Repeat("x", 32))
				wantRefused(t, a, got, 401, bodyInvalid, `Bearer error="invalid_token"`, "")
			})
			t.Run("401 logged-out cookie", func(t *testing.T) {
				ck := srv.IssueCookie("alice")
				srv.Logout(ck)
				got := do(t, c, "GET", base+"/page", "Cookie", "sessionid="+ck)
				wantRefused(t, a, got, 401, bodyInvalid, "Bearer", "")
			})
			t.Run("410 unknown session token", func(t *testing.T) {
				got := do(t, c, "GET", base+"/api/me", "X-Session-Token", strings.Repeat("z", 32))
				wantRefused(t, a, got, 410, bodyGone, "", "")
			})
			t.Run("503 with allauth's Retry-After", func(t *testing.T) {
				srv.SetFault(allauthtest.Fault{Status: 503, RetryAfter: "7"})
				defer srv.SetFault(allauthtest.Fault{})
				got := do(t, c, "GET", base+"/api/me", "X-Session-Token", srv.IssueToken("alice"))
				wantRefused(t, a, got, 503, bodyUnavailable, "", "7")
			})
			t.Run("logout through the eviction webhook", func(t *testing.T) {
				tok := srv.IssueToken("alice")
				wantUser(t, a, do(t, c, "GET", base+"/a", "X-Session-Token", tok), "1", "alice@example.com", "alice", "Alice Liddell")
				srv.Logout(tok)
				// Cached: still let through until the webhook says otherwise.
				wantUser(t, a, do(t, c, "GET", base+"/a", "X-Session-Token", tok), "1", "alice@example.com", "alice", "Alice Liddell")
				if got := evict(t, c, gw, tok); got.status != 200 || !strings.Contains(got.body, `"evicted": `) {
					t.Fatalf("eviction: %d %s", got.status, got.body)
				}
				wantRefused(t, a, do(t, c, "GET", base+"/a", "X-Session-Token", tok), 410, bodyGone, "", "")
			})
		})
	}
}

// allauth down (nothing listens at ALLAUTH_URL): every proxy answers the
// doors' 503 with Retry-After, and the app sees nothing.
func TestProxies_AllauthDown(t *testing.T) {
	for _, p := range proxies {
		t.Run(p.name, func(t *testing.T) {
			a := newApp(t)
			_, gw := startGateway(t, testConfig("http://127.0.0.1:"+itoa(freePort(t))))
			base := p.start(t, gw, a.addr())
			c := client(t)
			got := do(t, c, "GET", base+"/api/me", "X-Session-Token", strings.Repeat("a", 32))
			wantRefused(t, a, got, 503, bodyUnavailable, "", "1")
		})
	}
}

// OPTIONAL: a request without a credential goes through as anonymous, and
// the identity headers a client forged never reach the app: the gateway's
// are all empty, and every proxy drops the client's.
func TestProxies_OptionalAnonymousForged(t *testing.T) {
	for _, p := range proxies {
		t.Run(p.name, func(t *testing.T) {
			srv := newAllauth(t)
			a := newApp(t)
			cfg := testConfig(srv.URL)
			cfg.Optional = true
			_, gw := startGateway(t, cfg)
			base := p.start(t, gw, a.addr())
			got := do(t, client(t), "GET", base+"/public", forged...)
			if got.status != 200 || got.body != "app" {
				t.Fatalf("got %d %q", got.status, got.body)
			}
			reqs := a.take()
			if len(reqs) != 1 {
				t.Fatalf("the app got %d requests", len(reqs))
			}
			for _, h := range identity {
				if v := reqs[0].header.Values(h); len(v) > 1 || (len(v) == 1 && v[0] != "") {
					t.Errorf("the app got %s: %q, want none or empty", h, v)
				}
			}
		})
	}
}
