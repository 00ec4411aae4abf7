package fiberauth_test

import (
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/internal/allauth"
	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// A flood of distinct random tokens against a slow allauth (every lookup
// takes 100 ms) while real users with cached sessions keep working:
//
//   - allauth never sees more than MaxConcurrentLookups lookups at once
//     (but for an instant per lookup cut at its deadline, see below);
//   - goroutines grow with the requests (each waiting request costs its own
//     goroutine and singleflight's), not with a connection pair per lookup
//     on top;
//   - a request that finds no slot within Timeout gets 503 with
//     Retry-After; the others get allauth's 410;
//   - cached users get 200 throughout; their latency during the flood is
//     logged (no timed assertion).
//
// CI floods with 1,000 tokens. The README's figures come from the soak run,
// 3,000 tokens and the same flood with no limit for comparison:
//
//	SOAK=1 go test -count=1 -v -run Test_Flood_BoundedLookups ./fiberauth/
func Test_Flood_BoundedLookups(t *testing.T) {
	n := 1_000
	if soak() {
		n = 3_000
	}
	t.Run("limit 16", func(t *testing.T) { floodBounded(t, n, 16) })
	t.Run("unlimited", func(t *testing.T) {
		if !soak() {
			t.Skip("SOAK=1 runs the unlimited comparison (about 6 goroutines per token: past the race detector's limit)")
		}
		floodBounded(t, n, -1)
	})
}

func floodBounded(t *testing.T, n, limit int) {
	t.Helper()
	const (
		users   = 20
		delay   = 100 * time.Millisecond
		timeout = time.Second
	)
	srv := newAllauth(t)
	tokens := make([]string, users)
	for i := range tokens {
		name := "u" + strconv.Itoa(i)
		srv.AddUser(allauthtest.User{ID: 100 + i, Username: name})
		tokens[i] = srv.IssueToken(name)
	}
	m := newMiddleware(t, srv, fiberauth.Config{
		MaxConcurrentLookups: limit,
		Timeout:              timeout,
		CacheTTL:             time.Hour,
		// The breaker would shed some of the flood too: off, to show the
		// limit alone.
		Breaker: introspect.BreakerConfig{Disabled: true},
	})
	h := handlerApp(t, m.Handler)
	for i, tok := range tokens {
		if a := serveDirect(h, pair{fiberauth.HeaderSessionToken, tok}); a.Status != 200 || a.Body != "u"+strconv.Itoa(i) {
			t.Fatalf("warm-up u%d: %d %q", i, a.Status, a.Body)
		}
	}
	m.Client().CloseIdleConnections()
	baseline := settledGoroutines(0, 300*time.Millisecond)
	srv.ResetCounters()
	srv.SetFault(allauthtest.Fault{Delay: delay})

	// The flood: n goroutines, released at once.
	var gone, unavailable, other, noRetryAfter atomic.Int64
	var firstOther sync.Once
	release := make(chan struct{})
	var flood sync.WaitGroup
	for i := range n {
		flood.Add(1)
		go func() {
			defer flood.Done()
			tok := randomToken(rand.New(rand.NewPCG(uint64(i), 14))) //nolint:gosec // i is a loop index
			<-release
			a := serveDirect(h, pair{fiberauth.HeaderSessionToken, tok})
			switch a.Status {
			case http.StatusGone:
				gone.Add(1)
			case http.StatusServiceUnavailable:
				unavailable.Add(1)
				if s, err := strconv.Atoi(a.Header["Retry-After"]); err != nil || s < 1 {
					noRetryAfter.Add(1)
				}
			default:
				other.Add(1)
				firstOther.Do(func() { t.Errorf("flood: %d %q", a.Status, a.Body) })
			}
		}()
	}
	// Cached users, one request at a time, timed, until the flood is over.
	var cachedBad atomic.Int64
	var latencies []time.Duration
	stop := make(chan struct{})
	cachedDone := make(chan struct{})
	go func() {
		defer close(cachedDone)
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			u := k % users
			start := time.Now()
			a := serveDirect(h, pair{fiberauth.HeaderSessionToken, tokens[u]})
			latencies = append(latencies, time.Since(start))
			if a.Status != 200 || a.Body != "u"+strconv.Itoa(u) {
				cachedBad.Add(1)
			}
			time.Sleep(time.Millisecond)
		}
	}()

	sampler := sampleGoroutines(10 * time.Millisecond)
	start := time.Now()
	close(release)
	flood.Wait()
	took := time.Since(start)
	samples := sampler.Stop()
	close(stop)
	<-cachedDone

	p := m.Metrics().Protection
	peak := slices.Max(samples)
	slices.Sort(latencies)
	pct := func(q float64) time.Duration { return latencies[int(q*float64(len(latencies)-1))] }
	t.Logf("%d distinct tokens, allauth %v per lookup, Timeout %v, MaxConcurrentLookups %d: done in %v",
		n, delay, timeout, limit, took.Round(time.Millisecond))
	t.Logf("allauth saw %d lookups, at most %d at once (%d cut at their deadline); answers: %d 410, %d 503 (%d refused for want of a slot)",
		srv.SessionCalls(), srv.MaxInFlight(), srv.SessionCalls()-gone.Load(), gone.Load(), unavailable.Load(), p.SlotRejections)
	t.Logf("goroutines: baseline %d, peak %d (+%d, %.1f per flooding request)",
		baseline, peak, peak-baseline, float64(peak-baseline)/float64(n))
	t.Logf("cached users during the flood: %d requests, p50 %v, p90 %v, p99 %v, max %v",
		len(latencies), pct(0.5), pct(0.9), pct(0.99), latencies[len(latencies)-1])

	if cachedBad.Load() != 0 {
		t.Errorf("%d requests of cached users were not answered 200 with their user", cachedBad.Load())
	}
	if gone.Load()+unavailable.Load()+other.Load() != int64(n) {
		t.Errorf("%d flood answers, want %d", gone.Load()+unavailable.Load()+other.Load(), n)
	}
	if noRetryAfter.Load() != 0 {
		t.Errorf("%d 503s without a Retry-After", noRetryAfter.Load())
	}
	if limit < 0 {
		return // the comparison: only logged
	}
	// Every lookup that reached allauth got its 410 or was cut at its
	// deadline. A cut frees its slot as the client closes the connection,
	// and the stand-in counts the request until it sees the close: for that
	// moment it may count the next lookup too. (A real gunicorn worker even
	// finishes an abandoned request.) So the bound is the limit plus the
	// cuts, and exactly the limit when nothing was cut.
	cut := srv.SessionCalls() - gone.Load()
	if got := srv.MaxInFlight(); got > int64(limit)+cut {
		t.Errorf("allauth saw %d lookups at once, limit %d, %d lookups cut at their deadline", got, limit, cut)
	}
	if gone.Load() == 0 || unavailable.Load() == 0 || p.SlotRejections == 0 {
		t.Errorf("want some 410s and some 503s for want of a slot: %d 410, %d 503, %+v", gone.Load(), unavailable.Load(), p)
	}
	// Each flooding request holds its own goroutine and singleflight's while
	// it waits; only the lookups holding a slot add the transport's two and
	// the stand-in's two. Unbounded, that is about 6 per request.
	if bound := baseline + 2*n + 8*limit + 64; peak > bound {
		t.Errorf("%d goroutines at the peak, bound %d (baseline %d, 2 per request, 8 per slot)", peak, bound, baseline)
	}
	if p.InFlight != 0 || p.Waiting != 0 {
		t.Errorf("after the flood: %+v", p)
	}
}

// Concurrent misses for one token share one lookup, so they share one
// slot: with a single slot, 200 concurrent cold requests for one token all
// succeed, and none is refused.
func Test_Flood_CoalescedShareOneSlot(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := newMiddleware(t, srv, fiberauth.Config{MaxConcurrentLookups: 1})
	h := handlerApp(t, m.Handler)
	tok := srv.IssueToken("alice")
	srv.SetFault(allauthtest.Fault{Delay: 50 * time.Millisecond})
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if a := serveDirect(h, pair{fiberauth.HeaderSessionToken, tok}); a.Status != 200 || a.Body != "alice" {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Errorf("%d of 200 requests failed", bad.Load())
	}
	wantCalls(t, srv, 1)
	if p := m.Metrics().Protection; p.SlotRejections != 0 || p.MaxConcurrentLookups != 1 {
		t.Errorf("protection: %+v", p)
	}
}

// fakeClock is moved by hand, so that the breaker's cool-down is checked
// exactly.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// With allauth hanging, the first Failures misses each wait Timeout; then
// the breaker trips, and the next miss makes it ping allauth, which hangs
// too (that miss waits Timeout as well), so it opens; misses then answer at
// once: 503 with Retry-After = the cool-down left, or the stale session
// under StaleIfError; allauth sees nothing. Metrics and Prometheus (see
// fiberauth/prometheus) show it open, and a log line says so; Ready pings
// allauth and says down. When allauth is back, Ready says up at once, and
// after the cool-down the next miss pings and closes the breaker.
//
// The times are logged (the README quotes them), not asserted.
func Test_Breaker_FastFailAndRecovery(t *testing.T) {
	t.Parallel()
	const (
		timeout  = 300 * time.Millisecond
		ttl      = 200 * time.Millisecond
		coolDown = 30 * time.Second
	)
	clock := &fakeClock{t: time.Now()}
	var logs logBuffer
	srv := newAllauth(t)
	t.Cleanup(allauth.SetTestClock(srv.URL, clock.Now))
	m := newMiddleware(t, srv, fiberauth.Config{
		Timeout:      timeout,
		CacheTTL:     ttl,
		StaleIfError: time.Hour,
		Breaker:      introspect.BreakerConfig{Failures: 3, CoolDown: coolDown},
		Logger:       slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	app := readyApp(t, m, headless.ReadyConfig{ProbeInterval: time.Nanosecond, Timeout: timeout})
	alice := srv.IssueToken("alice")
	wantUser(t, do(t, app, withToken(alice)), "alice")
	ready(t, app, http.StatusOK, "recent")

	srv.SetFault(allauthtest.Fault{Delay: time.Hour})
	var before []time.Duration
	for range 4 { // 3 timeouts trip it; the 4th miss's ping times out too
		start := time.Now()
		r := do(t, app, withToken(srv.IssueToken("bob")))
		before = append(before, time.Since(start))
		wantError(t, r, http.StatusServiceUnavailable, headless.CodeUpstreamUnavailable)
	}
	if p := m.Metrics().Protection; p.Breaker != introspect.BreakerOpen || p.BreakerOpens != 1 || p.BreakerPings != 1 {
		t.Fatalf("after 3 timeouts and a failed ping: %+v", p)
	}
	calls := srv.SessionCalls()

	// Open: at once, Retry-After = the cool-down left.
	var after []time.Duration
	for _, step := range []struct {
		advance time.Duration
		retry   string
	}{{0, "30"}, {10 * time.Second, "20"}, {19500 * time.Millisecond, "1"}} {
		clock.Advance(step.advance)
		start := time.Now()
		r := do(t, app, withToken(srv.IssueToken("bob")))
		after = append(after, time.Since(start))
		wantError(t, r, http.StatusServiceUnavailable, headless.CodeUpstreamUnavailable)
		if got := r.Header.Get("Retry-After"); got != step.retry {
			t.Errorf("Retry-After %q, want %q", got, step.retry)
		}
	}
	// StaleIfError: alice's expired session is served, without a lookup.
	sleepPast(ttl)
	start := time.Now()
	wantUser(t, do(t, app, withToken(alice)), "alice")
	stale := time.Since(start)
	if s := m.Metrics().Cache; s.StaleServes != 1 {
		t.Errorf("stale serves %d, want 1", s.StaleServes)
	}
	if got := srv.SessionCalls(); got != calls {
		t.Errorf("allauth saw %d lookups while the breaker was open", got-calls)
	}
	t.Logf("Timeout %v: the 3 misses that tripped the breaker and the one whose ping opened it took %v; with it open, misses took %v; a stale session %v",
		timeout, roundAll(before), roundAll(after), stale.Round(time.Microsecond))

	// Observability: Metrics, Ready, one log line per change of state.
	met := m.Metrics()
	if p := met.Protection; p.Breaker != introspect.BreakerOpen || p.BreakerRejections != 5 || p.InFlight != 0 {
		t.Errorf("Metrics().Protection while open: %+v", p)
	}
	if met.UpstreamErrors != 3 {
		t.Errorf("UpstreamErrors = %d, want 3 (refusals made no request)", met.UpstreamErrors)
	}
	// Ready does not go by the breaker: it pings allauth, which hangs.
	if b := ready(t, app, http.StatusServiceUnavailable, "probe"); b.Reason != "no answer in time" {
		t.Errorf("ready reason %q", b.Reason)
	}
	if got := srv.SessionCalls(); got != calls+1 {
		t.Errorf("Ready made %d requests to allauth, want its ping", got-calls)
	}
	if l := logs.String(); !strings.Contains(l, `msg="allauth circuit breaker" from=closed to=open`) ||
		strings.Count(l, "allauth lookup failed") != 3 {
		t.Errorf("logs:\n%s", l)
	}

	// allauth is back: Ready pings and says up, though the breaker is
	// still open. The cool-down ends; the next miss makes the breaker ping,
	// allauth answers, and the breaker closes.
	srv.SetFault(allauthtest.Fault{})
	ready(t, app, http.StatusOK, "probe")
	clock.Advance(coolDown)
	if p := m.Metrics().Protection; p.Breaker != introspect.BreakerHalfOpen {
		t.Errorf("after the cool-down: %+v", p)
	}
	wantUser(t, do(t, app, withToken(srv.IssueToken("bob"))), "bob")
	if p := m.Metrics().Protection; p.Breaker != introspect.BreakerClosed {
		t.Errorf("after a good probe: %+v", p)
	}
	if l := logs.String(); !strings.Contains(l, `level=INFO msg="allauth circuit breaker" from=half_open to=closed`) {
		t.Errorf("no log line for the closing:\n%s", l)
	}
}

// Breaker.Disabled: every miss asks allauth and waits for its failure.
func Test_Breaker_Disabled(t *testing.T) {
	t.Parallel()
	srv, m, app := setup(t, fiberauth.Config{Breaker: introspect.BreakerConfig{Disabled: true}})
	srv.SetFault(allauthtest.Fault{Status: http.StatusBadGateway})
	for range 20 {
		wantError(t, do(t, app, withToken(srv.IssueToken("bob"))), http.StatusServiceUnavailable, headless.CodeUpstreamUnavailable)
	}
	wantCalls(t, srv, 20)
	if p := m.Metrics().Protection; !p.BreakerDisabled || p.BreakerRejections != 0 {
		t.Errorf("protection: %+v", p)
	}
}

// allauth's 401 and 410 never open the breaker, however many.
func Test_Breaker_RejectionsKeepItClosed(t *testing.T) {
	t.Parallel()
	srv, m, app := setup(t, fiberauth.Config{Breaker: introspect.BreakerConfig{Failures: 2}, NegativeTTL: -1})
	srv.SetActive("bob", false)
	bob := srv.IssueToken("bob")
	rng := rand.New(rand.NewPCG(14, 2))
	for range 20 {
		wantError(t, do(t, app, withToken(randomToken(rng))), http.StatusGone, headless.CodeSessionGone)
		wantError(t, do(t, app, withToken(bob)), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	}
	wantCalls(t, srv, 40)
	if p := m.Metrics().Protection; p.Breaker != introspect.BreakerClosed || p.BreakerOpens != 0 {
		t.Errorf("protection: %+v", p)
	}
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Microsecond)
	}
	return out
}
