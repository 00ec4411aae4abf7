package fiberauth_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/fiberauth"
)

// readyBody is the readiness check's JSON.
type readyBody struct {
	Status  string   `json:"status"`
	Checked string   `json:"checked"`
	Age     *float64 `json:"age_seconds"`
	Reason  string   `json:"reason"`
}

// readyApp mounts m.Ready(cfg) at /readyz, ahead of the middleware, which
// guards every other path.
func readyApp(t *testing.T, m *fiberauth.Middleware, cfg headless.ReadyConfig) *fiber.App {
	t.Helper()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/readyz", m.Ready(cfg))
	app.Use(m.Handler)
	app.Get("/*", whoHandler)
	t.Cleanup(func() { _ = app.Shutdown() })
	return app
}

// ready asks /readyz and checks the answer's shape.
func ready(t *testing.T, app *fiber.App, status int, checked string) readyBody {
	t.Helper()
	r := do(t, app, getPath("/readyz"))
	var b readyBody
	if err := json.Unmarshal([]byte(r.Body), &b); err != nil {
		t.Fatalf("body %q is not JSON: %v", r.Body, err)
	}
	word := map[int]string{http.StatusOK: "up", http.StatusServiceUnavailable: "down"}[status]
	if r.Status != status || b.Status != word || b.Checked != checked || b.Age == nil || *b.Age < 0 {
		t.Fatalf("readyz = %d %s, want %d with status %q, checked %q", r.Status, r.Body, status, word, checked)
	}
	if (status == http.StatusOK) != (b.Reason == "") {
		t.Errorf("reason %q on a %d", b.Reason, status)
	}
	if r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("Content-Type") != fiber.MIMEApplicationJSON {
		t.Errorf("headers %v", r.Header)
	}
	return b
}

// The readiness check is the core's (root ready_test.go); here, that
// ReadyHandler mounts it on Fiber and sees the middleware's lookups.
func Test_Ready_RecentLookup(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := newMiddleware(t, srv, fiberauth.Config{})
	app := readyApp(t, m, headless.ReadyConfig{})
	wantUser(t, do(t, app, withToken(srv.IssueToken("alice"))), "alice")
	for range 5 {
		ready(t, app, http.StatusOK, "recent")
	}
	// allauth's 410 is one of its own answers too.
	wantError(t, do(t, app, withToken("abcdefghijklmnopqrstuvwxyz012345")), http.StatusGone, headless.CodeSessionGone)
	ready(t, app, http.StatusOK, "recent")
	wantCalls(t, srv, 2)
}
