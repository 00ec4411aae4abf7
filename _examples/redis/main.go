// Command redis shows two API instances that share what they learnt from
// allauth through one Redis, and see each other's evictions.
//
//	redis-server --port 6379 &
//	REDIS_ADDR=127.0.0.1:6379 go run ./_examples/redis          # the demo, then exit
//	REDIS_ADDR=127.0.0.1:6379 go run ./_examples/redis -serve   # then keep serving
//
// For an easy demo everything runs in one process: a stand-in allauth
// (package allauthtest) and instances A and B, each with its own cache over
// the same Redis, as two processes would have. Environment:
//
//	REDIS_ADDR    Redis host:port (required)
//	REDIS_PREFIX  prefix of the cache's Redis keys (default "allauthgo:")
//	STORAGE_SECRET  at least 16 bytes, the same on every instance, that
//	              authenticate the values in Redis (default: 32 random bytes
//	              made at start, enough here as both instances share this
//	              process; real instances must be given the same secret)
//	ADDR_A        where instance A listens (default 127.0.0.1:3001)
//	ADDR_B        where instance B listens (default 127.0.0.1:3002)
//	SERVE         1 is the same as -serve
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	redisstorage "github.com/gofiber/storage/redis/v3"
	"github.com/redis/go-redis/v9"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

func main() {
	// go-redis would log dial failures on its own; run's errors say enough.
	redis.SetLogger(quietLogger{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		var bad *inputError
		if errors.As(err, &bad) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// inputError is a bad flag or environment variable: exit code 2.
type inputError struct{ msg string }

func (e *inputError) Error() string { return e.msg }

func badInput(format string, args ...any) error { return &inputError{fmt.Sprintf(format, args...)} }

type config struct {
	redisAddr, prefix string
	addrA, addrB      string
	storageSecret     []byte
	serve             bool
}

func readConfig(args []string, getenv func(string) string) (config, error) {
	cfg := config{
		redisAddr: getenv("REDIS_ADDR"),
		prefix:    orDefault(getenv("REDIS_PREFIX"), headless.DefaultPrefix),
		addrA:     orDefault(getenv("ADDR_A"), "127.0.0.1:3001"),
		addrB:     orDefault(getenv("ADDR_B"), "127.0.0.1:3002"),
	}
	fs := flag.NewFlagSet("redis", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&cfg.serve, "serve", false, "keep both instances running after the demo, until Ctrl-C")
	if err := fs.Parse(args); err != nil {
		return cfg, badInput("%v (the only flag is -serve)", err)
	}
	if fs.NArg() > 0 {
		return cfg, badInput("unexpected argument %q (the only flag is -serve)", fs.Arg(0))
	}
	if v := getenv("SERVE"); v != "" {
		serve, err := strconv.ParseBool(v)
		if err != nil {
			return cfg, badInput("SERVE=%q: want 1 or 0", v)
		}
		cfg.serve = cfg.serve || serve
	}
	cfg.storageSecret = []byte(getenv("STORAGE_SECRET"))
	if len(cfg.storageSecret) == 0 {
		cfg.storageSecret = make([]byte, 32)
		_, _ = rand.Read(cfg.storageSecret) // never fails (crypto/rand)
	} else if len(cfg.storageSecret) < 16 {
		return cfg, badInput("STORAGE_SECRET: want at least 16 bytes")
	}
	if cfg.redisAddr == "" {
		return cfg, badInput("set REDIS_ADDR=127.0.0.1:6379 (start one with: redis-server --port 6379)")
	}
	for _, v := range []struct{ name, value string }{{"REDIS_ADDR", cfg.redisAddr}, {"ADDR_A", cfg.addrA}, {"ADDR_B", cfg.addrB}} {
		if _, _, err := net.SplitHostPort(v.value); err != nil {
			return cfg, badInput("%s=%q: want host:port, e.g. 127.0.0.1:6379", v.name, v.value)
		}
	}
	return cfg, nil
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

// run plays the demo and, with -serve, serves until ctx ends.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := readConfig(args, getenv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	// One attempt per command: the cache treats a failed one as a miss, and
	// waiting for retries would only slow requests down.
	rdb := redis.NewClient(&redis.Options{Addr: cfg.redisAddr, MaxRetries: -1, DialerRetries: 1})
	defer func() { _ = rdb.Close() }()
	pingCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err = rdb.Ping(pingCtx).Err()
	cancel()
	if err != nil {
		return fmt.Errorf("redis at REDIS_ADDR=%s: %w (start one with: redis-server --port 6379)", cfg.redisAddr, err)
	}
	storage := redisstorage.NewFromConnection(rdb)

	allauth := allauthtest.NewServer() //nolint:contextcheck // takes no context: it only binds a loopback port
	defer allauth.Close()
	allauth.AddUser(allauthtest.User{Username: "demo", Email: "demo@example.com", Password: "demo-password"})

	a, err := startInstance(ctx, "A", cfg.addrA, allauth.URL, storage, cfg.prefix, cfg.storageSecret, log)
	if err != nil {
		return err
	}
	defer a.stop(log)
	b, err := startInstance(ctx, "B", cfg.addrB, allauth.URL, storage, cfg.prefix, cfg.storageSecret, log)
	if err != nil {
		return err
	}
	defer b.stop(log)
	// Each instance subscribes to the evictions of the others as it starts;
	// the demo evicts on A at once, so it waits until B listens.
	for deadline := time.Now().Add(5 * time.Second); !b.mw.Metrics().Cache.Subscribed; {
		if time.Now().After(deadline) {
			return errors.New("instance B never subscribed to evictions in Redis")
		}
		time.Sleep(5 * time.Millisecond)
	}

	say := func(format string, args ...any) { _, _ = fmt.Fprintf(stdout, format+"\n", args...) }
	say("stand-in allauth on %s; instance A on %s, B on %s; shared cache in Redis at %s (prefix %q)",
		allauth.URL, a.url, b.url, cfg.redisAddr, cfg.prefix)
	if err := demo(ctx, say, allauth, a, b); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if !cfg.serve {
		return nil
	}

	say(`Serving A and B until Ctrl-C. Log in (user demo / demo-password) and call both:
  TOKEN=$(curl -s -X POST %s/_allauth/app/v1/auth/login -H 'Content-Type: application/json' -d '{"username": "demo", "password": "demo-password"}' | sed -E 's/.*"session_token": "([a-z0-9]+)".*/\1/')
  curl -s %s/api/me -H "X-Session-Token: $TOKEN"
  curl -s %s/api/me -H "X-Session-Token: $TOKEN"`, allauth.URL, a.url, b.url)
	select {
	case <-ctx.Done():
	case err := <-a.served:
		return fmt.Errorf("instance A: %w", err)
	case err := <-b.served:
		return fmt.Errorf("instance B: %w", err)
	}
	return nil
}

// demo logs in, calls A and B, logs out, evicts through A and calls B
// again, printing allauth's session-call count after each step.
func demo(ctx context.Context, say func(string, ...any), allauth *allauthtest.Server, a, b *instance) error {
	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}

	token, err := login(ctx, client, allauth.URL)
	if err != nil {
		return err
	}
	say("1. logged in at allauth as demo")

	me := func(step int, inst *instance, note string) error {
		status, body, err := get(ctx, client, inst.url+"/api/me", token)
		if err != nil {
			return err
		}
		say("%d. %s: GET /api/me -> %-17s allauth session calls: %d  (%s)",
			step, inst.name, strconv.Itoa(status)+" "+body, allauth.SessionCalls(), note)
		return nil
	}
	if err := me(2, a, "A asked allauth, stored the answer in Redis"); err != nil {
		return err
	}
	if err := me(3, b, "B found A's answer in Redis"); err != nil {
		return err
	}
	status, err := logout(ctx, client, allauth.URL, token)
	if err != nil {
		return err
	}
	say("4. logged out at allauth (DELETE /_allauth/app/v1/auth/session -> %d)", status)
	if err := me(5, b, "still cached: a logout alone goes unseen for up to the cache TTL"); err != nil {
		return err
	}
	heard := b.mw.Metrics().Cache.EvictionsHeard
	if err := a.mw.Evict(ctx, token); err != nil {
		return fmt.Errorf("evict: %w", err)
	}
	// Redis pub/sub tells B to drop its in-process copy; wait for it (a
	// millisecond or so), as a later request of B would simply come after.
	for deadline := time.Now().Add(5 * time.Second); b.mw.Metrics().Cache.EvictionsHeard == heard; {
		if time.Now().After(deadline) {
			return errors.New("the eviction never reached B by Redis pub/sub")
		}
		time.Sleep(time.Millisecond)
	}
	say("6. A: Middleware.Evict(token) -> the entry is gone from Redis, and from B's memory (pub/sub)")
	return me(7, b, "B asked allauth again")
}

// instance is one API "process": its own middleware and cache, over the
// shared Redis storage.
type instance struct {
	name, url string
	app       *fiber.App
	ln        net.Listener
	mw        *fiberauth.Middleware
	served    chan error
}

func startInstance(ctx context.Context, name, addr, allauthURL string, storage fiber.Storage, prefix string, secret []byte, log *slog.Logger) (*instance, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("instance %s on ADDR_%s: %w", name, name, err)
	}
	// Its own in-process cache in front of the shared storage: what one
	// instance stores, the other reads; what one evicts, the other drops at
	// once (Redis pub/sub).
	mw, err := fiberauth.NewMiddleware(fiberauth.Config{BaseURL: allauthURL, Storage: storage, Prefix: prefix, StorageSecret: secret, Logger: log.With("instance", name)}) //nolint:contextcheck // the middleware outlives this call; it takes no request's context
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("instance %s: %w", name, err)
	}

	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/api/me", mw.Handler, func(c *fiber.Ctx) error {
		return c.JSON(fiberauth.UserFrom(c))
	})
	inst := &instance{name: name, url: "http://" + ln.Addr().String(), app: app, ln: ln, mw: mw, served: make(chan error, 1)}
	go func() { inst.served <- app.Listener(ln) }()
	return inst, nil
}

// stop shuts the instance down: the server, then the middleware (its
// client's connections) and the cache it was given. Redis stays to its owner.
func (i *instance) stop(log *slog.Logger) {
	err := i.app.ShutdownWithTimeout(5 * time.Second)
	_ = i.ln.Close() // Serve may not have started yet; it then returns at once
	err = errors.Join(err, <-i.served, i.mw.Close())
	if err != nil {
		log.Warn("stop", "instance", i.name, "error", err)
	}
}

// login logs the demo user in at allauth's app API and returns the session
// token.
func login(ctx context.Context, client *http.Client, allauthURL string) (string, error) {
	body := []byte(`{"username": "demo", "password": "demo-password"}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, allauthURL+"/_allauth/app/v1/auth/login", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("login: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	var answer struct {
		Meta struct {
			SessionToken string `json:"session_token"`
		} `json:"meta"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || resp.StatusCode != http.StatusOK || answer.Meta.SessionToken == "" {
		return "", fmt.Errorf("login: status %d, no session token", resp.StatusCode)
	}
	return answer.Meta.SessionToken, nil
}

// logout ends the session at allauth and returns allauth's status (401).
func logout(ctx context.Context, client *http.Client, allauthURL, token string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, allauthURL+"/_allauth/app/v1/auth/session", http.NoBody)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Session-Token", token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("logout: %w", err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// get calls url with the token and returns the status and a short summary:
// the username on 200, the error code otherwise.
func get(ctx context.Context, client *http.Client, url, token string) (status int, summary string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, http.NoBody)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("X-Session-Token", token)
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("GET %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var answer struct {
		Username string `json:"username"`
		Errors   []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		return 0, "", fmt.Errorf("GET %s: %w", url, err)
	}
	summary = answer.Username
	if len(answer.Errors) > 0 {
		summary = answer.Errors[0].Code
	}
	return resp.StatusCode, summary, nil
}
