package cache

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/storage/redis/v3"

	"github.com/allauthgo/headless/internal/redistest"
	"github.com/allauthgo/headless/internal/testwait"
	"github.com/allauthgo/headless/introspect"
)

var prefixSeq atomic.Int64

// uniquePrefix keeps tests (and concurrent runs of other packages) apart in
// a shared Redis.
func uniquePrefix(tb testing.TB) string {
	tb.Helper()
	return fmt.Sprintf("allauthgo-test:%s:%d:%d:", tb.Name(), os.Getpid(), prefixSeq.Add(1))
}

// newRedisStorage connects to addr and closes the client (stopping go-redis's
// pool goroutines) and removes the test's keys when the test ends.
func newRedisStorage(tb testing.TB, addr, prefix string) *redis.Storage {
	tb.Helper()
	var s *redis.Storage
	func() {
		defer func() {
			if p := recover(); p != nil { // redis.New panics when it cannot connect
				tb.Fatalf("redis at %s: %v", addr, p)
			}
		}()
		s = redis.New(redis.Config{Addrs: []string{addr}, PoolSize: 8})
	}()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if keys, err := s.Conn().Keys(ctx, prefix+"*").Result(); err == nil && len(keys) > 0 {
			s.Conn().Del(ctx, keys...)
		}
		if err := s.Close(); err != nil {
			tb.Errorf("close redis storage: %v", err)
		}
	})
	return s
}

// TestRedisSharedAcrossInstances proves two instances share a login through
// Redis and see each other's evictions; keys are prefix + 64 hex digits and
// neither keys nor values hold the token.
func TestRedisSharedAcrossInstances(t *testing.T) {
	addr := redistest.Addr(t)
	ctx := context.Background()
	prefix := uniquePrefix(t)
	storage := newRedisStorage(t, addr, prefix)
	// Recheck is long: only the eviction message can reach b in time.
	cfg := Config{Storage: storage, Prefix: prefix, TTL: time.Minute, StaleIfError: 30 * time.Second, StoreTimeout: time.Second, Recheck: time.Minute}
	a, b := newTestCache(t, cfg), newTestCache(t, cfg)
	waitSubscribed(t, a, b)

	tok := "SeCrEtToKeN-0123456789abcdefghij"
	k := NewKey(testScope, tok)
	f := &fetchCounter{sess: newSession(t, 1)}
	if r := a.Load(ctx, k, time.Time{}, f.fetch); r.Session != f.sess {
		t.Fatalf("Load: %+v", r)
	}
	r, ok := peek(b, k)
	if !ok || r.Session == nil || r.Session.User.ID != "1" || r.Session.User.Email != "alice@example.com" {
		t.Fatalf("second instance Get: ok=%v %+v", ok, r)
	}
	if r := b.Load(ctx, k, time.Time{}, f.fetch); r.Session == nil || f.calls.Load() != 1 {
		t.Fatalf("second instance Load: %+v after %d fetches", r, f.calls.Load())
	}

	keys, err := storage.Conn().Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 {
		t.Fatalf("keys under the prefix: %q", keys)
	}
	sk := keys[0]
	if !strings.HasPrefix(sk, prefix) || !storageKeyRE.MatchString(sk[len(prefix):]) || sk != prefix+k.String() {
		t.Errorf("stored key %q, want prefix + 64 hex digits", sk)
	}
	val, err := storage.Get(sk)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(val, []byte(tok)) || strings.Contains(sk, tok) {
		t.Error("the token is in Redis")
	}
	if e, err := decodeEntry(val, nil); err != nil || e.Session == nil {
		t.Errorf("stored value does not decode: %v", err)
	}
	ttl, err := storage.Conn().PTTL(ctx, sk).Result()
	if err != nil || ttl <= time.Minute || ttl > time.Minute+30*time.Second {
		t.Errorf("Redis TTL %v (%v), want about TTL+StaleIfError", ttl, err)
	}

	// A logout on one instance reaches the other's in-process tier by
	// pub/sub, long before Recheck.
	if _, ok := b.Get(ctx, k); !ok {
		t.Fatal("b holds no in-process copy")
	}
	if _, err := a.Evict(ctx, k); err != nil {
		t.Fatal(err)
	}
	waitEvicted(t, b, k)
	if _, ok := peek(b, k); ok {
		t.Fatal("hit on the other instance after Delete")
	}

	// Negative answers are shared too.
	gone := NewKey(testScope, tokenFor(2))
	a.Load(ctx, gone, time.Time{}, (&fetchCounter{err: &introspect.AuthError{Status: 410}}).fetch)
	if r, ok := peek(b, gone); !ok || !errorsIsGone(r.Err) {
		t.Errorf("shared 410: ok=%v %+v", ok, r)
	}
	if sa, sb := a.Stats(), b.Stats(); sa.StoreErrors != 0 || sb.StoreErrors != 0 {
		t.Errorf("StoreErrors %d, %d", sa.StoreErrors, sb.StoreErrors)
	}
}

// TestRedisForeignValue proves a value another program wrote under a
// cache key is a counted miss in a real Redis.
func TestRedisForeignValue(t *testing.T) {
	addr := redistest.Addr(t)
	prefix := uniquePrefix(t)
	storage := newRedisStorage(t, addr, prefix)
	c := newTestCache(t, Config{Storage: storage, Prefix: prefix, StoreTimeout: time.Second})
	k := keyFor(1)
	if err := storage.Set(prefix+k.String(), []byte(`{"user":{"id":1}}`), time.Minute); err != nil {
		t.Fatal(err)
	}
	if r, ok := peek(c, k); ok || r.Session != nil {
		t.Fatalf("foreign value served: %+v", r)
	}
	if n := c.Stats().StoreErrors; n != 1 {
		t.Errorf("StoreErrors = %d, want 1", n)
	}
}

func errorsIsGone(err error) bool {
	ae, ok := err.(*introspect.AuthError) //nolint:errorlint // cached errors are never wrapped
	return ok && ae.Status == 410
}

// TestRedisStoppedMidTest proves a Redis outage costs nothing but the cache:
// while a private redis-server is down every Load still returns the fetched
// session, failures are counted, and once it is back on the same port the
// shared cache works again.
func TestRedisStoppedMidTest(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	prefix := uniquePrefix(t)
	storage := newRedisStorage(t, srv.Addr(), prefix) // must be made while Redis is up
	clk := newFakeClock()
	cfg := Config{Storage: storage, Prefix: prefix, TTL: time.Minute, StoreTimeout: 200 * time.Millisecond, Recheck: 100 * time.Millisecond, Now: clk.Now}
	a, b := newTestCache(t, cfg), newTestCache(t, cfg)
	var fetches atomic.Int64
	fetch := func(id int) Fetch {
		return func(context.Context) (*introspect.Session, error) {
			fetches.Add(1)
			return newSession(t, id), nil
		}
	}

	a.Load(ctx, keyFor(1), time.Time{}, fetch(1))
	if _, ok := peek(b, keyFor(1)); !ok {
		t.Fatal("no shared hit while Redis is up")
	}

	srv.Kill(t)
	for i := 10; i < 20; i++ {
		start := time.Now()
		r := a.Load(ctx, keyFor(i), time.Time{}, fetch(i))
		if r.Session == nil || r.Session.User.ID != strconv.Itoa(i) || r.Err != nil {
			t.Fatalf("Load %d with Redis down = %+v", i, r)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Load %d took %v with Redis down", i, d)
		}
	}
	// b's in-process copy is no longer vouched for (the subscription
	// dropped), so it goes at its recheck, which cannot reach Redis.
	clk.Add(cfg.Recheck + time.Millisecond)
	if _, ok := peek(b, keyFor(1)); ok {
		t.Fatal("hit with Redis down")
	}
	if n := fetches.Load(); n != 11 {
		t.Errorf("fetches = %d, want 11", n)
	}
	if sa, sb := a.Stats(), b.Stats(); sa.StoreErrors == 0 || sb.StoreErrors == 0 {
		t.Errorf("StoreErrors %d, %d; want failures counted", sa.StoreErrors, sb.StoreErrors)
	}
	t.Logf("with Redis down: %+v", a.Stats())

	srv.Restart(t) // same port, empty
	i := 99
	testwait.Until(t, 20*time.Second, "the shared cache to work again after Redis restarted", func() bool {
		i++
		r := a.Load(ctx, keyFor(i), time.Time{}, fetch(i))
		if r.Session == nil {
			t.Fatalf("Load %d after restart = %+v", i, r)
		}
		// Written by a, read by b: shared again.
		got, ok := peek(b, keyFor(i)) //nolint:contextcheck // peek reads on its own context, as a request would
		return ok && got.Session.User.ID == strconv.Itoa(i)
	})
	if _, err := a.Evict(ctx, keyFor(1)); err != nil {
		t.Errorf("Delete after restart: %v", err)
	}
}

// waitSubscribed waits until each cache's eviction subscription is proven.
func waitSubscribed(tb testing.TB, caches ...*Cache) {
	tb.Helper()
	for _, c := range caches {
		testwait.Until(tb, 5*time.Second, "the eviction subscription", func() bool { return c.Stats().Subscribed })
	}
}

// waitEvicted waits until c's in-process tier no longer answers for k,
// failing after 2 s (far below any Recheck these tests use with it).
func waitEvicted(tb testing.TB, c *Cache, k Key) {
	tb.Helper()
	testwait.Until(tb, 2*time.Second, "the eviction to reach the other instance", func() bool {
		_, ok := c.Get(context.Background(), k)
		return !ok
	})
}
