package gateway_test

import (
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/httpauth"
	"github.com/allauthgo/headless/internal/gateway"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// newGateway builds a gateway for cfg, served in process (no listener).
func newGateway(tb testing.TB, cfg gateway.Config) *gateway.Gateway {
	tb.Helper()
	g, err := gateway.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = g.Close() })
	return g
}

func serve(h http.Handler, method, path string, headers ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, http.NoBody)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// The gateway refuses exactly as the net/http door does: same status, body
// and headers, for every kind of refusal.
func TestAuth_RefusesAsTheDoors(t *testing.T) {
	srv := newAllauth(t)
	g := newGateway(t, testConfig(srv.URL))
	door, err := httpauth.NewMiddleware(httpauth.Config{
		BaseURL: srv.URL, Logger: slog.New(slog.DiscardHandler),
		Sources: []headless.Source{headless.FromHeader("X-Session-Token"), headless.FromAuthHeader("Bearer"), headless.FromCookie("sessionid")},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = door.Close() }()
	doorH := door.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))

	for _, tc := range []struct {
		name    string
		fault   allauthtest.Fault
		headers []string
		status  int
	}{
		{"no credential", allauthtest.Fault{}, nil, 401},
		{"unknown token", allauthtest.Fault{}, []string{"X-Session-Token", strings.Repeat("q", 32)}, 410},
		{"malformed token", allauthtest.Fault{}, []string{"X-Session-Token", "no spaces allowed"}, 410},
		{"two tokens", allauthtest.Fault{}, []string{"X-Session-Token", strings.Repeat("q", 32), "X-Session-Token", strings.Repeat("r", 32)}, 410},
		{"bad bearer", allauthtest.Fault{}, []string{"Authorization", "Bearer " + strings.Repeat("b", 40)}, 401},
		{"unknown cookie", allauthtest.Fault{}, []string{"Cookie", "sessionid=" + strings.Repeat("c", 32)}, 401},
		{"allauth 429", allauthtest.Fault{Status: 429, RetryAfter: "12"}, []string{"X-Session-Token", strings.Repeat("s", 32)}, 503},
		{"allauth 502", allauthtest.Fault{Status: 502}, []string{"X-Session-Token", strings.Repeat("t", 32)}, 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.SetFault(tc.fault)
			defer srv.SetFault(allauthtest.Fault{})
			got := serve(g, "GET", "/auth", tc.headers...)
			if tc.fault != (allauthtest.Fault{}) {
				// the door must not answer from the gateway's lookup
				for i := 1; i < len(tc.headers); i += 2 {
					tc.headers[i] += "x"
				}
			}
			want := serve(doorH, "GET", "/", tc.headers...)
			if got.Code != tc.status || want.Code != tc.status {
				t.Fatalf("gateway %d, door %d, want %d", got.Code, want.Code, tc.status)
			}
			if got.Body.String() != want.Body.String() {
				t.Errorf("gateway %q, door %q", got.Body.String(), want.Body.String())
			}
			for _, h := range []string{"Content-Type", "Cache-Control", "WWW-Authenticate", "Retry-After"} {
				if g, w := got.Header().Values(h), want.Header().Values(h); strings.Join(g, "|") != strings.Join(w, "|") {
					t.Errorf("%s: gateway %q, door %q", h, g, w)
				}
			}
			for _, h := range identity {
				if _, ok := got.Header()[h]; ok {
					t.Errorf("a refusal carries %s", h)
				}
			}
			if _, ok := got.Header()[gateway.HeaderErrorBody]; ok {
				t.Errorf("/auth carries %s", gateway.HeaderErrorBody)
			}
		})
	}
}

// /nginx/auth is /auth plus the refusal's body in a header, for nginx's
// error_page; /auth/<path> is /auth, for Envoy's path_prefix.
func TestAuth_Paths(t *testing.T) {
	srv := newAllauth(t)
	g := newGateway(t, testConfig(srv.URL))
	got := serve(g, "GET", "/nginx/auth", "X-Session-Token", strings.Repeat("q", 32))
	if got.Code != 410 || got.Header().Get(gateway.HeaderErrorBody) != bodyGone || got.Body.String() != bodyGone {
		t.Errorf("/nginx/auth: %d %q, header %q", got.Code, got.Body.String(), got.Header().Get(gateway.HeaderErrorBody))
	}
	tok := srv.IssueToken("alice")
	for _, p := range []string{"/auth", "/auth/api/me", "/nginx/auth"} {
		for _, m := range []string{"GET", "POST", "DELETE", "HEAD"} {
			got := serve(g, m, p, "X-Session-Token", tok)
			if got.Code != 200 || got.Header().Get(gateway.HeaderUserID) != "1" {
				t.Errorf("%s %s: %d, user %q", m, p, got.Code, got.Header().Get(gateway.HeaderUserID))
			}
		}
	}
	for _, p := range []string{"/", "/authx", "/nginx/auth/x", "/_allauthgo/evictx"} {
		if got := serve(g, "GET", p, "X-Session-Token", tok); got.Code != 404 {
			t.Errorf("%s: %d, want 404", p, got.Code)
		}
	}
}

// A 200 always carries every identity header, empty where allauth has no
// value (so that a proxy copying them overwrites the client's); control
// characters in allauth's values never reach a header.
func TestAuth_IdentityHeaders(t *testing.T) {
	srv := newAllauth(t)
	srv.AddUser(allauthtest.User{ID: "3f2c1f0e-8a51-4c6e-9a55-0b7b1f6a2d10", Username: "evil", Display: "Eve\r\nX-Auth-User-Id: 1\x00\x7f", Email: "eve@example.com"})
	cfg := testConfig(srv.URL)
	cfg.Optional = true
	g := newGateway(t, cfg)

	check := func(name string, got *httptest.ResponseRecorder, want map[string]string) {
		t.Helper()
		if got.Code != 200 || got.Body.Len() != 0 {
			t.Errorf("%s: %d %q", name, got.Code, got.Body.String())
		}
		for _, h := range identity {
			vs, ok := got.Header()[h]
			if !ok || len(vs) != 1 {
				t.Errorf("%s: %s is %q, want one value", name, h, vs)
				continue
			}
			if w, ok := want[h]; ok && vs[0] != w {
				t.Errorf("%s: %s = %q, want %q", name, h, vs[0], w)
			}
		}
		if cc := got.Header().Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q", name, cc)
		}
	}
	check("anonymous", serve(g, "GET", "/auth"), map[string]string{
		gateway.HeaderUserID: "", gateway.HeaderUserEmail: "", gateway.HeaderUserUsername: "", gateway.HeaderUserDisplay: "", gateway.HeaderUser: "",
	})
	check("no email", serve(g, "GET", "/auth", "X-Session-Token", srv.IssueToken("nomail")), map[string]string{
		gateway.HeaderUserID: "2", gateway.HeaderUserEmail: "", gateway.HeaderUserUsername: "nomail", gateway.HeaderUserDisplay: "nomail",
	})
	got := serve(g, "GET", "/auth", "X-Session-Token", srv.IssueToken("evil"))
	check("control characters", got, map[string]string{
		gateway.HeaderUserID: "3f2c1f0e-8a51-4c6e-9a55-0b7b1f6a2d10", gateway.HeaderUserDisplay: "Eve  X-Auth-User-Id: 1  ",
	})
	raw, err := base64.StdEncoding.DecodeString(got.Header().Get(gateway.HeaderUser))
	if err != nil || !strings.Contains(string(raw), `"display": "Eve\r\nX-Auth-User-Id: 1\u0000\u007f"`) {
		t.Errorf("X-Auth-User decodes to %q (%v), want allauth's user object as sent", raw, err)
	}
}

// JWT_PUBLIC_KEY: allauth's JWTs are verified in process, without a call.
func TestAuth_JWT(t *testing.T) {
	srv := allauthtest.NewServer(allauthtest.WithJWT(allauthtest.JWTConfig{}))
	defer srv.Close()
	srv.AddUser(allauthtest.User{Username: "alice", Password: "alice-pass-123"})
	access, _ := srv.IssueJWT("alice")
	key := t.TempDir() + "/jwt.pem"
	if err := os.WriteFile(key, srv.JWTPublicKeyPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(srv.URL)
	cfg.JWTPublicKey = key
	g := newGateway(t, cfg)
	srv.ResetCounters()
	got := serve(g, "GET", "/auth", "Authorization", "Bearer "+access)
	if got.Code != 200 || got.Header().Get(gateway.HeaderUserID) != "1" {
		t.Fatalf("%d, user %q", got.Code, got.Header().Get(gateway.HeaderUserID))
	}
	if got := serve(g, "GET", "/auth", "Authorization", "Bearer "+access+"x"); got.Code != 401 ||
		got.Header().Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
		t.Errorf("tampered JWT: %d %q", got.Code, got.Header().Get("WWW-Authenticate"))
	}
	if n := srv.SessionCalls(); n != 0 {
		t.Errorf("allauth was asked %d times, want 0", n)
	}
}

// /healthz, /readyz, /metrics; the webhook only with EVICT_SECRET.
func TestOperationalEndpoints(t *testing.T) {
	srv := newAllauth(t)
	g := newGateway(t, testConfig(srv.URL))
	if got := serve(g, "GET", "/healthz"); got.Code != 200 || got.Body.String() != "ok\n" {
		t.Errorf("/healthz: %d %q", got.Code, got.Body.String())
	}
	if got := serve(g, "GET", "/readyz"); got.Code != 200 || !strings.Contains(got.Body.String(), `"status": "up"`) {
		t.Errorf("/readyz: %d %q", got.Code, got.Body.String())
	}
	serve(g, "GET", "/auth", "X-Session-Token", srv.IssueToken("alice"))
	if got := serve(g, "GET", "/metrics"); got.Code != 200 || !strings.Contains(got.Body.String(), `outcome="authenticated"`) {
		t.Errorf("/metrics: %d %q", got.Code, got.Body.String())
	}
	if got := serve(g, "GET", "/_allauthgo/evict"); got.Code != 405 {
		t.Errorf("GET of the webhook: %d, want 405", got.Code)
	}

	cfg := testConfig(srv.URL)
	cfg.EvictSecret = ""
	if got := serve(newGateway(t, cfg), "POST", "/_allauthgo/evict"); got.Code != 404 {
		t.Errorf("webhook without EVICT_SECRET: %d, want 404", got.Code)
	}
}
