package cache

// Tests of issue 19: faults in the shared tier never stretch a promise. An
// eviction, a refusal by allauth and a write racing an eviction each take
// effect in the shared tier, whatever fails in between.

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/redistest"
	"github.com/allauthgo/headless/introspect"
)

// loginFetch answers with user 1's session until loggedOut is set, then
// with allauth's 401, counting its calls.
type loginFetch struct {
	sess      *introspect.Session
	loggedOut atomic.Bool
	calls     atomic.Int64
}

func (f *loginFetch) fetch(context.Context) (*introspect.Session, error) {
	f.calls.Add(1)
	if f.loggedOut.Load() {
		return nil, &introspect.AuthError{Status: http.StatusUnauthorized}
	}
	return f.sess, nil
}

// An eviction made on instance A while Redis is stopped (SIGSTOP: it keeps
// its connections, answers nothing) fails there, and is retried: once Redis
// is back, the shared value is deleted and B, which held an in-process copy
// throughout, drops it and asks allauth, within Recheck of Redis's return.
// Without the retry both instances would read the pre-logout value back and
// serve it until TTL. Real time: the outage is a real process stopped.
func TestRedisEvictionWhileRedisStopped(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	prefix := uniquePrefix(t)
	const recheck = time.Second
	cfg := Config{Prefix: prefix, TTL: time.Minute, Recheck: recheck, StoreTimeout: 100 * time.Millisecond}
	cfgA, cfgB := cfg, cfg
	cfgA.Storage = newRedisStorage(t, srv.Addr(), prefix)
	cfgB.Storage = newRedisStorage(t, srv.Addr(), prefix)
	a, b := newTestCache(t, cfgA), newTestCache(t, cfgB)
	waitSubscribed(t, a, b)
	settle()

	k := keyFor(1)
	f := &loginFetch{sess: newSession(t, 1)}
	if r := a.Load(ctx, k, time.Time{}, f.fetch); r.Session == nil {
		t.Fatalf("a: %+v", r)
	}
	if r, ok := peek(b, k); !ok || r.Session == nil || r.Tier != TierShared {
		t.Fatalf("b: %+v, %v; want a shared hit", r, ok)
	}

	srv.Pause(t)
	f.loggedOut.Store(true) // the logout at allauth that the eviction reports
	// Each call waits its timeout here (go-redis's read timeout, when it
	// does not honour the context's deadline): the test does not time it.
	if _, err := a.Evict(ctx, k); err == nil {
		t.Fatal("Evict with Redis stopped reported no error")
	}
	if n := a.Stats().PendingEvictions; n != 1 {
		t.Errorf("%d evictions wait, want 1", n)
	}
	time.Sleep(300 * time.Millisecond) // real time: a few retries fail against a real, stopped Redis
	srv.Resume(t)
	resumed := time.Now()
	// The promise: within Recheck (+ a margin) of Redis coming back.
	waitFor(t, recheck+500*time.Millisecond, "b to drop its copy after Redis resumed", func() bool { return localEntry(b, k) == nil })
	t.Logf("b heard the retried eviction %v after Redis resumed", time.Since(resumed).Round(time.Millisecond)) // a figure for docs/revocation.md
	time.Sleep(time.Until(resumed.Add(recheck + 500*time.Millisecond)))                                        // real time: past Recheck of a real Redis's answers
	calls := f.calls.Load()
	for _, c := range []*Cache{b, a} {
		if r := c.Load(ctx, k, time.Time{}, f.fetch); r.Session != nil || !isAuthStatus(r.Err, http.StatusUnauthorized) {
			t.Errorf("Recheck after Redis came back: %+v, want allauth's 401", r)
		}
	}
	// b asks allauth; a reads b's 401 from Redis.
	if f.calls.Load() != calls+1 {
		t.Errorf("allauth asked %d times, want once", f.calls.Load()-calls)
	}
	if n := a.Stats().PendingEvictions; n != 0 {
		t.Errorf("%d evictions still wait", n)
	}
}

// An eviction while the store rests after failures (it answers
// ErrStoreUnavailable without trying) is retried, the rest notwithstanding:
// the shared value goes, and B's in-process copy goes at its next recheck.
func TestEvictWhileStoreRests(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	storage := &restingStorage{mapStorage: newMapStorage()}
	const recheck = 40 * time.Millisecond
	cfg := Config{Storage: storage, Prefix: "test:evict-rest:", TTL: time.Hour, Recheck: recheck, Now: clk.Now, StoreTimeout: time.Second}
	a, b := newTestCache(t, cfg), newTestCache(t, cfg)
	k := keyFor(1)
	sk := a.shared.storageKey(k)
	if r := a.Load(ctx, k, time.Time{}, (&fetchCounter{sess: newSession(t, 1)}).fetch); r.Session == nil {
		t.Fatalf("Load = %+v", r)
	}
	if _, ok := peek(b, k); !ok {
		t.Fatal("b: no shared hit")
	}

	storage.failing.Store(true)
	for i := range 3 {
		peek(a, keyFor(100+i))
	}
	storage.failing.Store(false) // the store works; a still rests for a second
	if _, err := a.shared.Get(ctx, keyFor(200)); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("a's store is not resting: %v", err)
	}
	// This Evict's delete fails at once while the store rests (one that
	// deletes through the rest is as good): either way the value must go.
	_, _ = a.Evict(ctx, k)
	waitFor(t, 5*time.Second, "the eviction never reached the shared store", func() bool { return storage.raw(sk) == nil })
	clk.Add(recheck)
	if r, ok := peek(b, k); ok {
		t.Errorf("b after its recheck: %+v, want a miss", r)
	}
	if n := a.Stats().PendingEvictions; n != 0 {
		t.Errorf("%d evictions still wait", n)
	}
}

// An eviction heard from another instance deletes the key from Redis even
// while this instance's store rests after failures.
func TestRedisHeardEvictionWhileStoreRests(t *testing.T) {
	addr := redistest.Addr(t)
	ctx := context.Background()
	prefix := uniquePrefix(t)
	storage := newRedisStorage(t, addr, prefix)
	b := newTestCache(t, Config{Storage: storage, Prefix: prefix, TTL: time.Minute, Recheck: time.Minute, StoreTimeout: time.Second})
	waitSubscribed(t, b)
	k := keyFor(1)
	if r := b.Load(ctx, k, time.Time{}, (&fetchCounter{sess: newSession(t, 1)}).fetch); r.Session == nil {
		t.Fatalf("Load: %+v", r)
	}
	b.shared.restUntil.Store(time.Now().Add(time.Hour).UnixNano())

	msg := append([]byte("elsewhere"[:senderIDLen]), k[:]...)
	if err := storage.Conn().Publish(ctx, prefix+"evict", msg).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the message never arrived", func() bool { return b.Stats().EvictionsHeard > 0 })
	waitFor(t, 2*time.Second, "the value is still in Redis after the eviction message", func() bool {
		n, err := storage.Conn().Exists(ctx, prefix+k.String()).Result()
		return err == nil && n == 0
	})
}

// The retry queue keeps each key once, bounds evictions and speculative
// purges apart (purges never push an eviction out), and counts what it
// drops.
func TestPendingQueueBounds(t *testing.T) {
	storage := &errStorage{}
	c := newTestCache(t, Config{Storage: storage, Prefix: "test:pending:", Recheck: time.Hour})
	c.pending.mu.Lock()
	c.pending.maxEvict, c.pending.maxPurge = 3, 2
	c.pending.mu.Unlock()

	for i := range 5 {
		c.retryPurge(keyFor(i))
	}
	c.retryEviction([]Key{keyFor(10), keyFor(11), keyFor(10)})
	c.retryEviction([]Key{keyFor(11), keyFor(12), keyFor(13)})
	st := c.Stats()
	if st.PendingEvictions != 5 || st.PendingDropped != 4 {
		t.Errorf("PendingEvictions %d, PendingDropped %d; want 5 (3 evictions, 2 purges) and 4", st.PendingEvictions, st.PendingDropped)
	}
	if storage.calls.Load() != 0 {
		t.Errorf("queueing cost %d storage calls", storage.calls.Load())
	}
	// An eviction of a key waiting as a purge takes its place.
	c.pending.mu.Lock()
	c.pending.maxEvict = 4
	c.pending.mu.Unlock()
	c.retryEviction([]Key{keyFor(0)})
	if _, purge := c.pending.purge[keyFor(0)]; purge || c.Stats().PendingEvictions != 5 {
		t.Errorf("key 0 is queued twice (%d waiting)", c.Stats().PendingEvictions)
	}
}

// sameStripe returns a key other than k that counts its evictions with k's.
func sameStripe(k Key) Key {
	k[1] ^= 0xff
	return k
}

// allauth's 410 reaches both tiers even when an eviction of another key of
// the same stripe lands during the lookup: the refusal is stored, so a
// following allauth outage serves an error, not the session stale.
func TestGoneDuringStripeEviction(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	storage := newMapStorage()
	c := newTestCache(t, Config{Storage: storage, Prefix: "test:stripe:", TTL: time.Second, StaleIfError: time.Minute, Now: clk.Now, StoreTimeout: time.Second})
	k := keyFor(1)
	if r := c.Load(ctx, k, time.Time{}, (&fetchCounter{sess: newSession(t, 1)}).fetch); r.Session == nil {
		t.Fatalf("Load = %+v", r)
	}
	clk.Add(2 * time.Second) // past TTL, within StaleIfError
	gone := func(ctx context.Context) (*introspect.Session, error) {
		if _, err := c.Evict(ctx, sameStripe(k)); err != nil {
			t.Error(err)
		}
		return nil, &introspect.AuthError{Status: http.StatusGone}
	}
	if r := c.Load(ctx, k, time.Time{}, gone); !isAuthStatus(r.Err, http.StatusGone) {
		t.Fatalf("allauth's 410: %+v", r)
	}
	if e, err := c.shared.Get(ctx, k); err != nil || (e != nil && !e.negative()) {
		t.Errorf("the shared tier still holds the session (%v)", err)
	}
	upstream := &fetchCounter{err: upstreamErr()}
	if r := c.Load(ctx, k, time.Time{}, upstream.fetch); r.Session != nil || r.Stale {
		t.Errorf("allauth failing after its 410: %+v, want no session", r)
	}
	clk.Add(10 * time.Second) // the cached 410 is over too
	if r := c.Load(ctx, k, time.Time{}, upstream.fetch); r.Session != nil || r.Stale {
		t.Errorf("allauth failing after its cached 410: %+v, want no session", r)
	}
}

// An instance that never held a session, whose shared read failed, still
// purges it after allauth's 410, through the retry queue (the request does
// not wait): another instance that held it cannot serve it stale afterwards.
func TestGoneWhenSharedUnreadable(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	storage := &restingStorage{mapStorage: newMapStorage()}
	cfg := Config{Storage: storage, Prefix: "test:unread:", TTL: time.Second, StaleIfError: time.Minute, Recheck: 40 * time.Millisecond, Now: clk.Now, StoreTimeout: time.Second}
	a, b := newTestCache(t, cfg), newTestCache(t, cfg)
	k := keyFor(1)
	sk := a.shared.storageKey(k)
	if r := a.Load(ctx, k, time.Time{}, (&fetchCounter{sess: newSession(t, 1)}).fetch); r.Session == nil {
		t.Fatalf("Load = %+v", r)
	}
	clk.Add(2 * time.Second)

	storage.failing.Store(true) // reads and writes fail, deletes work
	calls := storage.calls.Load()
	gone := &fetchCounter{err: &introspect.AuthError{Status: http.StatusGone}}
	if r := b.Load(ctx, k, time.Time{}, gone.fetch); !isAuthStatus(r.Err, http.StatusGone) {
		t.Fatalf("b, allauth's 410: %+v", r)
	}
	if n := storage.calls.Load() - calls; n != 2 {
		t.Errorf("b's 410 cost %d storage calls, want 2 (the read and the write; the delete is queued)", n)
	}
	waitFor(t, 2*time.Second, "the session was never purged from the shared store", func() bool { return storage.raw(sk) == nil })
	storage.failing.Store(false)

	upstream := &fetchCounter{err: upstreamErr()}
	if r := a.Load(ctx, k, time.Time{}, upstream.fetch); r.Session != nil || r.Stale {
		t.Errorf("a, allauth failing after b's 410: %+v, want no session", r)
	}
}

// blockingSetStorage is a map whose next Set, once armed, waits until the
// test releases it: a write on its way while an eviction happens.
type blockingSetStorage struct {
	*mapStorage
	armed   atomic.Bool
	inSet   chan struct{}
	release chan struct{}
}

func (s *blockingSetStorage) Set(key string, val []byte, exp time.Duration) error {
	if s.armed.CompareAndSwap(true, false) {
		close(s.inSet)
		<-s.release
	}
	return s.mapStorage.Set(key, val, exp)
}

// A lookup's write that lands after an eviction's delete (the eviction came
// between the lookup's check and its write) is deleted again: the evicted
// answer is in neither tier afterwards, and the caller still gets it.
func TestWriteLandingAfterEviction(t *testing.T) {
	ctx := context.Background()
	storage := &blockingSetStorage{mapStorage: newMapStorage(), inSet: make(chan struct{}), release: make(chan struct{})}
	c := newTestCache(t, Config{Storage: storage, Prefix: "test:late-write:", TTL: time.Minute, StoreTimeout: 30 * time.Second})
	k := keyFor(1)
	sk := c.shared.storageKey(k)
	storage.armed.Store(true)
	done := make(chan Result, 1)
	go func() {
		done <- c.Load(ctx, k, time.Time{}, (&fetchCounter{sess: newSession(t, 1)}).fetch)
	}()
	<-storage.inSet
	if _, err := c.Evict(ctx, k); err != nil {
		t.Fatal(err)
	}
	close(storage.release)
	if r := <-done; r.Session == nil {
		t.Fatalf("the caller lost its answer: %+v", r)
	}
	if storage.raw(sk) != nil {
		t.Error("the evicted answer is back in the shared tier")
	}
	if _, ok := c.Get(ctx, k); ok {
		t.Error("the evicted answer is back in process")
	}
}

// blockingDeleteStorage is a map whose next Delete, once armed, waits until
// the test releases it.
type blockingDeleteStorage struct {
	*mapStorage
	armed   atomic.Bool
	inDel   chan struct{}
	release chan struct{}
}

func (s *blockingDeleteStorage) Delete(key string) error {
	if s.armed.CompareAndSwap(true, false) {
		close(s.inDel)
		<-s.release
	}
	return s.mapStorage.Delete(key)
}

// A lookup that reads the shared value after a heard eviction dropped the
// in-process copy, but before the eviction's delete reached Redis, does not
// keep what it read: the instance would otherwise serve it (vouched for by
// the subscription) until TTL.
func TestHeardEvictionRacingASharedRead(t *testing.T) {
	ctx := context.Background()
	storage := &blockingDeleteStorage{mapStorage: newMapStorage(), inDel: make(chan struct{}), release: make(chan struct{})}
	c := newTestCache(t, Config{Storage: storage, Prefix: "test:heard-race:", TTL: time.Minute, StoreTimeout: 30 * time.Second})
	k := keyFor(1)
	if r := c.Load(ctx, k, time.Time{}, (&fetchCounter{sess: newSession(t, 1)}).fetch); r.Session == nil {
		t.Fatalf("Load = %+v", r)
	}
	storage.armed.Store(true)
	heard := make(chan struct{})
	go func() {
		defer close(heard)
		c.heardEviction([]Key{k})      // what the bus does with a message,
		c.redeleteHeard(ctx, []Key{k}) // then its second delete
	}()
	<-storage.inDel
	if r := c.Load(ctx, k, time.Time{}, mustNotFetch(t)); r.Tier != TierShared {
		t.Fatalf("the read between the drop and the delete: %+v, want the shared value", r)
	}
	close(storage.release)
	<-heard
	if localEntry(c, k) != nil {
		t.Error("the value read during the eviction is kept in process")
	}
}

// The same race on the instance that evicts: a lookup that reads the shared
// value between Evict's in-process drop and its delete does not keep it.
// This instance ignores its own eviction message, so nothing else would.
func TestEvictRacingASharedRead(t *testing.T) {
	ctx := context.Background()
	storage := &blockingDeleteStorage{mapStorage: newMapStorage(), inDel: make(chan struct{}), release: make(chan struct{})}
	c := newTestCache(t, Config{Storage: storage, Prefix: "test:evict-race:", TTL: time.Minute, StoreTimeout: 30 * time.Second})
	k := keyFor(1)
	if r := c.Load(ctx, k, time.Time{}, (&fetchCounter{sess: newSession(t, 1)}).fetch); r.Session == nil {
		t.Fatalf("Load = %+v", r)
	}
	storage.armed.Store(true)
	evicted := make(chan error, 1)
	go func() {
		_, err := c.Evict(ctx, k)
		evicted <- err
	}()
	<-storage.inDel
	if r := c.Load(ctx, k, time.Time{}, mustNotFetch(t)); r.Tier != TierShared {
		t.Fatalf("the read between the drop and the delete: %+v, want the shared value", r)
	}
	close(storage.release)
	if err := <-evicted; err != nil {
		t.Fatal(err)
	}
	if localEntry(c, k) != nil {
		t.Error("the value read during the eviction is kept in process")
	}
}
