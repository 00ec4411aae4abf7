package fiberauth_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/gofiber/fiber/v2"

	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// exampleRequest runs GET path with an X-Session-Token through app and
// prints the status and body.
func exampleRequest(app *fiber.App, path, token string) {
	req := httptest.NewRequest(http.MethodGet, path, http.NoBody)
	if token != "" {
		req.Header.Set(fiberauth.HeaderSessionToken, token)
	}
	resp, err := app.Test(req, -1)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body))
}

func ExampleNew() {
	// A stand-in for the Django project that serves allauth.
	allauth := allauthtest.NewServer()
	defer allauth.Close()
	allauth.AddUser(allauthtest.User{Username: "alice", Email: "alice@example.com", Password: "alice-pass"})
	token := allauth.IssueToken("alice") // what the app got from allauth's login

	// New's cache lives as long as the program. This example makes the
	// Middleware, to Close it, since the package's tests fail on leftover
	// goroutines; a program just writes
	// app.Use(fiberauth.New(fiberauth.Config{BaseURL: ...})).
	m, err := fiberauth.NewMiddleware(fiberauth.Config{BaseURL: allauth.URL})
	if err != nil {
		panic(err) // the config is written here: it cannot fail
	}
	defer func() { _ = m.Close() }()

	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	defer func() { _ = app.Shutdown() }()
	app.Use(m.Handler)
	app.Get("/api/me", func(c *fiber.Ctx) error {
		return c.SendString("hello " + fiberauth.UserFrom(c).Username)
	})

	exampleRequest(app, "/api/me", token)
	exampleRequest(app, "/api/me", "")
	// Output:
	// 200 hello alice
	// 401 {"status": 401, "errors": [{"code": "not_authenticated", "message": "No credential was provided."}]}
}

func ExampleMiddleware_Evict() {
	allauth := allauthtest.NewServer()
	defer allauth.Close()
	allauth.AddUser(allauthtest.User{Username: "alice", Password: "alice-pass"})
	token := allauth.IssueToken("alice")

	auth, err := fiberauth.NewMiddleware(fiberauth.Config{BaseURL: allauth.URL})
	if err != nil {
		panic(err) // the config is written here: it cannot fail
	}
	defer func() { _ = auth.Close() }()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	defer func() { _ = app.Shutdown() }()
	app.Use(auth.Handler)
	app.Post("/logout", func(c *fiber.Ctx) error {
		// After logging the session out at allauth, drop it from the cache
		// too, so it is refused at once rather than after CacheTTL.
		allauth.Logout(c.Get(fiberauth.HeaderSessionToken))
		if err := auth.Evict(c.UserContext(), c.Get(fiberauth.HeaderSessionToken)); err != nil {
			return err
		}
		return c.SendStatus(http.StatusNoContent)
	})
	app.Get("/", func(c *fiber.Ctx) error { return c.SendString("ok") })

	exampleRequest(app, "/", token)
	req := httptest.NewRequest(http.MethodPost, "/logout", http.NoBody)
	req.Header.Set(fiberauth.HeaderSessionToken, token)
	if resp, err := app.Test(req, -1); err == nil {
		fmt.Println(resp.StatusCode)
		_ = resp.Body.Close()
	}
	exampleRequest(app, "/", token)
	fmt.Println("evicting a token nobody cached:", auth.Evict(context.Background(), "unknown"))
	// Output:
	// 200 ok
	// 204
	// 410 {"status": 410, "errors": [{"code": "session_gone", "message": "The session is gone; log in again."}]}
	// evicting a token nobody cached: <nil>
}

func ExampleUserFrom() {
	allauth := allauthtest.NewServer()
	defer allauth.Close()
	allauth.AddUser(allauthtest.User{
		ID: 42, Username: "alice", Email: "alice@example.com", Password: "alice-pass",
		Extra: map[string]any{"tenant": "acme"}, // a field the project's serialize_user adds
	})

	auth, err := fiberauth.NewMiddleware(fiberauth.Config{BaseURL: allauth.URL, Optional: true})
	if err != nil {
		panic(err) // the config is written here: it cannot fail
	}
	defer func() { _ = auth.Close() }()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	defer func() { _ = app.Shutdown() }()
	app.Use(auth.Handler)
	app.Get("/", func(c *fiber.Ctx) error {
		u := fiberauth.UserFrom(c)
		if u == nil {
			return c.SendString("anonymous") // Optional: no credential, no user
		}
		var extra struct {
			Tenant string `json:"tenant"`
		}
		if err := u.Decode(&extra); err != nil {
			return err
		}
		return c.SendString(fmt.Sprintf("id=%s username=%s email=%s tenant=%s", u.ID, u.Username, u.Email, extra.Tenant))
	})

	exampleRequest(app, "/", allauth.IssueToken("alice"))
	exampleRequest(app, "/", "")
	// Output:
	// 200 id=42 username=alice email=alice@example.com tenant=acme
	// 200 anonymous
}

// NewMiddleware says what is wrong with a config and what to write instead;
// New panics with the same message.
func ExampleNewMiddleware_error() {
	_, err := fiberauth.NewMiddleware(fiberauth.Config{BaseURL: "127.0.0.1:8000"})
	fmt.Println(err)
	// Output:
	// fiberauth: Config.BaseURL "127.0.0.1:8000" has no scheme: write "http://127.0.0.1:8000" (or https:// when Django serves TLS)
}
