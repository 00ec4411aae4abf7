package fiberauth_test

import (
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
	allauth.Of(m.Authenticator).CloseIdleConnections()
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
			time.Sleep(time.Millisecond) // real time: a steady pace of cached users during a flood
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
