// Command loadtest measures what fiberauth costs, side by side in one run:
// the same Fiber route bare and protected by each mode's warm hit (the
// in-process cache, the cache in Redis, a JWT verified locally), the same
// bare/protected pair on Fiber v3 (fiberauth/v3) and on a net/http server
// (httpauth), each against its own server's bare route, allauth's
// own session endpoint (the stand-in with a delay standing in for Django),
// the cost of a cold request, and how many upstream calls bursts of cold
// requests make.
//
// It drives HTTP load with wrk (apt-get install wrk), which runs in its own
// process, and prints Markdown tables. Each round runs the bare route and
// every protected route back to back; a requests/s ratio is the median of
// the rounds' ratios to that round's bare run, with their range, since a
// shared machine drifts:
//
//	go run ./_examples/loadtest -duration 5s -rounds 3
//
// The Redis route uses REDIS_ADDR (host:port) when it is set, else a private
// redis-server on a free loopback port (REDIS_SERVER_BIN, or redis-server on
// PATH), stopped at the end; with neither, that route is left out and the
// table says why. Everything listens on 127.0.0.1 only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	fiberv3 "github.com/gofiber/fiber/v3"
	"github.com/gofiber/storage/redis/v3"

	"github.com/allauthgo/headless/fiberauth"
	fiberauthv3 "github.com/allauthgo/headless/fiberauth/v3"
	"github.com/allauthgo/headless/httpauth"
	"github.com/allauthgo/headless/internal/redisproc"
	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

type options struct {
	duration    time.Duration
	connections int
	threads     int
	rounds      int
	djangoDelay time.Duration
	coldSamples int
	refresh     bool
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "length of each wrk run")
	flag.IntVar(&o.connections, "connections", 64, "wrk connections")
	flag.IntVar(&o.threads, "threads", 1, "wrk threads (the machine has 2 cores: one for wrk, one for the server)")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of (bare, protected) runs; medians are reported")
	flag.DurationVar(&o.djangoDelay, "django-delay", 8*time.Millisecond, "delay of the stand-in's session endpoint, standing in for Django")
	flag.IntVar(&o.coldSamples, "cold-samples", 2000, "cold requests timed for the cold-request cost")
	flag.BoolVar(&o.refresh, "refresh-scenario", false, "run only the refresh-ahead scenario (Go client, no wrk)")
	flag.Parse()
	if o.refresh {
		if err := runRefreshScenario(os.Stdout, defaultRefreshScenario()); err != nil {
			fmt.Fprintln(os.Stderr, "loadtest:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

func run(o options, out io.Writer) error {
	if o.duration <= 0 || o.connections <= 0 || o.threads <= 0 || o.rounds <= 0 || o.coldSamples <= 0 {
		return errors.New("-duration, -connections, -threads, -rounds and -cold-samples must be positive")
	}
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		return errors.New("wrk not found: install it with apt-get install wrk")
	}

	// One stand-in answers session tokens and, for the JWT route, issues
	// RS256 access tokens that outlive any run.
	standin := allauthtest.NewServer(allauthtest.WithJWT(allauthtest.JWTConfig{AccessTokenTTL: 24 * time.Hour}))
	defer standin.Close()
	standin.AddUser(allauthtest.User{Username: "alice", Email: "alice@example.com", Password: "alice-pass-123"})
	token := standin.IssueToken("alice")
	access, _ := standin.IssueJWT("alice")

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	newMiddleware := func(cfg fiberauth.Config) *fiberauth.Middleware {
		cfg.BaseURL = standin.URL
		cfg.Timeout = 5 * time.Second
		cfg.CacheTTL = time.Hour // the warm runs must stay warm however long they take
		cfg.Logger = quiet
		m, err := fiberauth.NewMiddleware(cfg)
		if err != nil {
			panic(err) // the configs are written here: a bug
		}
		return m
	}
	mw := newMiddleware(fiberauth.Config{})
	defer func() { _ = mw.Close() }()
	jwtMW := newMiddleware(fiberauth.Config{
		KeyLookup: "header:Authorization",
		JWT:       &introspect.JWTConfig{PublicKey: standin.JWTPublicKeyPEM()},
	})
	defer func() { _ = jwtMW.Close() }()

	// The Redis route: the cache in Redis through Config.Storage.
	rd, err := startRedis(o.connections)
	if err != nil {
		return err
	}
	defer func() { _ = rd.close() }()
	var redisMW *fiberauth.Middleware
	if rd.storage != nil {
		redisMW = newMiddleware(fiberauth.Config{Storage: rd.storage})
		defer func() {
			_ = redisMW.Evict(context.Background(), token) // its one key, under the default prefix
			_ = redisMW.Close()
		}()
	}

	// Identical handlers; only the middleware differs.
	ok := func(c *fiber.Ctx) error { return c.SendString("ok") }
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/bare", ok)
	app.Get("/protected", mw.Handler, ok)
	app.Get("/jwt", jwtMW.Handler, ok)
	if redisMW != nil {
		app.Get("/redis", redisMW.Handler, ok)
	}
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = app.Listener(ln) }()
	defer func() { _ = app.ShutdownWithTimeout(5 * time.Second) }()
	base := "http://" + ln.Addr().String()

	// The same pair on Fiber v3, through fiberauth/v3, on its own port.
	mw3, err := fiberauthv3.NewMiddleware(fiberauthv3.Config{
		BaseURL: standin.URL, Timeout: 5 * time.Second, CacheTTL: time.Hour, Logger: quiet,
	})
	if err != nil {
		return err
	}
	defer func() { _ = mw3.Close() }()
	ok3 := func(c fiberv3.Ctx) error { return c.SendString("ok") }
	app3 := fiberv3.New()
	app3.Get("/bare", ok3)
	app3.Get("/protected", mw3.Handler, ok3)
	ln3, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = app3.Listener(ln3, fiberv3.ListenConfig{DisableStartupMessage: true}) }()
	defer func() { _ = app3.ShutdownWithTimeout(5 * time.Second) }()
	base3 := "http://" + ln3.Addr().String()

	// The net/http pair: a std mux on net/http's server, bare and behind
	// httpauth, with the same settings.
	nhMW, err := httpauth.NewMiddleware(httpauth.Config{BaseURL: standin.URL, Timeout: 5 * time.Second, CacheTTL: time.Hour, Logger: quiet})
	if err != nil {
		return err
	}
	defer func() { _ = nhMW.Close() }()
	nhOK := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux := http.NewServeMux()
	mux.Handle("GET /bare", nhOK)
	mux.Handle("GET /protected", nhMW.Handler(nhOK))
	nhLn, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	nhSrv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = nhSrv.Serve(nhLn) }()
	defer func() { _ = nhSrv.Close() }()
	nhBase := "http://" + nhLn.Addr().String()

	sessionHeader := fiberauth.HeaderSessionToken + ": " + token
	routes := []route{
		{name: "bare", what: "no middleware", path: "/bare"},
		{name: "in-process", what: "X-Session-Token, in-process cache hit", path: "/protected", header: sessionHeader},
		{name: "Redis", what: "X-Session-Token, hit in Redis (Config.Storage) at " + rd.where, path: "/redis", header: sessionHeader, skip: rd.skip},
		{name: "JWT", what: "Authorization: Bearer, RS256 verified in process", path: "/jwt", header: fiber.HeaderAuthorization + ": Bearer " + access},
		{name: "v3 bare", what: "Fiber v3, no middleware", base: base3, path: "/bare", bare: 4},
		{name: "v3 in-process", what: "Fiber v3 + fiberauth/v3, X-Session-Token, in-process cache hit", base: base3, path: "/protected", header: sessionHeader, bare: 4},
		{name: "net/http bare", what: "net/http server, std mux, no middleware", base: nhBase, path: "/bare", bare: 6},
		{name: "net/http in-process", what: "net/http + httpauth, X-Session-Token, in-process cache hit", base: nhBase, path: "/protected", header: sessionHeader, bare: 6},
	}
	for i := range routes {
		if routes[i].base == "" {
			routes[i].base = base
		}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024, MaxConnsPerHost: 0}}
	defer client.CloseIdleConnections()
	for _, r := range routes {
		if r.skip != "" || r.header == "" { // the bare routes need no warming
			continue
		}
		name, value, _ := strings.Cut(r.header, ": ")
		if code, err := getWith(client, r.base+r.path, name, value); err != nil || code != http.StatusOK {
			return fmt.Errorf("warm-up request to %s: status %d, %w", r.path, code, err)
		}
	}
	standin.ResetCounters()

	if _, err := fmt.Fprintf(out, "wrk -t%d -c%d -d%s, %d rounds, medians; %s\n\n", o.threads, o.connections, o.duration, o.rounds, cpuLine()); err != nil {
		return err
	}
	results := make([][]wrkResult, len(routes)) // results[route][round]
	for i := 0; i < o.rounds; i++ {
		for j, r := range routes {
			if r.skip != "" {
				continue
			}
			res, err := runWrk(wrk, o, r.base+r.path, r.header)
			if err != nil {
				return err
			}
			results[j] = append(results[j], res)
		}
	}
	if n := standin.SessionCalls(); n != 0 {
		return fmt.Errorf("the protected runs asked allauth %d times, want 0 (warm caches, JWTs verified locally)", n)
	}
	if s := mw.Metrics().Cache; s.Fetches != 1 {
		return fmt.Errorf("the in-process runs asked allauth %d times, want 1 (warm cache)", s.Fetches)
	}
	if s := nhMW.Metrics().Cache; s.Fetches != 1 {
		return fmt.Errorf("the net/http runs asked allauth %d times, want 1 (warm cache)", s.Fetches)
	}
	if s := mw3.Metrics().Cache; s.Fetches != 1 {
		return fmt.Errorf("the Fiber v3 runs asked allauth %d times, want 1 (warm cache)", s.Fetches)
	}

	// allauth's own endpoint, with Django's latency.
	standin.SetFault(allauthtest.Fault{Delay: o.djangoDelay})
	direct, err := runWrk(wrk, o, standin.SessionURL("app"), sessionHeader)
	if err != nil {
		return err
	}
	standin.SetFault(allauthtest.Fault{})

	cold, err := coldCost(client, standin, base, o.coldSamples)
	if err != nil {
		return err
	}
	oneToken, manyTokens, err := bursts(client, standin, base)
	if err != nil {
		return err
	}

	bare, prot := results[0], results[1]
	mb, mp := median(bare), median(prot)
	var t []string
	add := func(format string, a ...any) { t = append(t, fmt.Sprintf(format, a...)) }
	add("| measure | bare route | protected, warm cache | ratio / difference | target |")
	add("|---|---|---|---|---|")
	lo, mid, hi := ratioToBare(prot, bare)
	add("| requests/s | %.0f | %.0f | %.3f (rounds: %.3f–%.3f) | ≥ 0.95 |", mb.rps, mp.rps, mid, lo, hi)
	add("| p50 latency | %s | %s | %+.1f%% | |", mb.p50, mp.p50, pct(mp.p50, mb.p50))
	add("| p99 latency | %s | %s | %+.1f%% | ≤ +10%% |", mb.p99, mp.p99, pct(mp.p99, mb.p99))
	add("")
	add("| route (warm) | what a request does | requests/s | ratio to its server's bare route (rounds) | p50 | p99 |")
	add("|---|---|---|---|---|---|")
	for j, r := range routes {
		if r.skip != "" {
			add("| %s | not run: %s | | | | |", r.name, r.skip)
			continue
		}
		m := median(results[j])
		lo, mid, hi := ratioToBare(results[j], results[r.bare])
		add("| %s | %s | %.0f | %.3f (%.3f–%.3f) | %s | %s |", r.name, r.what, m.rps, mid, lo, hi, m.p50, m.p99)
	}
	add("")
	add("| measure | value | target |")
	add("|---|---|---|")
	add("| allauth's own session endpoint (stand-in, %s delay), requests/s | %.0f | |", o.djangoDelay, direct.rps)
	add("| protected route (warm) vs that endpoint | %.0f× | |", mp.rps/direct.rps)
	add("| protected route (warm) vs one real gunicorn worker (~130 requests/s, recorded) | %.0f× | |", mp.rps/130)
	add("| cold request through the middleware, median | %s | |", cold.viaMiddleware)
	add("| the bare route (the same hop into Fiber), median | %s | |", cold.bare)
	add("| the stand-in's own answer, median | %s | |", cold.direct)
	add("| what a cold request adds: cold − bare − stand-in | %s | ≤ 100µs |", cold.viaMiddleware-cold.bare-cold.direct)
	add("| 1,000 concurrent cold requests, 1 token: upstream calls | %d | 1 |", oneToken)
	add("| 1,000 concurrent cold requests, 1,000 tokens: upstream calls | %d | 1000 |", manyTokens)
	_, err = io.WriteString(out, strings.Join(t, "\n")+"\n")
	return err
}

// route is one route under load, at base+path: header ("Name: value")
// carries its credential; skip, if set, is why it is not run; bare is the
// index of the bare route of the same server, its ratio's denominator.
type route struct {
	name, what, base, path, header, skip string
	bare                                 int
}

// redisSetup is the Redis route's storage: the one at REDIS_ADDR, a private
// redis-server, or none (storage nil, skip says why).
type redisSetup struct {
	storage     *redis.Storage
	server      *redisproc.Server
	where, skip string
}

// startRedis connects to REDIS_ADDR, else starts a private redis-server; no
// redis-server at all is not an error, the Redis route is left out. The
// client's pool has one connection per wrk connection, so that the pool does
// not limit the route.
func startRedis(poolSize int) (*redisSetup, error) {
	rd := &redisSetup{}
	addr := os.Getenv("REDIS_ADDR")
	if addr != "" {
		rd.where = "REDIS_ADDR=" + addr
	} else {
		srv, err := redisproc.Start()
		if errors.Is(err, redisproc.ErrNotInstalled) {
			rd.skip = "set REDIS_ADDR=host:port, or " + err.Error()
			return rd, nil
		}
		if err != nil {
			return nil, err
		}
		rd.server, addr = srv, srv.Addr()
		rd.where = "a private redis-server on " + addr
	}
	var connErr error
	func() {
		defer func() {
			if p := recover(); p != nil { // redis.New panics when it cannot connect
				connErr = fmt.Errorf("redis at %s: %v", addr, p)
			}
		}()
		rd.storage = redis.New(redis.Config{Addrs: []string{addr}, PoolSize: poolSize})
	}()
	if connErr != nil {
		_ = rd.close()
		return nil, connErr
	}
	return rd, nil
}

func (rd *redisSetup) close() error {
	var errs []error
	if rd.storage != nil {
		errs = append(errs, rd.storage.Close())
	}
	if rd.server != nil {
		errs = append(errs, rd.server.Close())
	}
	return errors.Join(errs...)
}

var (
	rpsRe = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	latRe = regexp.MustCompile(`^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$`)
)

// coldResult is the median cost of a cold request, and of its parts.
type coldResult struct{ viaMiddleware, bare, direct time.Duration }

// coldCost times, one request at a time, a request with a never-seen token
// through the middleware, the bare route (the same hop into Fiber), and a
// token's answer straight from the stand-in (no delay). What a miss adds is
// the first minus the other two.
func coldCost(client *http.Client, standin *allauthtest.Server, base string, n int) (coldResult, error) {
	via := make([]time.Duration, 0, n)
	bare := make([]time.Duration, 0, n)
	direct := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		start := time.Now()
		if code, err := get(client, base+"/bare", ""); err != nil || code != http.StatusOK {
			return coldResult{}, fmt.Errorf("bare: status %d, %w", code, err)
		}
		bare = append(bare, time.Since(start))
		tok := standin.IssueToken("alice")
		start = time.Now()
		code, err := get(client, standin.SessionURL("app"), tok)
		direct = append(direct, time.Since(start))
		if err != nil || code != http.StatusOK {
			return coldResult{}, fmt.Errorf("stand-in: status %d, %w", code, err)
		}
		tok = standin.IssueToken("alice")
		start = time.Now()
		code, err = get(client, base+"/protected", tok)
		via = append(via, time.Since(start))
		if err != nil || code != http.StatusOK {
			return coldResult{}, fmt.Errorf("middleware: status %d, %w", code, err)
		}
	}
	slices.Sort(via)
	slices.Sort(bare)
	slices.Sort(direct)
	return coldResult{viaMiddleware: via[n/2], bare: bare[n/2], direct: direct[n/2]}, nil
}

// bursts sends 1,000 concurrent cold requests with one token, then 1,000
// with 1,000 tokens, and returns the upstream calls each made.
func bursts(client *http.Client, standin *allauthtest.Server, base string) (oneToken, manyTokens int64, err error) {
	standin.SetFault(allauthtest.Fault{Delay: 50 * time.Millisecond}) // keep the first call in flight while the rest arrive
	defer standin.SetFault(allauthtest.Fault{})
	burst := func(tokens func(i int) string) (int64, error) {
		standin.ResetCounters()
		var wg sync.WaitGroup
		var failed atomic.Int64
		for i := 0; i < 1000; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if code, err := get(client, base+"/protected", tokens(i)); err != nil || code != http.StatusOK {
					failed.Add(1)
				}
			}()
		}
		wg.Wait()
		if f := failed.Load(); f > 0 {
			return 0, fmt.Errorf("%d of 1,000 burst requests failed", f)
		}
		return standin.SessionCalls(), nil
	}
	one := standin.IssueToken("alice")
	if oneToken, err = burst(func(int) string { return one }); err != nil {
		return 0, 0, err
	}
	many := make([]string, 1000)
	for i := range many {
		many[i] = standin.IssueToken("alice")
	}
	manyTokens, err = burst(func(i int) string { return many[i] })
	return oneToken, manyTokens, err
}

func get(client *http.Client, url, token string) (int, error) {
	return getWith(client, url, fiberauth.HeaderSessionToken, token)
}

// getWith sends GET url with the header name: value and returns the status.
func getWith(client *http.Client, url, name, value string) (int, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, http.NoBody)
	if err != nil {
		return 0, err
	}
	req.Header.Set(name, value)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

func cpuLine() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model name") {
			if _, v, ok := strings.Cut(line, ":"); ok {
				return strings.TrimSpace(v) + fmt.Sprintf(", %d CPUs", strings.Count(string(b), "processor\t:"))
			}
		}
	}
	return ""
}
