package fiberauth_test

import (
	"net/http"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// ConfigDefault holds the values New uses: a core setting changed there
// (NegativeTTL, Mount) changes what a middleware built after does. Not
// parallel: it changes a package variable, restored when it ends.
func TestConfigDefault_IsWhatNewUses(t *testing.T) {
	saved := fiberauth.ConfigDefault
	t.Cleanup(func() { fiberauth.ConfigDefault = saved })
	srv := newAllauth(t, allauthtest.WithMount("/api/auth"))
	alice := srv.IssueToken("alice")

	// As shipped: allauth's 401 is cached (NegativeTTL), so two requests
	// with a bad token make one call.
	app := newApp(t, newMiddleware(t, srv, fiberauth.Config{Mount: "/api/auth"}).Handler)
	for range 2 {
		if r := do(t, app, withToken("bad")); r.Status != http.StatusGone {
			t.Fatalf("bad token: %d, want 410 (allauth: no such session)", r.Status)
		}
	}
	wantCalls(t, srv, 1)

	fiberauth.ConfigDefault.NegativeTTL = -1 // off
	fiberauth.ConfigDefault.Mount = "/api/auth"
	app = newApp(t, newMiddleware(t, srv, fiberauth.Config{}).Handler)
	if r := do(t, app, withToken(alice)); r.Status != http.StatusOK { // Mount from ConfigDefault
		t.Fatalf("alice: %d %q, want 200: ConfigDefault.Mount was not used", r.Status, r.Body)
	}
	wantCalls(t, srv, 2)
	for range 2 {
		if r := do(t, app, withToken("bad")); r.Status != http.StatusGone {
			t.Fatalf("bad token: %d, want 410 (allauth: no such session)", r.Status)
		}
	}
	wantCalls(t, srv, 4) // ConfigDefault.NegativeTTL = -1: nothing cached

	// The door's own fields too: where the credential is read, the Locals
	// key, the error handler.
	fiberauth.ConfigDefault.KeyLookup = "header:X-Other"
	fiberauth.ConfigDefault.ContextKey = "who"
	fiberauth.ConfigDefault.ErrorHandler = func(c *fiber.Ctx, _ error) error { return c.SendStatus(http.StatusTeapot) }
	// A fresh app: newApp's catch-all route would answer before /who.
	app = fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(newMiddleware(t, srv, fiberauth.Config{}).Handler)
	app.Get("/who", func(c *fiber.Ctx) error {
		u, _ := c.Locals("who").(*introspect.User)
		if u == nil {
			return c.SendString("no user under \"who\"")
		}
		return c.SendString(u.Username)
	})
	if r := do(t, app, getPath("/who", "X-Other", alice)); r.Status != http.StatusOK || r.Body != "alice" {
		t.Fatalf("token in X-Other: %d %q, want 200 alice: ConfigDefault's source or ContextKey was not used", r.Status, r.Body)
	}
	if r := do(t, app, withToken(alice)); r.Status != http.StatusTeapot {
		t.Fatalf("token in %s only: %d, want 418 from ConfigDefault.ErrorHandler", "X-Session-Token", r.Status)
	}
}
