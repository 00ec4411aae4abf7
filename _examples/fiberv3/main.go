// Command fiberv3 is the smallest Fiber v3 API that trusts a django-allauth
// headless login, through fiberauth/v3.
//
//	go run ./_examples/fiberv3
//
// With ALLAUTH_URL unset it also starts a stand-in allauth (package
// allauthtest) with the user demo / demo-password, and prints the curl
// commands to log in and call the API. Environment:
//
//	ADDR          where the API listens (default 127.0.0.1:3000)
//	ALLAUTH_URL   a real allauth, e.g. http://127.0.0.1:8000 (default: the stand-in)
//	STANDIN_ADDR  where the stand-in listens (default 127.0.0.1:8000)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v3"
	"github.com/gofiber/fiber/v3/extractors"

	"github.com/allauthgo/headless"
	fiberauth "github.com/allauthgo/headless/fiberauth/v3"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// run serves the API until ctx ends, then shuts down and returns nil.
func run(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", orDefault(getenv("ADDR"), "127.0.0.1:3000"))
	if err != nil {
		return fmt.Errorf("API on ADDR: %w", err)
	}
	defer func() { _ = ln.Close() }()

	allauthURL := getenv("ALLAUTH_URL")
	if allauthURL == "" {
		standin, err := startStandin(ctx, orDefault(getenv("STANDIN_ADDR"), "127.0.0.1:8000"))
		if err != nil {
			return err
		}
		defer standin.Close()
		allauthURL = standin.URL
	}

	// One middleware, one cache, for both routes. The session token, or a
	// browser's session cookie.
	auth, err := fiberauth.NewMiddleware(fiberauth.Config{ //nolint:contextcheck // the middleware outlives this call; it takes no request's context
		BaseURL: allauthURL,
		Extractor: extractors.Chain(
			extractors.FromHeader(headless.HeaderSessionToken),
			extractors.FromCookie("sessionid"),
		),
		Logger: log,
	})
	if err != nil { // ALLAUTH_URL comes from outside: say what is wrong with it
		return fmt.Errorf("ALLAUTH_URL=%q: %w", allauthURL, err)
	}
	defer func() { _ = auth.Close() }()

	app := fiber.New()
	app.Get("/healthz", func(c fiber.Ctx) error { return c.SendString("ok") })
	// Protected: no valid session, no answer (401, or 410 for a dead token).
	app.Get("/api/me", auth.Handler, func(c fiber.Ctx) error {
		return c.JSON(fiberauth.UserFrom(c))
	})
	// Optional: anonymous without a credential; a bad one still fails.
	app.Get("/api/public", auth.Optional, func(c fiber.Ctx) error {
		return c.JSON(fiber.Map{"user": fiberauth.UserFrom(c)}) // null when anonymous
	})

	api := "http://" + ln.Addr().String()
	_, _ = fmt.Fprintf(stdout, `allauth on %s; API on %s
Log in (the stand-in's user is %s / %s) and keep the session token:
  TOKEN=$(curl -s -X POST %s/_allauth/app/v1/auth/login -H 'Content-Type: application/json' -d '{"username": "demo", "password": "demo-password"}' | sed -E 's/.*"session_token": "([a-z0-9]+)".*/\1/')
Call the API:
  curl -s %s/api/me -H "X-Session-Token: $TOKEN"
  curl -s %s/api/public
Stop with Ctrl-C.
`, allauthURL, api, demoUser, demoPassword, allauthURL, api, api)

	served := make(chan error, 1)
	go func() { served <- app.Listener(ln, fiber.ListenConfig{DisableStartupMessage: true}) }()
	log.Info("serving", "api", api, "allauth", allauthURL)
	select {
	case err := <-served:
		return fmt.Errorf("API: %w", err)
	case <-ctx.Done():
	}
	shutdownErr := app.ShutdownWithTimeout(5 * time.Second)
	if err := errors.Join(shutdownErr, <-served); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// The demo user of the stand-in allauth.
const (
	demoUser     = "demo"
	demoPassword = "demo-password"
)

// startStandin starts the stand-in allauth on addr with the demo user.
func startStandin(ctx context.Context, addr string) (*allauthtest.Server, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("stand-in allauth on STANDIN_ADDR (or set ALLAUTH_URL to use a real one): %w", err)
	}
	srv := allauthtest.NewUnstartedServer() //nolint:contextcheck // takes no context: it only binds a loopback port
	_ = srv.Listener.Close()                // the free port it picked; ours replaces it
	srv.Listener = ln
	srv.Start()
	srv.AddUser(allauthtest.User{Username: demoUser, Email: "demo@example.com", Password: demoPassword})
	return srv, nil
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}
