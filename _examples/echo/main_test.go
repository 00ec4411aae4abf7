package main

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.uber.org/goleak"

	"github.com/allauthgo/headless/httpauth"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	bodyNoCredential = `{"status": 401, "errors": [{"code": "not_authenticated", "message": "No credential was provided."}]}`
	bodyGone         = `{"status": 410, "errors": [{"code": "session_gone", "message": "The session is gone; log in again."}]}`
	bodyUnavailable  = `{"status": 503, "errors": [{"code": "upstream_unavailable", "message": "Authentication is unavailable; try again shortly."}]}`
	unknownToken     = "abcdefghijklmnopqrstuvwxyz012345"
)

// The API against a stand-in allauth: each route answers the right user,
// or refuses with allauth's envelope without running its handler (the body
// would then hold the handler's JSON too).
func TestAPI(t *testing.T) {
	srv := allauthtest.NewServer()
	t.Cleanup(srv.Close)
	srv.AddUser(allauthtest.User{ID: 1, Username: "alice", Password: "alice-pass"})
	srv.AddUser(allauthtest.User{ID: 2, Username: "bob", Password: "bob-pass"})
	auth, err := httpauth.NewMiddleware(httpauth.Config{BaseURL: srv.URL, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = auth.Close() })
	api := newAPI(auth)
	alice, bob := srv.IssueToken("alice"), srv.IssueToken("bob")

	for _, tc := range []struct {
		name, path, token string
		status            int
		user              string // the username answered; "" for anonymous
		body              string // exact, for refusals
	}{
		{name: "required, alice", path: "/api/me", token: alice, status: 200, user: "alice"},
		{name: "required, bob", path: "/api/me", token: bob, status: 200, user: "bob"},
		{name: "required, no token", path: "/api/me", status: 401, body: bodyNoCredential},
		{name: "required, unknown token", path: "/api/me", token: unknownToken, status: 410, body: bodyGone},
		{name: "optional, anonymous", path: "/api/public", status: 200},
		{name: "optional, bob", path: "/api/public", token: bob, status: 200, user: "bob"},
		{name: "optional, unknown token", path: "/api/public", token: unknownToken, status: 410, body: bodyGone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := get(api, tc.path, tc.token)
			if status != tc.status {
				t.Fatalf("%d %s, want %d", status, body, tc.status)
			}
			if tc.body != "" {
				if body != tc.body {
					t.Errorf("body %s, want %s", body, tc.body)
				}
				return
			}
			if got := username(t, tc.path, body); got != tc.user {
				t.Errorf("user %q (%s), want %q", got, body, tc.user)
			}
		})
	}

	if status, body := get(api, "/readyz", ""); status != http.StatusOK {
		t.Errorf("/readyz: %d %s", status, body)
	}
	// allauth failing: 503 for a token not cached yet, never 401 or 410.
	srv.SetFault(allauthtest.Fault{Status: http.StatusBadGateway})
	if status, body := get(api, "/api/me", srv.IssueToken("alice")); status != http.StatusServiceUnavailable || body != bodyUnavailable {
		t.Errorf("allauth down: %d %s", status, body)
	}
}

func get(h http.Handler, path, token string) (int, string) {
	req := httptest.NewRequest(http.MethodGet, path, http.NoBody)
	if token != "" {
		req.Header.Set("X-Session-Token", token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// username reads the user out of /api/me's or /api/public's answer.
func username(t *testing.T, path, body string) string {
	t.Helper()
	var u struct {
		Username string `json:"username"`
	}
	if path == "/api/public" {
		var wrapped struct {
			User *struct {
				Username string `json:"username"`
			} `json:"user"`
		}
		if err := json.Unmarshal([]byte(body), &wrapped); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if wrapped.User == nil {
			return ""
		}
		return wrapped.User.Username
	}
	if err := json.Unmarshal([]byte(body), &u); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	return u.Username
}
