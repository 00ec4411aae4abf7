package cache

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/redistest"
	"github.com/allauthgo/headless/introspect"
)

// gatedFetch is a Fetch that counts its calls and, while gated, waits for
// release (or its ctx) before answering with its current answer.
type gatedFetch struct {
	calls   atomic.Int64
	mu      sync.Mutex
	sess    *introspect.Session
	err     error
	gate    chan struct{} // nil: answer at once
	started chan struct{} // receives once per call that waits on gate
}

func (f *gatedFetch) set(s *introspect.Session, err error) {
	f.mu.Lock()
	f.sess, f.err = s, err
	f.mu.Unlock()
}

func (f *gatedFetch) hold() {
	f.mu.Lock()
	f.gate, f.started = make(chan struct{}), make(chan struct{}, 16)
	f.mu.Unlock()
}

func (f *gatedFetch) release() {
	f.mu.Lock()
	close(f.gate)
	f.gate = nil
	f.mu.Unlock()
}

func (f *gatedFetch) fetch(ctx context.Context) (*introspect.Session, error) {
	f.calls.Add(1)
	f.mu.Lock()
	gate, started := f.gate, f.started
	f.mu.Unlock()
	if gate != nil {
		started <- struct{}{}
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, &introspect.UpstreamError{Reason: "cancelled", Err: ctx.Err()}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sess, f.err
}

// refreshTestCache is an in-process Cache with TTL 10 s (refreshes in its
// last 2 s) on a fake clock, holding key 1 for user 1 (one fetch made).
func refreshTestCache(t *testing.T, cfg Config) (*Cache, *fakeClock, *gatedFetch) {
	t.Helper()
	clock := newFakeClock()
	cfg.TTL, cfg.Now = 10*time.Second, clock.Now
	c := newTestCache(t, cfg)
	f := &gatedFetch{}
	f.set(newSession(t, 1), nil)
	if r := c.Load(context.Background(), keyFor(1), time.Time{}, f.fetch); r.Session == nil {
		t.Fatalf("first Load: %+v", r)
	}
	return c, clock, f
}

// hit is Get that must hit, returning the result.
func hit(t *testing.T, c *Cache, key Key) Result {
	t.Helper()
	r, ok := c.Get(context.Background(), key)
	if !ok {
		t.Fatal("Get missed, want a hit")
	}
	return r
}

// TestRefreshAhead_OneRefreshPerWindow: many concurrent hits in the last
// fifth of an entry's life start one refresh, are all answered at once from
// the cache while it runs, and its answer carries the entry past its old
// expiry; hits before the window ask for none.
func TestRefreshAhead_OneRefreshPerWindow(t *testing.T) {
	c, clock, f := refreshTestCache(t, Config{})
	key := keyFor(1)

	clock.Add(7 * time.Second) // 70% of its life: no refresh yet
	if r := hit(t, c, key); r.Refresh {
		t.Fatal("a hit at 70% of TTL asked for a refresh")
	}

	clock.Add(2200 * time.Millisecond) // 92%: in the window, whatever its jitter
	f.hold()
	var asked atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for range 50 {
				r, ok := c.Get(context.Background(), key)
				if !ok || r.Session == nil || r.Session.User.ID != "1" {
					t.Errorf("hit during refresh: ok=%v %+v", ok, r)
					return
				}
				if r.Refresh {
					asked.Add(1)
					c.Refresh(key, r, nil, f.fetch)
				}
			}
		})
	}
	wg.Wait()
	if got := asked.Load(); got != 1 {
		t.Fatalf("%d hits asked for a refresh, want exactly 1", got)
	}
	<-f.started // the refresh is at allauth; hits above were served meanwhile
	f.release()
	c.refresh.wg.Wait()

	if got := f.calls.Load(); got != 2 {
		t.Fatalf("fetches = %d, want 2 (the first lookup and one refresh)", got)
	}
	clock.Add(2 * time.Second) // 11.2 s: past the first answer's expiry (10 s)
	if r := hit(t, c, key); r.Session.User.ID != "1" || r.Refresh {
		t.Fatalf("after the refresh: %+v", r)
	}
	if s := c.Stats(); s.Refreshes != 1 || s.RefreshSkips != 0 {
		t.Fatalf("Stats: Refreshes=%d RefreshSkips=%d, want 1 and 0", s.Refreshes, s.RefreshSkips)
	}
}

// TestRefreshAhead_UnusedEntryExpires: an entry nobody uses in its window is
// not refreshed; it expires as before.
func TestRefreshAhead_UnusedEntryExpires(t *testing.T) {
	c, clock, f := refreshTestCache(t, Config{})
	clock.Add(10 * time.Second)
	if _, ok := c.Get(context.Background(), keyFor(1)); ok {
		t.Fatal("an expired entry was served")
	}
	if got := f.calls.Load(); got != 1 {
		t.Fatalf("fetches = %d, want 1", got)
	}
}

// TestRefreshAhead_Off: a negative RefreshAhead never asks for one.
func TestRefreshAhead_Off(t *testing.T) {
	c, clock, _ := refreshTestCache(t, Config{RefreshAhead: -1})
	clock.Add(9200 * time.Millisecond)
	if r := hit(t, c, keyFor(1)); r.Refresh {
		t.Fatal("RefreshAhead < 0 asked for a refresh")
	}
}

// TestRefreshAhead_RefusalReplacesEntry: a refresh answered 410 (or 401)
// replaces the entry, so the next request is refused, never served.
func TestRefreshAhead_RefusalReplacesEntry(t *testing.T) {
	for _, status := range []int{http.StatusGone, http.StatusUnauthorized} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			c, clock, f := refreshTestCache(t, Config{StaleIfError: time.Minute})
			key := keyFor(1)
			clock.Add(9200 * time.Millisecond)
			f.set(nil, &introspect.AuthError{Status: status})
			c.Refresh(key, hit(t, c, key), nil, f.fetch)
			c.refresh.wg.Wait()
			r, ok := c.Get(context.Background(), key)
			var auth *introspect.AuthError
			if !ok || r.Session != nil || !errors.As(r.Err, &auth) || auth.Status != status {
				t.Fatalf("after a %d refresh: ok=%v %+v, want the cached %d", status, ok, r, status)
			}
			// And StaleIfError does not bring the session back.
			f.set(nil, upstreamErr())
			clock.Add(10 * time.Second)
			if r := c.Load(context.Background(), key, time.Time{}, f.fetch); r.Session != nil {
				t.Fatalf("stale session served after a %d: %+v", status, r)
			}
		})
	}
}

// TestRefreshAhead_FailureLeavesEntry: a refresh that fails leaves the entry
// to expire as it would have (served until then, one attempt only), and
// StaleIfError applies after it as before.
func TestRefreshAhead_FailureLeavesEntry(t *testing.T) {
	c, clock, f := refreshTestCache(t, Config{StaleIfError: time.Minute})
	key := keyFor(1)
	clock.Add(9200 * time.Millisecond)
	f.set(nil, upstreamErr())
	c.Refresh(key, hit(t, c, key), nil, f.fetch)
	c.refresh.wg.Wait()

	clock.Add(500 * time.Millisecond) // 9.7 s: still fresh
	if r := hit(t, c, key); r.Session == nil || r.Refresh {
		t.Fatalf("after a failed refresh: %+v (want the session, no second refresh)", r)
	}
	clock.Add(500 * time.Millisecond) // 10.2 s: expired
	if _, ok := c.Get(context.Background(), key); ok {
		t.Fatal("a failed refresh extended the entry")
	}
	r := c.Load(context.Background(), key, time.Time{}, f.fetch)
	if r.Session == nil || !r.Stale {
		t.Fatalf("StaleIfError after a failed refresh: %+v, want the stale session", r)
	}
	if got := f.calls.Load(); got != 3 {
		t.Fatalf("fetches = %d, want 3", got)
	}
}

// TestRefreshAhead_EvictionRacingRefresh: an eviction made while a refresh is
// at allauth is not undone by the refresh's answer.
func TestRefreshAhead_EvictionRacingRefresh(t *testing.T) {
	c, clock, f := refreshTestCache(t, Config{})
	key := keyFor(1)
	clock.Add(9200 * time.Millisecond)
	f.hold()
	c.Refresh(key, hit(t, c, key), nil, f.fetch)
	<-f.started
	if _, err := c.Evict(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	f.release()
	c.refresh.wg.Wait()
	if r, ok := c.Get(context.Background(), key); ok {
		t.Fatalf("the refresh undid the eviction: %+v", r)
	}
}

// TestRefreshAhead_NotReady: a refresh the caller's ready refuses (its
// breaker is open) does not run, and a later hit may ask again.
func TestRefreshAhead_NotReady(t *testing.T) {
	c, clock, f := refreshTestCache(t, Config{})
	key := keyFor(1)
	clock.Add(9200 * time.Millisecond)
	c.Refresh(key, hit(t, c, key), func() bool { return false }, f.fetch)
	c.refresh.wg.Wait()
	if got := f.calls.Load(); got != 1 {
		t.Fatalf("fetches = %d: a refused refresh ran", got)
	}
	r := hit(t, c, key)
	if !r.Refresh {
		t.Fatal("after a refused refresh, the next hit did not ask again")
	}
	c.Refresh(key, r, nil, f.fetch)
	c.refresh.wg.Wait()
	if got, s := f.calls.Load(), c.Stats(); got != 2 || s.RefreshSkips != 1 || s.Refreshes != 1 {
		t.Fatalf("fetches=%d skips=%d refreshes=%d, want 2, 1, 1", got, s.RefreshSkips, s.Refreshes)
	}
}

// TestRefreshAhead_Bounded: with every refresh slot taken, a hit that wants
// one more is served from the cache without it (counted), and may ask again
// later; misses still go through Load as before.
func TestRefreshAhead_Bounded(t *testing.T) {
	c, clock, f := refreshTestCache(t, Config{MaxRefreshes: 1})
	other := &gatedFetch{}
	other.set(newSession(t, 2), nil)
	c.Load(context.Background(), keyFor(2), time.Time{}, other.fetch)
	clock.Add(9200 * time.Millisecond)

	f.hold()
	c.Refresh(keyFor(1), hit(t, c, keyFor(1)), nil, f.fetch)
	<-f.started // the only slot is taken
	r := hit(t, c, keyFor(2))
	if !r.Refresh || r.Session.User.ID != "2" {
		t.Fatalf("hit on key 2: %+v", r)
	}
	c.Refresh(keyFor(2), r, nil, other.fetch)
	if got := c.Stats().RefreshSkips; got != 1 {
		t.Fatalf("RefreshSkips = %d, want 1", got)
	}
	// A miss is not held up by refreshes.
	miss := &gatedFetch{}
	miss.set(newSession(t, 3), nil)
	if r := c.Load(context.Background(), keyFor(3), time.Time{}, miss.fetch); r.Session == nil {
		t.Fatalf("miss during a refresh: %+v", r)
	}
	f.release()
	c.refresh.wg.Wait()
	if r := hit(t, c, keyFor(2)); !r.Refresh {
		t.Fatal("a skipped refresh was not asked for again")
	}
	if got := other.calls.Load(); got != 1 {
		t.Fatalf("key 2 fetches = %d: the skipped refresh ran", got)
	}
}

// TestRefreshAhead_CloseEndsRefreshes: Close cancels a refresh waiting at
// allauth and waits for it (goleak checks nothing is left).
func TestRefreshAhead_CloseEndsRefreshes(t *testing.T) {
	clock := newFakeClock()
	c := New(Config{TTL: 10 * time.Second, Now: clock.Now})
	f := &gatedFetch{}
	f.set(newSession(t, 1), nil)
	c.Load(context.Background(), keyFor(1), time.Time{}, f.fetch)
	clock.Add(9200 * time.Millisecond)
	f.hold()
	c.Refresh(keyFor(1), hit(t, c, keyFor(1)), nil, f.fetch)
	<-f.started
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRefreshAhead_SharedTier: with a shared Storage, a refresh on one
// instance is written there, and another instance due for a refresh takes it
// instead of asking allauth: one lookup per token per refresh window across
// instances. Run on the in-memory Storage and on a real redis-server.
func TestRefreshAhead_SharedTier(t *testing.T) {
	t.Run("map", func(t *testing.T) { testRefreshShared(t, newMapStorage()) })
	t.Run("Redis", func(t *testing.T) {
		addr := redistest.Addr(t)
		testRefreshShared(t, newRedisStorage(t, addr, uniquePrefix(t)))
	})
}

func testRefreshShared(t *testing.T, storage Storage) {
	t.Helper()
	clock := newFakeClock()
	prefix := uniquePrefix(t)
	cfg := Config{TTL: 10 * time.Second, Now: clock.Now, Storage: storage, Prefix: prefix, Recheck: time.Hour}
	a, b := newTestCache(t, cfg), newTestCache(t, cfg)
	f := &gatedFetch{}
	f.set(newSession(t, 1), nil)
	key := keyFor(1)
	ctx := context.Background()
	a.Load(ctx, key, time.Time{}, f.fetch)
	if r := b.Load(ctx, key, time.Time{}, f.fetch); r.Tier != TierShared {
		t.Fatalf("b's first Load: tier %v, want shared", r.Tier)
	}

	clock.Add(9200 * time.Millisecond)
	a.Refresh(key, hit(t, a, key), nil, f.fetch)
	a.refresh.wg.Wait()
	b.Refresh(key, hit(t, b, key), nil, f.fetch) // due too: finds a's answer
	b.refresh.wg.Wait()
	if got := f.calls.Load(); got != 2 {
		t.Fatalf("fetches = %d, want 2: b's refresh should take a's refreshed answer", got)
	}
	clock.Add(3 * time.Second) // past the first answer's life, on both
	for name, c := range map[string]*Cache{"a": a, "b": b} {
		if r := hit(t, c, key); r.Session == nil || r.Refresh {
			t.Fatalf("%s after the refresh: %+v", name, r)
		}
	}
}
