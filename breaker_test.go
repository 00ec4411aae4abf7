package headless

import (
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/allauth"
	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// The client's overload protection as Authenticate answers it: the circuit
// breaker in front of allauth, and the slots of MaxConcurrentLookups.
// (How the breaker decides to open and close is introspect's; here, what a
// request gets while it is open.)

// fakeClock is a breaker clock moved by hand, so that the cool-down is
// checked exactly.
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

// With allauth hanging, the misses that open the breaker each wait
// Timeout; then misses answer at once: 503 with Retry-After = the cool-down
// left, or the stale session under StaleIfError; allauth sees nothing.
// Metrics show it open, and a log line says so.
//
// The times are logged (docs/operations.md quotes them), not asserted.
func TestBreaker_FastFail(t *testing.T) {
	t.Parallel()
	const (
		timeout  = 300 * time.Millisecond
		ttl      = 200 * time.Millisecond
		coolDown = 30 * time.Second
	)
	breakerClock := &fakeClock{t: time.Now()}
	cacheClock := newTestClock()
	var logs logBuffer
	srv := newAllauth(t)
	t.Cleanup(allauth.SetTestClock(srv.URL, breakerClock.Now))
	a := newCore(t, srv, Config{
		Timeout:      timeout,
		CacheTTL:     ttl,
		RefreshAhead: -1,
		StaleIfError: time.Hour,
		Breaker:      introspect.BreakerConfig{Failures: 3, CoolDown: coolDown},
		Logger:       slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		now:          cacheClock.Now,
	})
	alice := srv.IssueToken("alice")
	wantUser(t, auth(a, withToken(alice)), "alice")

	srv.SetFault(allauthtest.Fault{Delay: time.Hour})
	var before, after []time.Duration
	for range 4 { // 3 timeouts trip it; the 4th miss's ping times out too
		start := time.Now()
		wantError(t, auth(a, withToken(srv.IssueToken("bob"))), http.StatusServiceUnavailable, CodeUpstreamUnavailable)
		before = append(before, time.Since(start).Round(time.Microsecond))
	}
	if p := a.Metrics().Protection; p.Breaker != introspect.BreakerOpen || p.BreakerOpens != 1 || p.BreakerPings != 1 {
		t.Fatalf("after 3 timeouts and a failed ping: %+v", p)
	}
	calls := srv.SessionCalls()

	// Open: at once, Retry-After = the cool-down left.
	for _, step := range []struct {
		advance time.Duration
		retry   string
	}{{0, "30"}, {10 * time.Second, "20"}, {19500 * time.Millisecond, "1"}} {
		breakerClock.Advance(step.advance)
		start := time.Now()
		h := wantError(t, auth(a, withToken(srv.IssueToken("bob"))), http.StatusServiceUnavailable, CodeUpstreamUnavailable)
		took := time.Since(start)
		after = append(after, took.Round(time.Microsecond))
		if took > 2*timeout {
			t.Errorf("a miss took %v with the breaker open (Timeout %v)", took, timeout)
		}
		if got := h.Get("Retry-After"); got != step.retry {
			t.Errorf("Retry-After %q, want %q", got, step.retry)
		}
	}
	// StaleIfError: alice's expired session is served, without a lookup.
	cacheClock.Add(ttl + time.Millisecond)
	start := time.Now()
	wantUser(t, auth(a, withToken(alice)), "alice")
	stale := time.Since(start)
	if s := a.Metrics().Cache; s.StaleServes != 1 {
		t.Errorf("stale serves %d, want 1", s.StaleServes)
	}
	if got := srv.SessionCalls(); got != calls {
		t.Errorf("allauth saw %d lookups while the breaker was open", got-calls)
	}
	t.Logf("Timeout %v: the 3 misses that tripped the breaker and the one whose ping opened it took %v; with it open, misses took %v; a stale session %v",
		timeout, before, after, stale.Round(time.Microsecond))

	// Observability: Metrics, one log line for the opening.
	met := a.Metrics()
	if p := met.Protection; p.Breaker != introspect.BreakerOpen || p.BreakerRejections != 5 || p.InFlight != 0 {
		t.Errorf("Metrics().Protection while open: %+v", p)
	}
	if met.UpstreamErrors != 3 {
		t.Errorf("UpstreamErrors = %d, want 3 (refusals made no request)", met.UpstreamErrors)
	}
	if l := logs.String(); !strings.Contains(l, `level=WARN msg="allauth circuit breaker" from=closed to=open`) ||
		strings.Count(l, "allauth lookup failed") != 3 {
		t.Errorf("logs:\n%s", l)
	}

	// allauth is back. The cool-down ends; the next miss makes the breaker
	// ping, allauth answers, and the breaker closes (one INFO line).
	srv.SetFault(allauthtest.Fault{})
	breakerClock.Advance(coolDown)
	if p := a.Metrics().Protection; p.Breaker != introspect.BreakerHalfOpen {
		t.Errorf("after the cool-down: %+v", p)
	}
	wantUser(t, auth(a, withToken(srv.IssueToken("bob"))), "bob")
	if p := a.Metrics().Protection; p.Breaker != introspect.BreakerClosed {
		t.Errorf("after a good probe: %+v", p)
	}
	if l := logs.String(); !strings.Contains(l, `level=INFO msg="allauth circuit breaker" from=half_open to=closed`) {
		t.Errorf("no log line for the closing:\n%s", l)
	}
}

// Breaker.Disabled: every miss asks allauth and waits for its failure.
func TestBreaker_Disabled(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{Breaker: introspect.BreakerConfig{Disabled: true}})
	srv.SetFault(allauthtest.Fault{Status: http.StatusBadGateway})
	for range 20 {
		wantError(t, auth(a, withToken(srv.IssueToken("bob"))), http.StatusServiceUnavailable, CodeUpstreamUnavailable)
	}
	wantCalls(t, srv, 20)
	if p := a.Metrics().Protection; !p.BreakerDisabled || p.BreakerRejections != 0 {
		t.Errorf("protection: %+v", p)
	}
}

// allauth's 401 and 410 never open the breaker, however many.
func TestBreaker_RejectionsKeepItClosed(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{Breaker: introspect.BreakerConfig{Failures: 2}, NegativeTTL: -1})
	srv.SetActive("bob", false)
	bob := srv.IssueToken("bob")
	for i := range 20 {
		wantError(t, auth(a, withToken("gone"+strings.Repeat("x", 20)+string(rune('a'+i)))), http.StatusGone, CodeSessionGone)
		wantError(t, auth(a, withToken(bob)), http.StatusUnauthorized, CodeNotAuthenticated)
	}
	wantCalls(t, srv, 40)
	if p := a.Metrics().Protection; p.Breaker != introspect.BreakerClosed || p.BreakerOpens != 0 {
		t.Errorf("protection: %+v", p)
	}
}

// Concurrent misses for one token share one lookup, so they share one
// slot: with a single slot, 200 concurrent cold requests for one token all
// succeed, and none is refused.
func TestSlots_CoalescedShareOne(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{MaxConcurrentLookups: 1})
	tok := srv.IssueToken("alice")
	srv.SetFault(allauthtest.Fault{Delay: 50 * time.Millisecond})
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range 200 {
		wg.Go(func() {
			if res := auth(a, withToken(tok)); res.Session == nil || res.Session.User.Username != "alice" {
				bad.Add(1)
			}
		})
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Errorf("%d of 200 requests failed", bad.Load())
	}
	wantCalls(t, srv, 1)
	if p := a.Metrics().Protection; p.SlotRejections != 0 || p.MaxConcurrentLookups != 1 {
		t.Errorf("protection: %+v", p)
	}
}
