// Command basic is the smallest useful setup: a Fiber API that trusts a
// django-allauth headless login.
//
//	go run ./_examples/basic
//
// With ALLAUTH_URL unset it also starts a stand-in allauth (package
// allauthtest) with the user demo / demo-password, and prints the curl
// commands to log in and call the API. Environment:
//
//	ADDR          where the API listens (default 127.0.0.1:3000)
//	ALLAUTH_URL   a real allauth, e.g. http://127.0.0.1:8000 (default: the stand-in)
//	STANDIN_ADDR  where the stand-in listens (default 127.0.0.1:8000)
//	CACHE_TTL     how long an answer of allauth is reused, e.g. 10s (default 30s)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// The demo user of the stand-in allauth.
const (
	demoUser     = "demo"
	demoPassword = "demo-password"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		var bad *envError
		if errors.As(err, &bad) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// envError is a bad environment variable: the process exits with code 2.
type envError struct{ name, value, why string }

func (e *envError) Error() string { return fmt.Sprintf("%s=%q: %s", e.name, e.value, e.why) }

// config is what run reads from the environment.
type config struct {
	addr       string
	allauthURL string // "" starts the stand-in
	standin    string
	cacheTTL   time.Duration
}

func readConfig(getenv func(string) string) (config, error) {
	cfg := config{
		addr:       orDefault(getenv("ADDR"), "127.0.0.1:3000"),
		allauthURL: getenv("ALLAUTH_URL"),
		standin:    orDefault(getenv("STANDIN_ADDR"), "127.0.0.1:8000"),
		cacheTTL:   headless.DefaultCacheTTL,
	}
	if err := checkAddr("ADDR", cfg.addr); err != nil {
		return cfg, err
	}
	if err := checkAddr("STANDIN_ADDR", cfg.standin); err != nil {
		return cfg, err
	}
	if v := cfg.allauthURL; v != "" {
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cfg, &envError{"ALLAUTH_URL", v, "want the Django origin, e.g. http://127.0.0.1:8000"}
		}
	}
	if v := getenv("CACHE_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return cfg, &envError{"CACHE_TTL", v, "want a positive Go duration such as 10s or 1m"}
		}
		cfg.cacheTTL = d
	}
	return cfg, nil
}

func checkAddr(name, v string) error {
	if _, _, err := net.SplitHostPort(v); err != nil {
		return &envError{name, v, "want host:port, e.g. 127.0.0.1:3000"}
	}
	return nil
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

// run serves the API until ctx ends, then shuts down and returns nil.
func run(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := readConfig(getenv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	// Bind first, so that a busy port is an error before anything starts.
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("API on ADDR: %w", err)
	}
	defer func() { _ = ln.Close() }()

	allauthURL := cfg.allauthURL
	if allauthURL == "" {
		standin, err := startStandin(ctx, cfg.standin)
		if err != nil {
			return err
		}
		defer standin.Close()
		allauthURL = standin.URL
	}

	// One middleware, one cache, for both routes: a token checked on one
	// route is not checked again on the other.
	auth, err := fiberauth.NewMiddleware(fiberauth.Config{BaseURL: allauthURL, CacheTTL: cfg.cacheTTL, Logger: log}) //nolint:contextcheck // the middleware outlives this call; it takes no request's context
	if err != nil {
		return &envError{"ALLAUTH_URL", allauthURL, err.Error()}
	}
	defer func() { _ = auth.Close() }()

	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/healthz", func(c *fiber.Ctx) error { return c.SendString("ok") })

	// Protected: no valid session, no answer (401 or 410).
	app.Get("/api/me", auth.Handler, func(c *fiber.Ctx) error {
		return c.JSON(fiberauth.UserFrom(c))
	})

	// Optional: anonymous without a credential; a bad one still fails.
	app.Get("/api/public", auth.Optional, func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"user": fiberauth.UserFrom(c)}) // null when anonymous
	})

	api := "http://" + ln.Addr().String()
	printHowTo(stdout, allauthURL, api, cfg.allauthURL == "")

	served := make(chan error, 1)
	go func() { served <- app.Listener(ln) }()
	log.Info("serving", "api", api, "allauth", allauthURL, "cache_ttl", cfg.cacheTTL)

	select {
	case err := <-served:
		return fmt.Errorf("API: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownErr := app.ShutdownWithTimeout(5 * time.Second)
	_ = ln.Close() // Serve may not have started yet; it then returns at once
	if err := errors.Join(shutdownErr, <-served); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

// printHowTo prints the commands to log in at allauth and call the API.
func printHowTo(w io.Writer, allauthURL, api string, standin bool) {
	who := "allauth on " + allauthURL + " (log in as one of its users)"
	login := `{"username": "USERNAME", "password": "PASSWORD"}`
	if standin {
		who = fmt.Sprintf("stand-in allauth on %s (user %s / %s)", allauthURL, demoUser, demoPassword)
		login = fmt.Sprintf(`{"username": %q, "password": %q}`, demoUser, demoPassword)
	}
	_, _ = fmt.Fprintf(w, `%s; API on %s
Log in and keep the session token:
  TOKEN=$(curl -s -X POST %s/_allauth/app/v1/auth/login -H 'Content-Type: application/json' -d '%s' | sed -E 's/.*"session_token": "([a-z0-9]+)".*/\1/')
Call the API:
  curl -s %s/api/me -H "X-Session-Token: $TOKEN"
Stop with Ctrl-C.
`, who, api, allauthURL, login, api)
}

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
