package cache

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/testwait"
	"github.com/allauthgo/headless/introspect"
)

// TestTTLExpiry proves an authenticated answer is fresh until exactly TTL
// after it was fetched, and a miss from then on (injected clock).
func TestTTLExpiry(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	c := newTestCache(t, Config{TTL: 10 * time.Second, Now: clk.Now})
	f := &fetchCounter{sess: newSession(t, 7)}
	k := keyFor(1)

	if _, ok := c.Get(ctx, k); ok {
		t.Fatal("hit on a cold cache")
	}
	if r := c.Load(ctx, k, time.Time{}, f.fetch); r.Session != f.sess || r.Err != nil || r.Stale {
		t.Fatalf("Load = %+v", r)
	}
	clk.Add(10*time.Second - time.Nanosecond)
	if r, ok := c.Get(ctx, k); !ok || r.Session != f.sess {
		t.Fatalf("1ns before TTL: ok=%v %+v", ok, r)
	}
	clk.Add(time.Nanosecond)
	if _, ok := c.Get(ctx, k); ok {
		t.Fatal("hit at exactly TTL")
	}
	// Load after expiry fetches again, and the new answer is fresh for TTL.
	c.Load(ctx, k, time.Time{}, f.fetch)
	if n := f.calls.Load(); n != 2 {
		t.Fatalf("fetches = %d, want 2", n)
	}
	clk.Add(5 * time.Second)
	if _, ok := c.Get(ctx, k); !ok {
		t.Fatal("refetched answer not fresh")
	}
	st := c.Stats()
	if st.Hits != 2 || st.Misses != 2 || st.Fetches != 2 {
		t.Errorf("Stats = %+v, want 2 hits, 2 misses, 2 fetches", st)
	}
}

// TestDefaultTTLs proves the zero Config keeps a session 30 s and a 401 5 s.
func TestDefaultTTLs(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	c := newTestCache(t, Config{Now: clk.Now})
	c.Load(ctx, keyFor(1), time.Time{}, (&fetchCounter{sess: newSession(t, 1)}).fetch)
	c.Load(ctx, keyFor(2), time.Time{}, (&fetchCounter{err: &introspect.AuthError{Status: 401}}).fetch)
	clk.Add(DefaultNegativeTTL - 1)
	if _, ok := c.Get(ctx, keyFor(2)); !ok {
		t.Error("401 expired before DefaultNegativeTTL")
	}
	clk.Add(1)
	if _, ok := c.Get(ctx, keyFor(2)); ok {
		t.Error("401 served at DefaultNegativeTTL")
	}
	clk.Add(DefaultTTL - DefaultNegativeTTL - 1)
	if _, ok := c.Get(ctx, keyFor(1)); !ok {
		t.Error("session expired before DefaultTTL")
	}
	clk.Add(1)
	if _, ok := c.Get(ctx, keyFor(1)); ok {
		t.Error("session served at DefaultTTL")
	}
}

// TestNegativeTTL proves allauth's 401 and 410 are cached for NegativeTTL
// (and Get returns the same kind of error), then fetched again.
func TestNegativeTTL(t *testing.T) {
	for _, tc := range []struct {
		status int
		target error
	}{
		{http.StatusUnauthorized, introspect.ErrUnauthenticated},
		{http.StatusGone, introspect.ErrSessionGone},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			ctx := context.Background()
			clk := newFakeClock()
			c := newTestCache(t, Config{TTL: time.Minute, NegativeTTL: 3 * time.Second, Now: clk.Now})
			f := &fetchCounter{err: &introspect.AuthError{Status: tc.status, Flows: []introspect.Flow{{ID: "login"}}}}
			k := keyFor(tc.status)

			r := c.Load(ctx, k, time.Time{}, f.fetch)
			if r.Session != nil || r.Err != f.err { //nolint:errorlint // the live error is passed through as is
				t.Fatalf("Load = %+v, want the fetch's own error", r)
			}
			clk.Add(3*time.Second - 1)
			r, ok := c.Get(ctx, k)
			var ae *introspect.AuthError
			if !ok || r.Session != nil || !errors.Is(r.Err, tc.target) || !errors.As(r.Err, &ae) || ae.Status != tc.status {
				t.Fatalf("Get before NegativeTTL: ok=%v %+v", ok, r)
			}
			if len(ae.Flows) != 0 {
				t.Errorf("cached %d carries flows %v; flows are not cached", tc.status, ae.Flows)
			}
			// A Load within NegativeTTL (e.g. a waiter that became leader
			// late) is answered from the cache too.
			if r := c.Load(ctx, k, time.Time{}, f.fetch); !errors.Is(r.Err, tc.target) || f.calls.Load() != 1 {
				t.Fatalf("Load within NegativeTTL: %+v, %d fetches", r, f.calls.Load())
			}
			clk.Add(1)
			if _, ok := c.Get(ctx, k); ok {
				t.Fatal("negative answer served at NegativeTTL")
			}
			c.Load(ctx, k, time.Time{}, f.fetch)
			if n := f.calls.Load(); n != 2 {
				t.Errorf("fetches = %d, want 2", n)
			}
			if st := c.Stats(); st.NegativeHits != 1 {
				t.Errorf("NegativeHits = %d, want 1", st.NegativeHits)
			}
		})
	}
}

// TestNegativeCachingOff proves NegativeTTL < 0 stores no 401/410: two Loads
// make two fetches, and Get never hits.
func TestNegativeCachingOff(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, Config{NegativeTTL: -1, Now: newFakeClock().Now})
	f := &fetchCounter{err: &introspect.AuthError{Status: http.StatusGone}}
	for range 2 {
		if r := c.Load(ctx, keyFor(1), time.Time{}, f.fetch); !errors.Is(r.Err, introspect.ErrSessionGone) {
			t.Fatalf("Load = %+v", r)
		}
		if _, ok := c.Get(ctx, keyFor(1)); ok {
			t.Fatal("a 410 was cached with NegativeTTL < 0")
		}
	}
	if n := f.calls.Load(); n != 2 {
		t.Errorf("fetches = %d, want 2", n)
	}
	if l := c.Stats().Entries; l != 0 {
		t.Errorf("Entries = %d, want 0", l)
	}
}

// TestUpstreamErrorsNeverCached proves a failure of allauth (and a fetch that
// returns neither a session nor an error) is never stored: every Load asks
// again.
func TestUpstreamErrorsNeverCached(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, Config{StaleIfError: time.Minute, Now: newFakeClock().Now})
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"upstream", upstreamErr()},
		{"plain error", errors.New("dial tcp: connection refused")},
		{"nil, nil", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fetchCounter{err: tc.err}
			k := NewKey(testScope, tc.name)
			for i := range 3 {
				r := c.Load(ctx, k, time.Time{}, f.fetch)
				if r.Session != nil || r.Err == nil || r.Stale {
					t.Fatalf("Load %d = %+v", i, r)
				}
				var ae *introspect.AuthError
				if errors.As(r.Err, &ae) {
					t.Fatalf("an upstream failure became a %d", ae.Status)
				}
				if _, ok := c.Get(ctx, k); ok {
					t.Fatal("an upstream failure was cached")
				}
			}
			if n := f.calls.Load(); n != 3 {
				t.Errorf("fetches = %d, want 3", n)
			}
		})
	}
	if l := c.Stats().Entries; l != 0 {
		t.Errorf("Entries = %d, want 0", l)
	}
}

// TestNotAfterCapsTTL proves a caller's deadline (a JWT's exp) shortens how
// long a session is kept, and a deadline already past stores nothing.
func TestNotAfterCapsTTL(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	c := newTestCache(t, Config{TTL: time.Minute, Now: clk.Now})
	f := &fetchCounter{sess: newSession(t, 1)}

	exp := clk.Now().Add(2 * time.Second)
	c.Load(ctx, keyFor(1), exp, f.fetch)
	// A deadline after TTL does not lengthen it.
	c.Load(ctx, keyFor(2), clk.Now().Add(time.Hour), f.fetch)
	clk.Add(2*time.Second - 1)
	if _, ok := c.Get(ctx, keyFor(1)); !ok {
		t.Fatal("miss before notAfter")
	}
	clk.Add(1)
	if _, ok := c.Get(ctx, keyFor(1)); ok {
		t.Fatal("hit at notAfter")
	}
	clk.Add(time.Minute - 2*time.Second)
	if _, ok := c.Get(ctx, keyFor(2)); ok {
		t.Fatal("notAfter beyond TTL kept the session past TTL")
	}

	for _, past := range []time.Time{clk.Now(), clk.Now().Add(-time.Hour)} {
		before := c.Stats().Entries
		r := c.Load(ctx, keyFor(3), past, f.fetch)
		if r.Session != f.sess {
			t.Fatalf("Load with notAfter in the past = %+v", r)
		}
		if _, ok := c.Get(ctx, keyFor(3)); ok {
			t.Fatal("a session whose notAfter has passed was cached")
		}
		if got := c.Stats().Entries; got != before {
			t.Errorf("Entries went from %d to %d", before, got)
		}
	}
}

// TestCoalesceOneKey proves 1,000 concurrent Loads of one cold key make one
// fetch, all get its session, and 999 are counted as coalesced.
func TestCoalesceOneKey(t *testing.T) {
	const n = 1000
	ctx := context.Background()
	c := newTestCache(t, Config{TTL: time.Minute})
	sess := newSession(t, 1)
	release := make(chan struct{})
	var calls atomic.Int64
	fetch := func(context.Context) (*introspect.Session, error) {
		calls.Add(1)
		<-release
		return sess, nil
	}
	k := keyFor(1)
	results := make([]Result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = c.Load(ctx, k, time.Time{}, fetch)
		}()
	}
	waitLoadWaiters(t, n) // every Load has joined the one flight
	close(release)
	wg.Wait()

	if got := calls.Load(); got != 1 {
		t.Errorf("fetch called %d times, want 1", got)
	}
	coalesced := 0
	for i, r := range results {
		if r.Session != sess || r.Err != nil || r.Stale || r.Tier != TierNone {
			t.Fatalf("Load %d = %+v", i, r)
		}
		if r.Coalesced {
			coalesced++
		}
	}
	if coalesced != n-1 {
		t.Errorf("%d results say Coalesced, want %d (all but the leader)", coalesced, n-1)
	}
	st := c.Stats()
	if st.Coalesced != n-1 || st.Fetches != 1 {
		t.Errorf("Coalesced = %d, Fetches = %d; want %d, 1", st.Coalesced, st.Fetches, n-1)
	}
	if r, ok := c.Get(ctx, k); !ok || r.Session != sess {
		t.Errorf("the coalesced answer was not stored: %v %+v", ok, r)
	}
}

// TestCoalesceDistinctKeys proves concurrency does not mix keys up: 1,000
// concurrent Loads of 1,000 keys make 1,000 fetches and each gets the session
// of its own key.
func TestCoalesceDistinctKeys(t *testing.T) {
	const n = 1000
	ctx := context.Background()
	c := newTestCache(t, Config{TTL: time.Minute, MaxEntries: n})
	var calls atomic.Int64
	start := make(chan struct{})
	results := make([]Result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i] = c.Load(ctx, keyFor(i), time.Time{}, func(context.Context) (*introspect.Session, error) {
				calls.Add(1)
				return buildSession(i), nil
			})
		}()
	}
	close(start)
	wg.Wait()
	if got := calls.Load(); got != n {
		t.Errorf("fetches = %d, want %d", got, n)
	}
	for i, r := range results {
		if r.Session == nil || r.Session.User.ID != strconv.Itoa(i) {
			t.Fatalf("Load %d got %+v", i, r)
		}
		if g, ok := c.Get(ctx, keyFor(i)); !ok || g.Session.User.ID != strconv.Itoa(i) {
			t.Fatalf("Get %d: ok=%v %+v", i, ok, g)
		}
	}
	if st := c.Stats(); st.Coalesced != 0 || st.Fetches != n {
		t.Errorf("Coalesced = %d, Fetches = %d", st.Coalesced, st.Fetches)
	}
}

// TestWaiterCancellation proves a waiter whose ctx ends leaves at once with
// an error, while the fetch goes on, undisturbed (its ctx is not cancelled),
// for the leader and the other waiters.
func TestWaiterCancellation(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, Config{TTL: time.Minute})
	sess := newSession(t, 1)
	release := make(chan struct{})
	fetchCtxErr := make(chan error, 1)
	var calls atomic.Int64
	fetch := func(fctx context.Context) (*introspect.Session, error) {
		calls.Add(1)
		<-release
		fetchCtxErr <- fctx.Err()
		return sess, nil
	}
	k := keyFor(1)

	// The leader's own ctx ends too: the fetch must not notice.
	leaderCtx, cancelLeader := context.WithCancel(ctx)
	leaderDone := make(chan Result, 1)
	go func() { leaderDone <- c.Load(leaderCtx, k, time.Time{}, fetch) }()
	others := make(chan Result, 5)
	for range 5 {
		go func() { others <- c.Load(ctx, k, time.Time{}, fetch) }()
	}
	waiterCtx, cancelWaiter := context.WithCancel(ctx)
	waiterDone := make(chan Result, 1)
	go func() { waiterDone <- c.Load(waiterCtx, k, time.Time{}, fetch) }()
	waitLoadWaiters(t, 7)

	cancelWaiter()
	cancelLeader()
	for name, ch := range map[string]chan Result{"waiter": waiterDone, "leader": leaderDone} {
		select {
		case r := <-ch:
			var ue *introspect.UpstreamError
			if r.Session != nil || !errors.Is(r.Err, context.Canceled) || !errors.As(r.Err, &ue) {
				t.Errorf("cancelled %s got %+v, want an UpstreamError wrapping context.Canceled", name, r)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("cancelled %s still waits for the fetch", name)
		}
	}
	select {
	case r := <-others:
		t.Fatalf("a waiter returned before the fetch finished: %+v", r)
	default:
	}

	close(release)
	if err := <-fetchCtxErr; err != nil {
		t.Errorf("the fetch's ctx was cancelled: %v", err)
	}
	for range 5 {
		if r := <-others; r.Session != sess || r.Err != nil {
			t.Errorf("remaining waiter got %+v", r)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("fetches = %d, want 1", n)
	}
	// The answer was stored although the Load that started it left.
	if r, ok := c.Get(ctx, k); !ok || r.Session != sess {
		t.Errorf("Get after the fetch: ok=%v %+v", ok, r)
	}
}

// TestStaleIfErrorEdges proves the stale window with an injected clock: an
// upstream failure 1 ns before FreshUntil+StaleIfError serves the old session
// as stale; at exactly that instant it is an error; allauth's 401/410 is never
// masked by a stale session; and StaleIfError 0 serves nothing stale.
func TestStaleIfErrorEdges(t *testing.T) {
	const ttl, sie = 10 * time.Second, 5 * time.Second
	ctx := context.Background()

	setup := func(t *testing.T, staleIfError time.Duration) (*Cache, *fakeClock, *introspect.Session) {
		t.Helper()
		clk := newFakeClock()
		c := newTestCache(t, Config{TTL: ttl, StaleIfError: staleIfError, Now: clk.Now}) //nolint:contextcheck // New starts the Cache's own goroutines, not this test's work
		sess := newSession(t, 1)
		if r := c.Load(ctx, keyFor(1), time.Time{}, (&fetchCounter{sess: sess}).fetch); r.Session != sess {
			t.Fatalf("first Load = %+v", r)
		}
		return c, clk, sess
	}
	failing := &fetchCounter{err: upstreamErr()}

	t.Run("last nanosecond is stale", func(t *testing.T) {
		c, clk, sess := setup(t, sie)
		clk.Add(ttl + sie - 1)
		if _, ok := c.Get(ctx, keyFor(1)); ok {
			t.Fatal("Get serves a stale session as fresh")
		}
		r := c.Load(ctx, keyFor(1), time.Time{}, failing.fetch)
		if r.Session != sess || !r.Stale || r.Err != nil {
			t.Fatalf("Load = %+v, want the stale session", r)
		}
		if !errors.Is(r.Cause, failing.err) || r.Tier != TierNone {
			t.Errorf("Cause = %v, Tier = %v; want the fetch's error, none", r.Cause, r.Tier)
		}
		if n := c.Stats().StaleServes; n != 1 {
			t.Errorf("StaleServes = %d, want 1", n)
		}
		// Serving stale stores nothing: the next Get is still a miss.
		if _, ok := c.Get(ctx, keyFor(1)); ok {
			t.Error("a stale serve made the entry fresh")
		}
	})
	t.Run("window end is an error", func(t *testing.T) {
		c, clk, _ := setup(t, sie)
		clk.Add(ttl + sie)
		r := c.Load(ctx, keyFor(1), time.Time{}, failing.fetch)
		var ue *introspect.UpstreamError
		if r.Session != nil || r.Stale || !errors.As(r.Err, &ue) {
			t.Fatalf("Load = %+v, want the upstream error", r)
		}
		if n := c.Stats().StaleServes; n != 0 {
			t.Errorf("StaleServes = %d, want 0", n)
		}
	})
	t.Run("fresh entry needs no fetch", func(t *testing.T) {
		c, clk, sess := setup(t, sie)
		clk.Add(ttl - 1)
		f := &fetchCounter{err: upstreamErr()}
		if r := c.Load(ctx, keyFor(1), time.Time{}, f.fetch); r.Session != sess || r.Stale || f.calls.Load() != 0 {
			t.Fatalf("Load of a fresh key = %+v after %d fetches", r, f.calls.Load())
		}
	})
	for _, status := range []int{http.StatusUnauthorized, http.StatusGone} {
		t.Run("allauth "+strconv.Itoa(status)+" is not masked", func(t *testing.T) {
			c, clk, _ := setup(t, sie)
			clk.Add(ttl + 1)
			r := c.Load(ctx, keyFor(1), time.Time{}, (&fetchCounter{err: &introspect.AuthError{Status: status}}).fetch)
			var ae *introspect.AuthError
			if r.Session != nil || r.Stale || !errors.As(r.Err, &ae) || ae.Status != status {
				t.Fatalf("Load = %+v, want allauth's %d", r, status)
			}
			// The negative answer replaced the session: a later failure
			// within the old stale window serves nothing either.
			clk.Add(DefaultNegativeTTL)
			if r := c.Load(ctx, keyFor(1), time.Time{}, failing.fetch); r.Session != nil || r.Stale {
				t.Fatalf("after a %d, an upstream failure served %+v", status, r)
			}
			if n := c.Stats().StaleServes; n != 0 {
				t.Errorf("StaleServes = %d, want 0", n)
			}
		})
	}
	t.Run("allauth's no without negative caching drops the session", func(t *testing.T) {
		clk := newFakeClock()
		c := newTestCache(t, Config{TTL: ttl, StaleIfError: sie, NegativeTTL: -1, Now: clk.Now}) //nolint:contextcheck // New starts the Cache's own goroutines, not this test's work
		c.Load(ctx, keyFor(1), time.Time{}, (&fetchCounter{sess: newSession(t, 1)}).fetch)
		clk.Add(ttl + 1)
		if r := c.Load(ctx, keyFor(1), time.Time{}, (&fetchCounter{err: &introspect.AuthError{Status: 410}}).fetch); !errors.Is(r.Err, introspect.ErrSessionGone) {
			t.Fatalf("Load = %+v, want allauth's 410", r)
		}
		if r := c.Load(ctx, keyFor(1), time.Time{}, failing.fetch); r.Session != nil || r.Stale {
			t.Fatalf("after a 410, an upstream failure served %+v", r)
		}
		if st := c.Stats(); st.StaleServes != 0 || st.Entries != 0 {
			t.Errorf("StaleServes = %d, Entries = %d; want 0, 0", st.StaleServes, st.Entries)
		}
	})
	t.Run("StaleIfError 0", func(t *testing.T) {
		c, clk, _ := setup(t, 0)
		clk.Add(ttl)
		r := c.Load(ctx, keyFor(1), time.Time{}, failing.fetch)
		if r.Session != nil || r.Stale || r.Err == nil {
			t.Fatalf("Load = %+v, want the upstream error", r)
		}
	})
	t.Run("negative StaleIfError is off", func(t *testing.T) {
		c, clk, _ := setup(t, -time.Hour)
		clk.Add(ttl)
		if r := c.Load(ctx, keyFor(1), time.Time{}, failing.fetch); r.Session != nil || r.Err == nil {
			t.Fatalf("Load = %+v, want the upstream error", r)
		}
	})
}

// TestStaleNeverOutlivesNotAfter proves StaleIfError does not serve a session
// past the caller's deadline: a JWT whose exp has passed is not accepted
// because allauth happens to be down.
func TestStaleNeverOutlivesNotAfter(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	c := newTestCache(t, Config{TTL: 10 * time.Second, StaleIfError: time.Minute, Now: clk.Now})
	sess := newSession(t, 1)
	exp := clk.Now().Add(5 * time.Second)
	c.Load(ctx, keyFor(1), exp, (&fetchCounter{sess: sess}).fetch)
	failing := &fetchCounter{err: upstreamErr()}

	clk.Add(5*time.Second - 1) // fresh until exp
	if _, ok := c.Get(ctx, keyFor(1)); !ok {
		t.Fatal("miss before exp")
	}
	clk.Add(1)
	r := c.Load(ctx, keyFor(1), exp, failing.fetch)
	if r.Session != nil || r.Stale || r.Err == nil {
		t.Fatalf("at exp, an upstream failure served %+v", r)
	}
	clk.Add(10 * time.Second)
	if r := c.Load(ctx, keyFor(1), exp, failing.fetch); r.Session != nil || r.Stale {
		t.Fatalf("after exp, an upstream failure served %+v", r)
	}
	if n := c.Stats().StaleServes; n != 0 {
		t.Errorf("StaleServes = %d, want 0", n)
	}

	// Without a deadline the same timeline serves stale, as configured.
	c.Load(ctx, keyFor(2), time.Time{}, (&fetchCounter{sess: sess}).fetch)
	clk.Add(15 * time.Second)
	if r := c.Load(ctx, keyFor(2), time.Time{}, failing.fetch); r.Session != sess || !r.Stale {
		t.Fatalf("without notAfter: %+v, want stale", r)
	}
}

// TestDeleteEvicts proves Delete drops a session at once (a logout seen by
// this instance) and is counted.
func TestDeleteEvicts(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, Config{})
	f := &fetchCounter{sess: newSession(t, 1)}
	c.Load(ctx, keyFor(1), time.Time{}, f.fetch)
	if _, err := c.Evict(ctx, keyFor(1)); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get(ctx, keyFor(1)); ok {
		t.Fatal("hit after Delete")
	}
	if _, err := c.Evict(ctx, keyFor(99)); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	if st := c.Stats(); st.Evictions != 2 || st.StoreErrors != 0 {
		t.Errorf("Stats = %+v", st)
	}
}

// TestCoarseClock proves the default clock (no Config.Now) moves: an entry
// with a short TTL expires in real time.
func TestCoarseClock(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, Config{TTL: 20 * time.Millisecond})
	c.Load(ctx, keyFor(1), time.Time{}, (&fetchCounter{sess: newSession(t, 1)}).fetch)
	if _, ok := c.Get(ctx, keyFor(1)); !ok {
		t.Fatal("miss right after Load")
	}
	// The cache's own coarse clock, not an injected one, is under test.
	testwait.Until(t, 5*time.Second, "a 20 ms entry to expire", func() bool {
		_, ok := c.Get(ctx, keyFor(1))
		return !ok
	})
}

// TestResultTier proves Result.Tier names the tier that answered: local for
// Get, shared for a value another instance stored, none when the fetch ran;
// and that only a stale answer has a Cause.
func TestResultTier(t *testing.T) {
	ctx := context.Background()
	store := newMapStorage()
	a := newTestCache(t, Config{Storage: store})
	b := newTestCache(t, Config{Storage: store})
	sess := newSession(t, 1)
	f := &fetchCounter{sess: sess}
	if r := a.Load(ctx, keyFor(1), time.Time{}, f.fetch); r.Tier != TierNone || r.Coalesced || r.Cause != nil || r.Session != sess {
		t.Fatalf("first Load = %+v, want fetched (tier none)", r)
	}
	if r, ok := a.Get(ctx, keyFor(1)); !ok || r.Tier != TierLocal {
		t.Fatalf("Get = %v %+v, want a local hit", ok, r)
	}
	if r := b.Load(ctx, keyFor(1), time.Time{}, f.fetch); r.Tier != TierShared || r.Session == nil || f.calls.Load() != 1 {
		t.Fatalf("other instance's Load = %+v (fetches %d), want the shared tier's answer", r, f.calls.Load())
	}
	neg := &fetchCounter{err: &introspect.AuthError{Status: http.StatusGone}}
	a.Load(ctx, keyFor(2), time.Time{}, neg.fetch)
	if r := b.Load(ctx, keyFor(2), time.Time{}, neg.fetch); r.Tier != TierShared || r.Err == nil || neg.calls.Load() != 1 {
		t.Fatalf("other instance's Load of a 410 = %+v, want the shared tier's 410", r)
	}
	for tier, want := range map[Tier]string{TierNone: "none", TierLocal: "local", TierShared: "shared"} {
		if tier.String() != want {
			t.Errorf("Tier(%d).String() = %q, want %q", tier, tier, want)
		}
	}
}
