// Command nethttp is the net/http counterpart of _examples/basic: a std mux
// (Go 1.22 patterns) that trusts a django-allauth headless login through
// package httpauth, with the eviction webhook and a readiness check.
//
//	go run ./_examples/nethttp
//
// With ALLAUTH_URL unset it also starts a stand-in allauth (package
// allauthtest) with the user demo / demo-password, and prints the curl
// commands to log in and call the API. Environment:
//
//	ADDR          where the API listens (default 127.0.0.1:3000)
//	ALLAUTH_URL   a real allauth, e.g. http://127.0.0.1:8000 (default: the stand-in)
//	STANDIN_ADDR  where the stand-in listens (default 127.0.0.1:8000)
//	CACHE_TTL     how long an answer of allauth is reused, e.g. 10s (default 30s)
//	EVICT_SECRET  at least 32 bytes shared with Django: mounts POST /_allauthgo/evict
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/httpauth"
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
	addr, allauthURL, standin string // allauthURL "" starts the stand-in
	cacheTTL                  time.Duration
	evictSecret               []byte // nil: no webhook
}

func readConfig(getenv func(string) string) (config, error) {
	cfg := config{
		addr:       orDefault(getenv("ADDR"), "127.0.0.1:3000"),
		allauthURL: getenv("ALLAUTH_URL"),
		standin:    orDefault(getenv("STANDIN_ADDR"), "127.0.0.1:8000"),
		cacheTTL:   headless.DefaultCacheTTL,
	}
	for name, v := range map[string]string{"ADDR": cfg.addr, "STANDIN_ADDR": cfg.standin} {
		if _, _, err := net.SplitHostPort(v); err != nil {
			return cfg, &envError{name, v, "want host:port, e.g. 127.0.0.1:3000"}
		}
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
	if v := getenv("EVICT_SECRET"); v != "" {
		if len(v) < 32 {
			return cfg, &envError{"EVICT_SECRET", "(hidden)", "want at least 32 bytes"}
		}
		cfg.evictSecret = []byte(v)
	}
	return cfg, nil
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

	// One middleware, one cache, for every route.
	auth, err := httpauth.NewMiddleware(httpauth.Config{BaseURL: allauthURL, CacheTTL: cfg.cacheTTL, Logger: log}) //nolint:contextcheck // the middleware outlives this call; it takes no request's context
	if err != nil {
		return &envError{"ALLAUTH_URL", allauthURL, err.Error()}
	}
	defer func() { _ = auth.Close() }()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.Handle("GET /readyz", auth.Ready()) // 200 while allauth answers
	// Protected: no valid session, no answer (401 or 410).
	mux.Handle("GET /api/me", auth.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, httpauth.UserFrom(r.Context()))
	})))
	// Optional: anonymous without a credential; a bad one still fails.
	mux.Handle("GET /api/public", auth.Optional(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{"user": httpauth.UserFrom(r.Context())}) // null when anonymous
	})))
	if cfg.evictSecret != nil {
		evict, err := httpauth.EvictHandler(headless.EvictConfig{Secret: cfg.evictSecret}, auth)
		if err != nil {
			return err
		}
		mux.Handle("POST /_allauthgo/evict", evict) // signed by Django, carries no user credential
	}

	api := "http://" + ln.Addr().String()
	printHowTo(stdout, allauthURL, api, cfg.allauthURL == "")

	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("serving", "api", api, "allauth", allauthURL, "cache_ttl", cfg.cacheTTL, "evict_webhook", cfg.evictSecret != nil)

	select {
	case err := <-served:
		return fmt.Errorf("API: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		http.Error(w, "encoding failed", http.StatusInternalServerError)
	}
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
  curl -s %s/api/public
  curl -s %s/readyz
Stop with Ctrl-C.
`, who, api, allauthURL, login, api, api, api)
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
