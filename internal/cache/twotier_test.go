package cache

// Tests of the two tiers (issue 13) that need no Redis: the shared tier is a
// map (mapStorage), the clocks are injected. redis_twotier_test.go runs the
// same properties end to end on a real Redis, plus those only pub/sub has.

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/testwait"
	"github.com/allauthgo/headless/introspect"
)

// countingStorage is a mapStorage that counts its Gets.
type countingStorage struct {
	*mapStorage
	gets atomic.Int64
}

func (s *countingStorage) Get(key string) ([]byte, error) {
	s.gets.Add(1)
	return s.mapStorage.Get(key)
}

// hammer runs many Get and Load calls for k on c from several goroutines at
// once, each Load answered by fetch, and fails on any answer but a session.
func hammer(t *testing.T, c *Cache, k Key, fetch Fetch) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if r := c.Load(ctx, k, time.Time{}, fetch); r.Session == nil {
					t.Errorf("Load = %+v", r)
					return
				}
				if r, ok := c.Get(ctx, k); ok && r.Session == nil {
					t.Errorf("Get = %+v", r)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestSharedReadOncePerRecheck proves an instance reads the shared tier at
// most once per token per Recheck window (without pub/sub, nothing vouches
// for an in-process copy past it): 800 Loads and Gets, many of them
// concurrent, cost one read; the next window, one more.
func TestSharedReadOncePerRecheck(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	storage := &countingStorage{mapStorage: newMapStorage()}
	const recheck = 2 * time.Second
	cfg := Config{Storage: storage, Prefix: "test:once:", TTL: time.Hour, Recheck: recheck, Now: clk.Now}
	a, b := newTestCache(t, cfg), newTestCache(t, cfg)
	k := keyFor(1)
	f := &fetchCounter{sess: newSession(t, 1)}
	if r := a.Load(ctx, k, time.Time{}, f.fetch); r.Session == nil {
		t.Fatalf("Load = %+v", r)
	}

	reads, gets := b.Stats().SharedReads, storage.gets.Load()
	for window := range 3 {
		hammer(t, b, k, f.fetch)
		reads++
		gets++
		if st := b.Stats(); st.SharedReads != reads || storage.gets.Load() != gets {
			t.Fatalf("window %d: SharedReads = %d, storage Gets = %d; want %d, %d",
				window, st.SharedReads, storage.gets.Load(), reads, gets)
		}
		// Just short of the window's end the copy still answers.
		clk.Add(recheck - time.Nanosecond)
		if _, ok := b.Get(ctx, k); !ok {
			t.Fatalf("window %d: miss within Recheck", window)
		}
		clk.Add(time.Nanosecond)
		if _, ok := b.Get(ctx, k); ok {
			t.Fatalf("window %d: hit at Recheck without pub/sub", window)
		}
	}
	if n := f.calls.Load(); n != 1 {
		t.Errorf("allauth asked %d times, want 1 (by a)", n)
	}
	if st := b.Stats(); st.Fetches != 0 || st.StoreErrors != 0 {
		t.Errorf("b: %+v", st)
	}
}

// mustNotFetch is a Fetch that fails the test if it is called at all: for
// Loads that the shared tier must answer.
func mustNotFetch(t *testing.T) Fetch {
	t.Helper()
	return func(context.Context) (*introspect.Session, error) {
		t.Error("allauth asked, want an answer from the shared tier")
		return nil, errPeek
	}
}

func isAuthStatus(err error, status int) bool {
	var ae *introspect.AuthError
	return errors.As(err, &ae) && ae.Status == status
}

// plant writes e, without a MAC, under k's storage key in c's shared tier,
// as whoever can write to the shared store could.
func plant(t *testing.T, storage Storage, c *Cache, k Key, e *entry) {
	t.Helper()
	val, err := encodeEntry(e, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := storage.Set(c.shared.storageKey(k), val, time.Minute); err != nil {
		t.Fatal(err)
	}
}

// testReaderLimits proves a reader serves a shared value no longer than its
// own TTL after allauth answered, whatever the writer claims, and refuses a
// value written "in the future". prefix is used for every key written.
func testReaderLimits(t *testing.T, storage Storage, prefix string) { //nolint:thelper // a test body (map and Redis runs): failures must name its lines
	ctx := context.Background()
	clk := newFakeClock()
	reader := newTestCache(t, Config{Storage: storage, Prefix: prefix, TTL: 2 * time.Second, Now: clk.Now, StoreTimeout: time.Second})
	sess := newSession(t, 1)
	at := func(d time.Duration) int64 { return clk.Now().Add(d).UnixNano() }
	gone := func() *fetchCounter { return &fetchCounter{err: &introspect.AuthError{Status: http.StatusGone}} }

	// Obtained 3 s ago, "fresh" for a day by the writer's word: older than
	// the reader's TTL, so allauth is asked (and its 410 returned).
	plant(t, storage, reader, keyFor(1), &entry{Session: sess, Status: http.StatusOK, ObtainedAt: at(-3 * time.Second), FreshUntil: at(24 * time.Hour)})
	f := gone()
	if r := reader.Load(ctx, keyFor(1), time.Time{}, f.fetch); r.Session != nil || !isAuthStatus(r.Err, http.StatusGone) || f.calls.Load() != 1 {
		t.Errorf("value older than the reader's TTL: %+v after %d fetches", r, f.calls.Load())
	}
	// The same value obtained 1 s ago is within it: a hit.
	plant(t, storage, reader, keyFor(2), &entry{Session: sess, Status: http.StatusOK, ObtainedAt: at(-time.Second), FreshUntil: at(24 * time.Hour)})
	if r, ok := peek(reader, keyFor(2)); !ok || r.Session == nil || r.Session.User.ID != "1" {
		t.Errorf("value within the reader's TTL: ok=%v %+v", ok, r)
	}
	// ... and served no longer than that: 1 s later (its TTL is over) the
	// reader asks again even though the writer said a day.
	clk.Add(time.Second)
	if _, ok := reader.Get(ctx, keyFor(2)); ok {
		t.Error("in-process copy served past ObtainedAt + the reader's TTL")
	}
	if _, ok := peek(reader, keyFor(2)); ok {
		t.Error("shared value served past ObtainedAt + the reader's TTL")
	}

	// Obtained 2 s in the future: a forged (or badly skewed) value, refused
	// and counted.
	errs := reader.Stats().StoreErrors
	plant(t, storage, reader, keyFor(3), &entry{Session: sess, Status: http.StatusOK, ObtainedAt: at(2 * time.Second), FreshUntil: at(24 * time.Hour)})
	if r, ok := peek(reader, keyFor(3)); ok || r.Session != nil {
		t.Errorf("value from the future served: %+v", r)
	}
	if n := reader.Stats().StoreErrors; n != errs+1 {
		t.Errorf("StoreErrors = %d, want %d", n, errs+1)
	}
	// Half a second ahead is a clock difference between two instances.
	plant(t, storage, reader, keyFor(4), &entry{Session: sess, Status: http.StatusOK, ObtainedAt: at(500 * time.Millisecond), FreshUntil: at(24 * time.Hour)})
	if _, ok := peek(reader, keyFor(4)); !ok {
		t.Error("value 0.5 s ahead refused, want it served (clock skew)")
	}

	// A writer with TTL 1 h and a reader with TTL 2 s that first sees the
	// token 3 s after it was written: the reader asks allauth, whose 410 it
	// returns.
	wclk := newFakeClock()
	wclk.Set(clk.Now())
	writer := newTestCache(t, Config{Storage: storage, Prefix: prefix, TTL: time.Hour, Now: wclk.Now, StoreTimeout: time.Second})
	if r := writer.Load(ctx, keyFor(5), time.Time{}, (&fetchCounter{sess: sess}).fetch); r.Session == nil {
		t.Fatalf("writer Load = %+v", r)
	}
	clk.Add(3 * time.Second)
	f = gone()
	if r := reader.Load(ctx, keyFor(5), time.Time{}, f.fetch); r.Session != nil || !isAuthStatus(r.Err, http.StatusGone) || f.calls.Load() != 1 {
		t.Errorf("a long-TTL writer's value, 3 s old: %+v after %d fetches, want allauth's 410", r, f.calls.Load())
	}
	if n := reader.Stats().StoreErrors; n != errs+1 {
		t.Errorf("StoreErrors = %d, want %d (only the value from the future)", n, errs+1)
	}
}

// TestSharedValueReaderLimits runs testReaderLimits on a map.
func TestSharedValueReaderLimits(t *testing.T) {
	testReaderLimits(t, newMapStorage(), "test:limits:")
}

// testSecretValues proves that with a Secret, a value not written by an
// instance holding the secret under exactly this storage key is a counted
// miss: planted without a MAC, tampered with, copied from another token's
// key, written under another secret, copied from another prefix. The
// legitimate path is a hit. prefix is used for every key written.
func testSecretValues(t *testing.T, storage Storage, prefix string) { //nolint:thelper // a test body (map and Redis runs): failures must name its lines
	ctx := context.Background()
	secret := []byte("0123456789abcdef0123456789abcdef")
	p1, p2 := prefix+"s1:", prefix+"s2:"
	cfg := Config{Storage: storage, Prefix: p1, Secret: secret, TTL: time.Minute, StoreTimeout: time.Second}
	writer, reader := newTestCache(t, cfg), newTestCache(t, cfg)
	otherSecret := cfg
	otherSecret.Secret = []byte("another secret of 32 bytes......")
	otherPrefix := cfg
	otherPrefix.Prefix = p2
	wrongSecret, elsewhere := newTestCache(t, otherSecret), newTestCache(t, otherPrefix)

	load := func(c *Cache, k Key, id int) {
		t.Helper()
		if r := c.Load(ctx, k, time.Time{}, (&fetchCounter{sess: newSession(t, id)}).fetch); r.Session == nil {
			t.Fatalf("Load = %+v", r)
		}
	}
	get := func(sk string) []byte {
		t.Helper()
		raw, err := storage.Get(sk)
		if err != nil || len(raw) == 0 {
			t.Fatalf("raw value under %q: %v", sk, err)
		}
		return raw
	}
	set := func(sk string, raw []byte) {
		t.Helper()
		if err := storage.Set(sk, raw, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	sk := func(p string, k Key) string { return p + k.String() }

	// The legitimate path: written with the secret, read with it.
	load(writer, keyFor(1), 1)
	if r, ok := peek(reader, keyFor(1)); !ok || r.Session == nil || r.Session.User.ID != "1" {
		t.Fatalf("legitimate value: ok=%v %+v", ok, r)
	}
	if r := reader.Load(ctx, keyFor(1), time.Time{}, mustNotFetch(t)); r.Session == nil {
		t.Fatalf("legitimate value: Load = %+v", r)
	}

	now := time.Now().UnixNano()
	for _, tc := range []struct {
		name  string
		plant func(k Key)
	}{
		{"planted without a MAC", func(k Key) {
			val, err := encodeEntry(&entry{Session: newSession(t, 666), Status: http.StatusOK, ObtainedAt: now, FreshUntil: now + int64(time.Hour)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			set(sk(p1, k), val)
		}},
		{"tampered (user id changed)", func(k Key) {
			load(writer, k, 2)
			raw := get(sk(p1, k))
			i := bytes.Index(raw, []byte(`"id":2`))
			if i < 0 {
				t.Fatalf("no user id in %q", raw)
			}
			raw[i+len(`"id":`)] = '9' // still valid JSON: only the MAC can tell
			set(sk(p1, k), raw)
		}},
		{"copied from another token's key", func(k Key) {
			set(sk(p1, k), get(sk(p1, keyFor(1))))
		}},
		{"written under another secret", func(k Key) {
			load(wrongSecret, k, 3)
		}},
		{"copied from another prefix", func(k Key) {
			load(elsewhere, k, 4)
			set(sk(p1, k), get(sk(p2, k)))
		}},
	} {
		k := NewKey(testScope, "forged:"+tc.name)
		tc.plant(k)
		errs, fetches := reader.Stats().StoreErrors, reader.Stats().Fetches
		if r, ok := peek(reader, k); ok || r.Session != nil {
			t.Errorf("%s: served %+v", tc.name, r)
		}
		if st := reader.Stats(); st.StoreErrors != errs+1 || st.Fetches != fetches+1 {
			t.Errorf("%s: StoreErrors %d → %d, Fetches %d → %d; want each +1 (a counted miss, allauth asked)",
				tc.name, errs, st.StoreErrors, fetches, st.Fetches)
		}
	}
	// The legitimate value still answers, from the shared tier too.
	if r, ok := peek(newTestCache(t, cfg), keyFor(1)); !ok || r.Session == nil {
		t.Errorf("legitimate value after the forgeries: ok=%v %+v", ok, r)
	}
}

// TestSharedValueSecret runs testSecretValues on a map.
func TestSharedValueSecret(t *testing.T) {
	testSecretValues(t, newMapStorage(), "test:secret:")
}

// testUserIndexRealms proves two caches sharing a Storage and Prefix for two
// allauth servers (Realm r1, r2) keep apart user indexes: user "1" of each
// is its own user.
func testUserIndexRealms(t *testing.T, storage Storage, prefix string) { //nolint:thelper // a test body (map and Redis runs): failures must name its lines
	ctx := context.Background()
	cfg := Config{Storage: storage, Prefix: prefix, TTL: time.Minute, StoreTimeout: time.Second, UserIndex: true, Realm: "https://r1.example/_allauth"}
	a := newTestCache(t, cfg)
	cfg.Realm = "https://r2.example/_allauth"
	b := newTestCache(t, cfg)
	if a.shared.userStorageKey(a.indexID("1")) == b.shared.userStorageKey(b.indexID("1")) {
		t.Fatal("both realms index user 1 under one storage key")
	}
	loadFor(t, a, 1, 1)
	loadFor(t, a, 2, 1)
	loadFor(t, b, 3, 1)

	if n, err := a.EvictUser(ctx, "1"); n != 2 || err != nil {
		t.Fatalf("a.DeleteUser = %d, %v; want 2", n, err)
	}
	for _, c := range []*Cache{a, b} {
		for _, i := range []int{1, 2} {
			waitEvictedOrRecheck(t, c, keyFor(i))
			if _, ok := peek(c, keyFor(i)); ok {
				t.Errorf("key %d still cached after r1's DeleteUser", i)
			}
		}
		if _, ok := peek(c, keyFor(3)); !ok {
			t.Error("r1's DeleteUser dropped r2's user 1")
		}
	}
	if n, err := b.EvictUser(ctx, "1"); n != 1 || err != nil {
		t.Fatalf("b.DeleteUser = %d, %v; want 1", n, err)
	}
	if _, ok := peek(b, keyFor(3)); ok {
		t.Error("key 3 still cached after r2's DeleteUser")
	}
	if n, err := a.EvictUser(ctx, "1"); n != 0 || err != nil {
		t.Errorf("a.DeleteUser again = %d, %v; want 0", n, err)
	}
}

// waitEvictedOrRecheck waits until c no longer answers k from its
// in-process tier: by an eviction message (with Redis) or, without pub/sub,
// at its Recheck. A cache that never held k returns at once.
func waitEvictedOrRecheck(tb testing.TB, c *Cache, k Key) {
	tb.Helper()
	testwait.Until(tb, time.Duration(c.recheck)+5*time.Second, "an evicted key to leave the in-process tier", func() bool {
		_, ok := c.Get(context.Background(), k)
		return !ok
	})
}

// TestUserIndexRealms runs testUserIndexRealms on a map.
func TestUserIndexRealms(t *testing.T) {
	testUserIndexRealms(t, newMapStorage(), "test:realms:")
}

// restingStorage is a map whose Gets and Sets fail while failing is set;
// Deletes always work (as on a Redis that refuses writes, or a store the
// Cache rests after failures).
type restingStorage struct {
	*mapStorage
	failing atomic.Bool
}

func (s *restingStorage) Get(key string) ([]byte, error) {
	if s.failing.Load() {
		s.calls.Add(1)
		return nil, errBroken
	}
	return s.mapStorage.Get(key)
}

func (s *restingStorage) Set(key string, val []byte, exp time.Duration) error {
	if s.failing.Load() {
		s.calls.Add(1)
		return errBroken
	}
	return s.mapStorage.Set(key, val, exp)
}

// TestStaleAfterGoneWhileStoreRests proves allauth's 410 purges a kept
// session from the shared tier even while the Cache rests the store after
// failures (the negative answer cannot be written): the next allauth outage
// is an error on every instance, not the logged-out session served stale.
func TestStaleAfterGoneWhileStoreRests(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	storage := &restingStorage{mapStorage: newMapStorage()}
	cfg := Config{Storage: storage, Prefix: "test:rest:", TTL: time.Second, NegativeTTL: time.Second, StaleIfError: time.Minute, Now: clk.Now, StoreTimeout: time.Second}
	a, b := newTestCache(t, cfg), newTestCache(t, cfg)
	k := keyFor(1)
	sk := a.shared.storageKey(k)
	if r := a.Load(ctx, k, time.Time{}, (&fetchCounter{sess: newSession(t, 1)}).fetch); r.Session == nil {
		t.Fatalf("Load = %+v", r)
	}
	if _, ok := peek(b, k); !ok {
		t.Fatal("b: no shared hit")
	}
	clk.Add(2 * time.Second) // past TTL, well within StaleIfError
	upstream := &fetchCounter{err: upstreamErr()}
	if r := b.Load(ctx, k, time.Time{}, upstream.fetch); r.Session == nil || !r.Stale {
		t.Fatalf("before the 410, allauth failing: %+v, want the session, stale", r)
	}

	// a's store fails three times in a row, and rests.
	storage.failing.Store(true)
	for i := range 3 {
		peek(a, keyFor(100+i))
	}
	if _, err := a.shared.Get(ctx, keyFor(200)); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("a's store is not resting: %v", err)
	}
	gone := &fetchCounter{err: &introspect.AuthError{Status: http.StatusGone}}
	if r := a.Load(ctx, k, time.Time{}, gone.fetch); r.Session != nil || !isAuthStatus(r.Err, http.StatusGone) || gone.calls.Load() != 1 {
		t.Fatalf("allauth's 410: %+v after %d fetches", r, gone.calls.Load())
	}
	if raw := storage.raw(sk); raw != nil {
		t.Error("the refused session is still in the shared store")
	}

	// The store works again; allauth fails. No instance serves the session.
	storage.failing.Store(false)
	if r := b.Load(ctx, k, time.Time{}, upstream.fetch); r.Session != nil || r.Stale || r.Err == nil {
		t.Errorf("b, allauth failing after its 410: %+v, want an error", r)
	}
	clk.Add(2 * time.Second) // a's cached 410 is over
	// The rest is on the wall clock.
	testwait.Until(t, 10*time.Second, "a's store to end its rest", func() bool { return time.Now().UnixNano() >= a.shared.restUntil.Load() })
	var ue *introspect.UpstreamError
	if r := a.Load(ctx, k, time.Time{}, upstream.fetch); r.Session != nil || r.Stale || !errors.As(r.Err, &ue) {
		t.Errorf("a, allauth failing after its 410: %+v, want the upstream error", r)
	}
	if n := a.Stats().StaleServes; n != 0 {
		t.Errorf("a served %d stale sessions", n)
	}
}
