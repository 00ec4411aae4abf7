package fiberauth_test

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/internal/cache"
	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// Every request is counted under exactly one outcome, and every lookup at
// allauth under the class of its status, with its duration.
func Test_Observe_Metrics(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := newMiddleware(t, srv, fiberauth.Config{Next: func(c *fiber.Ctx) bool { return c.Path() == "/public" }})
	app := newApp(t, m.Handler)
	alice := srv.IssueToken("alice")

	if s := m.Metrics(); !s.LastAnswer.IsZero() || !s.LastError.IsZero() {
		t.Fatalf("a new middleware knows allauth's last answer: %+v", s)
	}
	before := time.Now()
	wantUser(t, do(t, app, withToken(alice)), "alice") // lookup, 200
	wantUser(t, do(t, app, withToken(alice)), "alice") // hit
	wantError(t, do(t, app, withToken("abcdefghijklmnopqrstuvwxyz012345")), http.StatusGone, headless.CodeSessionGone)
	wantError(t, do(t, app, get()), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	wantError(t, do(t, app, withCookie("sessionid", "x")), http.StatusUnauthorized, headless.CodeNotAuthenticated) // not in KeyLookup: no credential
	do(t, app, getPath("/public"))
	srv.SetFault(allauthtest.Fault{Status: http.StatusTooManyRequests})
	wantError(t, do(t, app, withToken(srv.IssueToken("bob"))), http.StatusServiceUnavailable, headless.CodeUpstreamUnavailable)
	srv.SetFault(allauthtest.Fault{})

	s := m.Metrics()
	want := map[headless.Outcome]uint64{
		headless.OutcomeAuthenticated:   2,
		headless.OutcomeGone:            1,
		headless.OutcomeUnauthenticated: 2,
		headless.OutcomeSkipped:         1,
		headless.OutcomeUpstreamError:   1,
		headless.OutcomeAnonymous:       0,
	}
	for o, n := range want {
		if s.Requests[o] != n {
			t.Errorf("Requests[%v] = %d, want %d", o, s.Requests[o], n)
		}
	}
	// 200 and 410 are allauth's own answers; the 429 is a 4xx too, but a
	// failure.
	if c := s.Upstream[headless.Class2xx].Count; c != 1 {
		t.Errorf("2xx lookups = %d, want 1", c)
	}
	if c := s.Upstream[headless.Class4xx].Count; c != 2 {
		t.Errorf("4xx lookups = %d, want 2 (410, 429)", c)
	}
	if c := s.Upstream[headless.Class5xx].Count + s.Upstream[headless.ClassError].Count + s.Upstream[headless.Class3xx].Count; c != 0 {
		t.Errorf("other lookups = %d, want 0", c)
	}
	if s.UpstreamErrors != 1 {
		t.Errorf("UpstreamErrors = %d, want 1", s.UpstreamErrors)
	}
	h := s.Upstream[headless.Class2xx]
	if h.Sum <= 0 || h.Sum > 2*time.Second || h.Buckets[len(h.Buckets)-1] != h.Count {
		t.Errorf("2xx histogram = %+v", h)
	}
	if s.LastAnswer.Before(before) || s.LastError.Before(s.LastAnswer) || time.Since(s.LastError) > time.Minute {
		t.Errorf("LastAnswer %v, LastError %v (test began %v)", s.LastAnswer, s.LastError, before)
	}
}

func Test_Observe_Names(t *testing.T) {
	t.Parallel()
	outcomes := map[headless.Outcome]string{
		headless.OutcomeAuthenticated: "authenticated", headless.OutcomeAnonymous: "anonymous",
		headless.OutcomeUnauthenticated: "unauthenticated", headless.OutcomeGone: "gone",
		headless.OutcomeUpstreamError: "upstream_error", headless.OutcomeSkipped: "skipped",
	}
	var s headless.Metrics
	if len(s.Requests) != len(outcomes) {
		t.Errorf("Metrics.Requests has %d outcomes, want %d", len(s.Requests), len(outcomes))
	}
	for o, name := range outcomes {
		if o.String() != name {
			t.Errorf("Outcome(%d) = %q, want %q", o, o.String(), name)
		}
	}
	for status, class := range map[int]string{0: "error", 200: "2xx", 302: "3xx", 401: "4xx", 410: "4xx", 429: "4xx", 502: "5xx", 999: "error"} {
		if got := headless.ClassOf(status).String(); got != class {
			t.Errorf("ClassOf(%d) = %q, want %q", status, got, class)
		}
	}
	b := headless.UpstreamBuckets()
	for i := 1; i < len(b); i++ {
		if b[i] <= b[i-1] {
			t.Errorf("buckets not increasing: %v", b)
		}
	}
	b[0] = time.Hour // a copy: the middleware's buckets stay put
	if headless.UpstreamBuckets()[0] == time.Hour {
		t.Error("UpstreamBuckets returns the middleware's own array")
	}
}

// logLine is one line of slog's JSON handler.
type logLine struct {
	Level    string `json:"level"`
	Msg      string `json:"msg"`
	Kind     string `json:"kind"`
	Key      string `json:"key"`
	Status   *int   `json:"status"`
	Class    string `json:"class"`
	Duration *int64 `json:"duration"` // ns
	Error    string `json:"error"`
}

func parseLogs(t *testing.T, raw string) []logLine {
	t.Helper()
	var out []logLine
	sc := bufio.NewScanner(strings.NewReader(raw))
	for sc.Scan() {
		var l logLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

// The log: one WARN line per failed lookup at allauth (not per request:
// coalesced requests share one), with the status, its class and the
// duration, and the key's hash prefix for correlation; no line for hits,
// successful lookups or allauth's own 401/410; never a token.
func Test_Observe_Logs(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	var logs logBuffer
	m := newMiddleware(t, srv, fiberauth.Config{
		Logger:       slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		KeyLookup:    "header:X-Session-Token,header:Authorization",
		StaleIfError: time.Minute,
		CacheTTL:     50 * time.Millisecond,
	})
	app := newApp(t, m.Handler)
	alice, bob := srv.IssueToken("alice"), srv.IssueToken("bob")
	var tokens []string

	// Quiet: lookups that succeed, hits, allauth's 401 and 410, no credential.
	for range 3 {
		wantUser(t, do(t, app, withToken(alice)), "alice")
		wantUser(t, do(t, app, withToken(bob)), "bob")
		wantError(t, do(t, app, withToken("abcdefghijklmnopqrstuvwxyz012345")), http.StatusGone, headless.CodeSessionGone)
		wantError(t, do(t, app, get("Authorization", "Bearer not-a-session")), http.StatusUnauthorized, headless.CodeNotAuthenticated)
		wantError(t, do(t, app, get()), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	}
	tokens = append(tokens, alice, bob, "abcdefghijklmnopqrstuvwxyz012345", "not-a-session")
	if s := logs.String(); s != "" {
		t.Fatalf("log lines without a failure:\n%s", s)
	}

	// Loud: three failed lookups, each one line.
	srv.SetFault(allauthtest.Fault{Status: http.StatusBadGateway})
	for range 2 {
		tok := srv.IssueToken("alice")
		tokens = append(tokens, tok)
		wantError(t, do(t, app, withToken(tok)), http.StatusServiceUnavailable, headless.CodeUpstreamUnavailable)
	}
	srv.SetFault(allauthtest.Fault{Drop: true})
	dropped := srv.IssueToken("bob")
	tokens = append(tokens, dropped)
	wantError(t, do(t, app, get("Authorization", "Bearer "+dropped)), http.StatusServiceUnavailable, headless.CodeUpstreamUnavailable)

	// Ten requests for one token while allauth is slow and failing: one
	// lookup, one line.
	srv.SetFault(allauthtest.Fault{Delay: 100 * time.Millisecond, Status: http.StatusServiceUnavailable})
	burst := srv.IssueToken("alice")
	tokens = append(tokens, burst)
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := app.Test(withToken(burst), -1)
			if err != nil {
				t.Errorf("app.Test: %v", err)
				return
			}
			_ = resp.Body.Close()
		}()
	}
	wg.Wait()

	// A stale session served while allauth fails: still one line for the
	// failed lookup.
	sleepPast(50 * time.Millisecond)
	wantUser(t, do(t, app, withToken(alice)), "alice")

	// The fifth failure also trips the circuit breaker: the next miss makes
	// it ping allauth, which fails too, so it opens: one line of its own,
	// checked in protect_test.go, and none for that miss, refused without a
	// lookup.
	refused := srv.IssueToken("bob")
	tokens = append(tokens, refused)
	wantError(t, do(t, app, withToken(refused)), http.StatusServiceUnavailable, headless.CodeUpstreamUnavailable)
	var lines []logLine
	var breakerLines int
	for _, l := range parseLogs(t, logs.String()) {
		if l.Msg == "allauth circuit breaker" {
			breakerLines++
			continue
		}
		lines = append(lines, l)
	}
	if breakerLines != 1 {
		t.Errorf("%d breaker lines, want 1:\n%s", breakerLines, logs.String())
	}
	wantClasses := []string{"5xx", "5xx", "error", "5xx", "5xx"}
	wantKinds := []introspect.Kind{introspect.SessionToken, introspect.SessionToken, introspect.Bearer, introspect.SessionToken, introspect.SessionToken}
	wantTokens := []string{tokens[4], tokens[5], dropped, burst, alice}
	if len(lines) != len(wantClasses) {
		t.Fatalf("%d log lines, want %d:\n%s", len(lines), len(wantClasses), logs.String())
	}
	for i, l := range lines {
		key := cache.NewKey(cache.NewScope(wantKinds[i], m.Client().Endpoint(wantKinds[i])), wantTokens[i])
		if l.Level != "WARN" || l.Msg != "allauth lookup failed" || l.Kind != wantKinds[i].String() {
			t.Errorf("line %d: %+v", i, l)
		}
		if l.Key != key.Short() {
			t.Errorf("line %d: key %q, want the hash prefix %q", i, l.Key, key.Short())
		}
		if l.Class != wantClasses[i] || l.Status == nil || headless.ClassOf(*l.Status).String() != l.Class {
			t.Errorf("line %d: status %v class %q, want class %q", i, l.Status, l.Class, wantClasses[i])
		}
		if l.Duration == nil || *l.Duration <= 0 || time.Duration(*l.Duration) > 3*time.Second {
			t.Errorf("line %d: duration %v", i, l.Duration)
		}
		if l.Error == "" {
			t.Errorf("line %d: no error text", i)
		}
	}
	if l := lines[3]; *l.Duration < int64(100*time.Millisecond) {
		t.Errorf("the slow lookup logged %v, want at least the 100ms delay", time.Duration(*l.Duration))
	}
	raw := logs.String()
	for _, tok := range tokens {
		if strings.Contains(raw, tok) {
			t.Errorf("the log holds a token: %q in\n%s", tok, raw)
		}
	}
	if s := m.Metrics().Cache; s.StaleServes != 1 {
		t.Errorf("StaleServes = %d, want 1", s.StaleServes)
	}
}

// Counting outcomes keeps a cache hit free of allocations.
func Test_Observe_HitAllocatesNothing(t *testing.T) {
	srv := newAllauth(t)
	m := newMiddleware(t, srv, fiberauth.Config{})
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(m.Handler)
	app.Get("/", func(c *fiber.Ctx) error { return c.SendStatus(http.StatusOK) })
	t.Cleanup(func() { _ = app.Shutdown() })
	h := app.Handler()
	fctx := &fasthttp.RequestCtx{}
	fctx.Request.Header.SetMethod(fiber.MethodGet)
	fctx.Request.SetRequestURI("/")
	fctx.Request.Header.Set(fiberauth.HeaderSessionToken, srv.IssueToken("alice"))
	h(fctx) // warm the cache
	if fctx.Response.StatusCode() != http.StatusOK {
		t.Fatalf("status %d", fctx.Response.StatusCode())
	}
	if n := testing.AllocsPerRun(1000, func() { h(fctx) }); n != 0 {
		t.Errorf("a cache hit allocates %v times", n)
	}
	if got := m.Metrics().Requests[headless.OutcomeAuthenticated]; got < 1001 {
		t.Errorf("authenticated = %d, want every request counted", got)
	}
}
