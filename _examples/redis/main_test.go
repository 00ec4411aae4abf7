package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/exampletest"
	"github.com/allauthgo/headless/internal/testwait"

	"go.uber.org/goleak"

	"github.com/allauthgo/headless/internal/redistest"
)

// fasthttpGoroutines are fasthttp's, not the example's: one refreshes the
// Date header for the whole process once a server has answered (it never
// stops), the other is a stopped server's worker-pool cleaner, which sleeps
// up to 10 s (MaxIdleWorkerDuration) before it notices the stop.
var fasthttpGoroutines = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
}

// redisEnv returns the environment for a run against a Redis (REDIS_ADDR,
// else a private redis-server; see redistest.Addr), on free ports and with a
// prefix of its own, or skips the test. Call it before goleak.IgnoreCurrent:
// a private server's watcher goroutine lives until the test ends.
func redisEnv(t *testing.T, extra map[string]string) func(string) string {
	t.Helper()
	vars := map[string]string{
		"REDIS_ADDR":   redistest.Addr(t),
		"REDIS_PREFIX": fmt.Sprintf("allauthgo-example-test:%d:%s:", os.Getpid(), t.Name()),
		"ADDR_A":       "127.0.0.1:0",
		"ADDR_B":       "127.0.0.1:0",
	}
	for k, v := range extra {
		vars[k] = v
	}
	return func(k string) string { return vars[k] }
}

// TestDemo runs the scripted demo and checks each step's outcome and
// allauth's call count: B is served from Redis what A learnt, a logout alone
// is not seen while cached, and A's eviction makes B ask allauth (410).
func TestDemo(t *testing.T) {
	getenv := redisEnv(t, nil)
	ignore := goleak.IgnoreCurrent()
	var stdout, stderr exampletest.SyncBuffer
	if err := run(context.Background(), nil, getenv, &stdout, &stderr); err != nil {
		t.Fatalf("run = %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimRight(stdout.String(), "\n"), "\n")
	want := []string{
		`^stand-in allauth on http://127\.0\.0\.1:\d+; instance A on http://127\.0\.0\.1:\d+, B on http://127\.0\.0\.1:\d+; shared cache in Redis at \S+ \(prefix "allauthgo-example-test:`,
		`^1\. logged in at allauth as demo$`,
		`^2\. A: GET /api/me -> 200 demo +allauth session calls: 1  \(A asked allauth, stored the answer in Redis\)$`,
		`^3\. B: GET /api/me -> 200 demo +allauth session calls: 1  \(B found A's answer in Redis\)$`,
		`^4\. logged out at allauth \(DELETE /_allauth/app/v1/auth/session -> 401\)$`,
		`^5\. B: GET /api/me -> 200 demo +allauth session calls: 1  \(still cached`,
		`^6\. A: Middleware\.Evict\(token\) -> the entry is gone from Redis, and from B's memory \(pub/sub\)$`,
		`^7\. B: GET /api/me -> 410 session_gone +allauth session calls: 2  \(B asked allauth again\)$`,
	}
	if len(lines) != len(want) {
		t.Fatalf("the demo printed %d lines, want %d:\n%s", len(lines), len(want), stdout.String())
	}
	for i, re := range want {
		if !regexp.MustCompile(re).MatchString(lines[i]) {
			t.Errorf("line %d\n  %s\ndoes not match\n  %s", i+1, lines[i], re)
		}
	}
	if stderr.String() != "" {
		t.Errorf("unexpected log lines:\n%s", stderr.String())
	}
	goleak.VerifyNone(t, append(fasthttpGoroutines, ignore)...)
}

// TestServe checks that -serve (and SERVE=1) keeps both instances up after
// the demo and stops cleanly when the context ends.
func TestServe(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		serve string
	}{{"flag", []string{"-serve"}, ""}, {"env", nil, "1"}} {
		t.Run(tc.name, func(t *testing.T) {
			getenv := redisEnv(t, map[string]string{"SERVE": tc.serve})
			ignore := goleak.IgnoreCurrent()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var stdout, stderr exampletest.SyncBuffer
			done := make(chan error, 1)
			go func() { done <- run(ctx, tc.args, getenv, &stdout, &stderr) }()

			testwait.Until(t, 15*time.Second, "the serving line", func() bool {
				select {
				case err := <-done:
					t.Fatalf("run returned %v before serving:\n%s", err, stdout.String())
				default:
				}
				return strings.Contains(stdout.String(), "Serving A and B until Ctrl-C")
			})
			for _, u := range regexp.MustCompile(`instance A on http://(\S+), B on http://(\S+);`).FindStringSubmatch(stdout.String())[1:] {
				conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", u)
				if err != nil {
					t.Errorf("instance at %s is not up: %v", u, err)
					continue
				}
				_ = conn.Close()
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("run = %v, want nil after the context ended", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("run did not return within 10s of the context ending")
			}
			goleak.VerifyNone(t, append(fasthttpGoroutines, ignore)...)
		})
	}
}

// TestBadInput checks the clear errors for a missing or bad REDIS_ADDR and
// other bad input; none needs a Redis.
func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		vars map[string]string
		want string
	}{
		{"no REDIS_ADDR", nil, nil, "set REDIS_ADDR=127.0.0.1:6379 (start one with: redis-server --port 6379)"},
		{"bad REDIS_ADDR", nil, map[string]string{"REDIS_ADDR": "6379"}, `REDIS_ADDR="6379": want host:port`},
		{"bad ADDR_B", nil, map[string]string{"REDIS_ADDR": "127.0.0.1:6379", "ADDR_B": "b"}, `ADDR_B="b": want host:port`},
		{"bad SERVE", nil, map[string]string{"REDIS_ADDR": "127.0.0.1:6379", "SERVE": "yes please"}, `SERVE="yes please": want 1 or 0`},
		{"unknown flag", []string{"-verbose"}, nil, "flag provided but not defined: -verbose (the only flag is -serve)"},
		{"argument", []string{"now"}, nil, `unexpected argument "now"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr exampletest.SyncBuffer
			err := run(context.Background(), tc.args, func(k string) string { return tc.vars[k] }, &stdout, &stderr)
			var bad *inputError
			if !errors.As(err, &bad) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run = %v, want an *inputError saying %q", err, tc.want)
			}
		})
	}
}

// TestRedisDown checks that an unreachable Redis is a clear error, not a
// panic or a hang.
func TestRedisDown(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	var stdout, stderr exampletest.SyncBuffer
	err = run(context.Background(), nil, func(k string) string { return map[string]string{"REDIS_ADDR": addr}[k] }, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "redis at REDIS_ADDR="+addr) || !strings.Contains(err.Error(), "redis-server --port") {
		t.Fatalf("run = %v, want an error naming REDIS_ADDR and how to start a Redis", err)
	}
	goleak.VerifyNone(t, ignore)
}
