package fiberauth_test

import (
	"net/http"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// Row "no credential" with Optional: the handler runs anonymously; a
// credential allauth rejects still fails.
func Test_Contract_NoCredential_Optional(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := newMiddleware(t, srv, fiberauth.Config{Optional: true})
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	t.Cleanup(func() { _ = app.Shutdown() })
	app.Use(m.Handler)
	app.Get("/", func(c *fiber.Ctx) error {
		if fiberauth.UserFrom(c) != nil || fiberauth.SessionFrom(c) != nil || c.Locals("user") != nil {
			t.Error("anonymous request has a user")
		}
		return c.SendString(anonymous)
	})

	wantUser(t, do(t, app, get()), anonymous)
	wantUser(t, do(t, app, withToken("  ")), anonymous)
	wantCalls(t, srv, 0)

	wantError(t, do(t, app, withToken("abcdefghijklmnopqrstuvwxyz012345")), http.StatusGone, headless.CodeSessionGone)
	wantError(t, do(t, app, withToken("bad token")), http.StatusGone, headless.CodeSessionGone)
	wantCalls(t, srv, 1)
}

// Row "200": the user is in Locals (under "user", and via UserFrom and
// SessionFrom) and the next handler runs.
func Test_Contract_Authenticated(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	srv.AddUser(allauthtest.User{
		ID: "6f1c1b2e-8a0b-4c9e-9d51-3b1f0b1d2c3e", Username: "carol", Email: "carol@example.com",
		Password: "pw", Display: "Carol C.", Extra: map[string]any{"tenant": "acme"},
	})
	m := newMiddleware(t, srv, fiberauth.Config{})
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	t.Cleanup(func() { _ = app.Shutdown() })
	app.Use(m.Handler)
	var ran int
	app.Get("/", func(c *fiber.Ctx) error {
		ran++
		u, ok := c.Locals("user").(*introspect.User)
		if !ok || u == nil {
			t.Errorf("Locals(user) = %#v, want *introspect.User", c.Locals("user"))
			return c.SendStatus(http.StatusTeapot)
		}
		if fiberauth.UserFrom(c) != u {
			t.Error("UserFrom differs from Locals(user)")
		}
		s := fiberauth.SessionFrom(c)
		if s == nil || &s.User != u {
			t.Error("SessionFrom does not hold the user")
			return c.SendStatus(http.StatusTeapot)
		}
		if len(s.Methods) != 1 || s.Methods[0].Method != "password" || s.Methods[0].At.IsZero() {
			t.Errorf("methods = %+v, want one password login with a time", s.Methods)
		}
		var extra struct {
			Tenant string `json:"tenant"`
		}
		if err := u.Decode(&extra); err != nil || (u.Username == "carol") != (extra.Tenant == "acme") {
			t.Errorf("Decode: %v, tenant %q, raw %s", err, extra.Tenant, u.Raw)
		}
		return c.SendString(u.ID + "|" + u.Username + "|" + u.Display + "|" + u.Email)
	})

	r := do(t, app, withToken(srv.IssueToken("alice")))
	if r.Status != http.StatusOK || r.Body != "1|alice|alice|alice@example.com" {
		t.Fatalf("alice: %d %q", r.Status, r.Body)
	}
	r = do(t, app, withToken(srv.IssueToken("carol")))
	if r.Status != http.StatusOK || r.Body != "6f1c1b2e-8a0b-4c9e-9d51-3b1f0b1d2c3e|carol|Carol C.|carol@example.com" {
		t.Fatalf("carol: %d %q", r.Status, r.Body)
	}
	if ran != 2 {
		t.Fatalf("handler ran %d times, want 2", ran)
	}
	if r.Header.Get("Cache-Control") != "" {
		t.Errorf("a success carries Cache-Control %q", r.Header.Get("Cache-Control"))
	}
	wantCalls(t, srv, 2)
}
