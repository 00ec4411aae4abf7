package cache

// Tests of the two tiers (issue 13) on real Redis servers: the shared one in
// REDIS_ADDR, or a private redistest server for those that kill Redis or
// fill it up. None asserts on speed; some wait for a documented window
// (Recheck, a TTL) to pass.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/storage/redis/v3"
	goredis "github.com/redis/go-redis/v9"

	"github.com/allauthgo/headless/internal/redistest"
	"github.com/allauthgo/headless/internal/testwait"
	"github.com/allauthgo/headless/introspect"
)

// redisGets returns how many GETs the Redis behind s has run: a private
// server, so that they are all this test's. (The Cache sends its commands
// through a client of its own, not through the driver's methods.)
func redisGets(tb testing.TB, s *redis.Storage) int64 {
	tb.Helper()
	info, err := s.Conn().Info(context.Background(), "commandstats").Result()
	if err != nil {
		tb.Fatalf("INFO commandstats: %v", err)
	}
	_, rest, ok := strings.Cut(info, "cmdstat_get:calls=")
	if !ok {
		return 0
	}
	n, _ := strconv.ParseInt(rest[:strings.IndexByte(rest, ',')], 10, 64)
	return n
}

// newNamedRedisStorage is newRedisStorage with a client name on every
// connection, so that a test can find (and kill) this client's connections.
func newNamedRedisStorage(tb testing.TB, addr, prefix, name string) *redis.Storage {
	tb.Helper()
	var s *redis.Storage
	func() {
		defer func() {
			if p := recover(); p != nil {
				tb.Fatalf("redis at %s: %v", addr, p)
			}
		}()
		s = redis.New(redis.Config{Addrs: []string{addr}, PoolSize: 8, ClientName: name})
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

// settle lets the coarse clock pass the moment a just-confirmed
// subscription recorded (its since is a clock tick ahead), so that copies
// made from now on are vouched for by it.
func settle() { time.Sleep(3 * clockResolution) } // real time: the cache's own coarse clock, which a subscription's since is read on

// localEntry returns c's in-process entry for k, or nil.
func localEntry(c *Cache, k Key) *entry {
	return c.local.get(k)
}

// waitClock waits until c's clock reads at least t (Unix nanoseconds).
func waitClock(tb testing.TB, c *Cache, t int64) {
	tb.Helper()
	testwait.Until(tb, 30*time.Second, "the cache's clock to advance", func() bool { return c.nanos() >= t })
}

// waitFor polls cond until it holds, failing with what after d.
func waitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	testwait.Until(tb, d, what, cond)
}

// TestRedisSharedReadOnce proves an instance on Redis reads the shared tier
// once for many (concurrent) Gets and Loads of one token, and that a hit on
// a copy that came from the shared tier allocates nothing.
func TestRedisSharedReadOnce(t *testing.T) {
	addr := redistest.Start(t).Addr()
	ctx := context.Background()
	prefix := uniquePrefix(t)
	storage := newRedisStorage(t, addr, prefix)
	cfg := Config{Storage: storage, Prefix: prefix, TTL: time.Hour, Recheck: time.Minute, StoreTimeout: 2 * time.Second}
	a, b := newTestCache(t, cfg), newTestCache(t, cfg)
	k := keyFor(1)
	f := &fetchCounter{sess: newSession(t, 1)}
	if r := a.Load(ctx, k, time.Time{}, f.fetch); r.Session == nil {
		t.Fatalf("Load = %+v", r)
	}
	reads, gets := b.Stats().SharedReads, redisGets(t, storage)
	hammer(t, b, k, f.fetch)
	if st, after := b.Stats(), redisGets(t, storage); st.SharedReads != reads+1 || after != gets+1 || st.Fetches != 0 {
		t.Errorf("SharedReads %d → %d, Redis GETs %d → %d, Fetches %d; want one read, no fetch",
			reads, st.SharedReads, gets, after, st.Fetches)
	}
	var misses int
	if n := testing.AllocsPerRun(1000, func() {
		if r, ok := b.Get(ctx, k); !ok || r.Session == nil {
			misses++
		}
	}); n != 0 || misses != 0 {
		t.Errorf("a hit on a copy of a shared answer allocates %v times (%d misses)", n, misses)
	}
}

// percentile returns the nearest-rank p-th percentile of sorted ds.
func percentile(ds []time.Duration, p int) time.Duration {
	i := (len(ds)*p + 99) / 100
	return ds[max(i, 1)-1]
}

// TestRedisEvictionLatency measures how long an eviction on one instance
// takes to reach another's in-process tier through Redis pub/sub. Recheck is
// a minute and the TTL ten, so only the eviction message can explain a miss
// (and the in-process entry is gone, which only an eviction does). The
// figures go in the docs; nothing is asserted on them.
func TestRedisEvictionLatency(t *testing.T) {
	addr := redistest.Addr(t)
	ctx := context.Background()
	prefix := uniquePrefix(t)
	storage := newRedisStorage(t, addr, prefix)
	cfg := Config{Storage: storage, Prefix: prefix, TTL: 10 * time.Minute, Recheck: time.Minute, StoreTimeout: 2 * time.Second}
	a, b := newTestCache(t, cfg), newTestCache(t, cfg)
	waitSubscribed(t, a, b)
	settle()

	const n = 200
	f := &fetchCounter{sess: newSession(t, 1)}
	for i := range n {
		if r := a.Load(ctx, keyFor(i), time.Time{}, f.fetch); r.Session == nil {
			t.Fatalf("a.Load %d = %+v", i, r)
		}
		if r := b.Load(ctx, keyFor(i), time.Time{}, mustNotFetch(t)); r.Session == nil {
			t.Fatalf("b.Load %d = %+v", i, r)
		}
	}
	if st := b.Stats(); st.SharedReads != n || st.Fetches != 0 {
		t.Fatalf("b: SharedReads %d, Fetches %d; want every copy from the shared tier", st.SharedReads, st.Fetches)
	}

	lat := make([]time.Duration, 0, n)
	for i := range n {
		k := keyFor(i)
		if _, ok := b.Get(ctx, k); !ok {
			t.Fatalf("key %d: b holds no in-process copy before the eviction", i)
		}
		start := time.Now()
		if _, err := a.Evict(ctx, k); err != nil {
			t.Fatal(err)
		}
		// Spin (yielding): sleeping would measure the timer, not the bus.
		for time.Since(start) < 2*time.Second {
			if _, ok := b.Get(ctx, k); !ok {
				break
			}
			runtime.Gosched()
		}
		lat = append(lat, time.Since(start))
		waitEvicted(t, b, k)
		if localEntry(b, k) != nil {
			t.Fatalf("key %d: a miss, but b's entry is still there (Recheck, not pub/sub?)", i)
		}
		if i+1 < n {
			if _, ok := b.Get(ctx, keyFor(i+1)); !ok {
				t.Fatalf("evicting key %d evicted key %d too", i, i+1)
			}
		}
	}
	slices.Sort(lat)
	r := func(d time.Duration) time.Duration { return d.Round(time.Microsecond) }
	t.Logf("eviction a→b via pub/sub: p50=%v p95=%v p99=%v max=%v (n=%d; from the start of a.Delete to b's in-process miss)",
		r(percentile(lat, 50)), r(percentile(lat, 95)), r(percentile(lat, 99)), r(lat[len(lat)-1]), len(lat))
}

// TestRedisDeleteUserReachesOtherInstances proves DeleteUser on one instance
// drops the user's in-process copies on another, including a session only
// the other instance fetched, and nothing of other users.
func TestRedisDeleteUserReachesOtherInstances(t *testing.T) {
	addr := redistest.Addr(t)
	ctx := context.Background()
	prefix := uniquePrefix(t)
	storage := newRedisStorage(t, addr, prefix)
	cfg := Config{Storage: storage, Prefix: prefix, TTL: 10 * time.Minute, Recheck: time.Minute, StoreTimeout: 2 * time.Second, UserIndex: true}
	a, b := newTestCache(t, cfg), newTestCache(t, cfg)
	waitSubscribed(t, a, b)
	settle()

	for i := 1; i <= 4; i++ {
		loadFor(t, a, i, 7)
		if _, ok := peek(b, keyFor(i)); !ok {
			t.Fatalf("b: no shared hit for key %d", i)
		}
	}
	loadFor(t, b, 5, 7) // fetched by b alone, indexed in Redis
	loadFor(t, a, 6, 8)
	if _, ok := peek(b, keyFor(6)); !ok {
		t.Fatal("b: no shared hit for key 6")
	}

	if n, err := a.EvictUser(ctx, "7"); n != 5 || err != nil {
		t.Fatalf("DeleteUser = %d, %v; want 5", n, err)
	}
	for i := 1; i <= 5; i++ {
		waitEvicted(t, b, keyFor(i))
		if localEntry(b, keyFor(i)) != nil {
			t.Errorf("key %d: b's in-process entry is still there", i)
		}
		if _, ok := peek(b, keyFor(i)); ok {
			t.Errorf("key %d: still served by b", i)
		}
	}
	for _, c := range []*Cache{a, b} {
		if _, ok := c.Get(ctx, keyFor(6)); !ok {
			t.Error("user 8's session was dropped")
		}
	}
}

// TestRedisSubscriptionLost proves an in-process copy is served past
// Recheck only while the subscription vouches for it: with Redis killed,
// the copy goes at its window's end (and allauth is asked, Redis being
// down); once Redis is back, the subscription is proven again and
// evictions arrive by pub/sub.
func TestRedisSubscriptionLost(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	prefix := uniquePrefix(t)
	storage := newRedisStorage(t, srv.Addr(), prefix)
	const recheck = 300 * time.Millisecond
	cfg := Config{Storage: storage, Prefix: prefix, TTL: time.Minute, Recheck: recheck, StoreTimeout: 200 * time.Millisecond}
	a, b := newTestCache(t, cfg), newTestCache(t, cfg)
	waitSubscribed(t, a, b)
	settle()
	f := &fetchCounter{sess: newSession(t, 1)}

	// Vouched: past its window, b's copy is still served (and a hit still
	// allocates nothing). A PONG may come late on a busy machine, so the
	// copy may miss for a moment; it must answer again.
	a.Load(ctx, keyFor(1), time.Time{}, f.fetch)
	if _, ok := peek(b, keyFor(1)); !ok {
		t.Fatal("b: no shared hit")
	}
	waitClock(t, b, localEntry(b, keyFor(1)).checkedAt+int64(recheck))
	waitFor(t, 10*time.Second, "a vouched copy is not served past Recheck", func() bool {
		_, ok := b.Get(ctx, keyFor(1))
		return ok
	})
	k1 := keyFor(1)
	// 1000 runs: a stray allocation of the bus's goroutines must not round
	// up to one per hit.
	if n := testing.AllocsPerRun(1000, func() { b.Get(ctx, k1) }); n != 0 {
		t.Errorf("a vouched hit allocates %v times", n)
	}

	// Redis goes down.
	a.Load(ctx, keyFor(2), time.Time{}, f.fetch)
	if _, ok := peek(b, keyFor(2)); !ok {
		t.Fatal("b: no shared hit")
	}
	checked := localEntry(b, keyFor(2)).checkedAt
	srv.Kill(t)
	waitFor(t, 10*time.Second, "Subscribed stays true with Redis down", func() bool { return !b.Stats().Subscribed })
	waitClock(t, b, checked+int64(recheck))
	reads := b.Stats().SharedReads
	for _, i := range []int{1, 2} {
		if _, ok := b.Get(ctx, keyFor(i)); ok {
			t.Fatalf("key %d: served past Recheck with the subscription down", i)
		}
		if _, ok := peek(b, keyFor(i)); ok {
			t.Fatalf("key %d: answered without allauth while Redis is down", i)
		}
	}
	if st := b.Stats(); st.SharedReads != reads+2 || st.StoreErrors == 0 {
		t.Errorf("b: SharedReads %d → %d, StoreErrors %d; want two failed reads", reads, st.SharedReads, st.StoreErrors)
	}

	// Redis is back (empty): the subscriptions come back, and an eviction
	// reaches b's in-process tier by pub/sub (the entry is gone, which
	// Recheck alone never does).
	srv.Restart(t)
	waitFor(t, 30*time.Second, "the subscriptions do not come back", func() bool {
		return a.Stats().Subscribed && b.Stats().Subscribed
	})
	settle()
	k := keyFor(3)
	waitFor(t, 30*time.Second, "the shared tier does not work again", func() bool {
		a.Load(ctx, k, time.Time{}, f.fetch)
		shared := true
		b.Load(ctx, k, time.Time{}, func(context.Context) (*introspect.Session, error) {
			shared = false // b had to ask allauth
			return nil, errPeek
		})
		return shared
	})
	received := b.bus.received.Load()
	if _, err := a.Evict(ctx, k); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the eviction does not reach b after the restart", func() bool { return localEntry(b, k) == nil })
	if b.bus.received.Load() == received {
		t.Error("b's entry went, but no eviction message arrived")
	}
	if _, ok := b.Get(ctx, k); ok {
		t.Error("hit after the eviction")
	}
}

// killPubSub kills the Redis pub/sub connections of the client named name
// (only those: other tests share this Redis) and returns how many.
func killPubSub(t *testing.T, s *redis.Storage, name string) int {
	t.Helper()
	ctx := context.Background()
	list, err := s.Conn().Do(ctx, "CLIENT", "LIST", "TYPE", "pubsub").Text()
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for line := range strings.Lines(list) {
		fields := strings.Fields(line)
		if !slices.Contains(fields, "name="+name) {
			continue
		}
		for _, f := range fields {
			if id, ok := strings.CutPrefix(f, "id="); ok {
				if err := s.Conn().Do(ctx, "CLIENT", "KILL", "ID", id, "TYPE", "pubsub").Err(); err != nil {
					t.Fatalf("CLIENT KILL ID %s: %v", id, err)
				}
				killed++
			}
		}
	}
	return killed
}

// TestRedisLostEvictionMessage proves an eviction message lost with a
// dropped subscription cannot keep a copy alive: b's pub/sub connection is
// killed and a evicts at once (the message is likely published while b is
// not subscribed); once the copy's Recheck window is over, b misses,
// whether or not the message arrived.
func TestRedisLostEvictionMessage(t *testing.T) {
	addr := redistest.Addr(t)
	ctx := context.Background()
	prefix := uniquePrefix(t)
	name := fmt.Sprintf("allauthgo-lost-%d", prefixSeq.Add(1))
	const recheck = 500 * time.Millisecond
	cfg := Config{Prefix: prefix, TTL: time.Minute, Recheck: recheck, StoreTimeout: 2 * time.Second}
	cfg.Storage = newRedisStorage(t, addr, prefix)
	a := newTestCache(t, cfg)
	bStorage := newNamedRedisStorage(t, addr, prefix, name)
	cfg.Storage = bStorage
	b := newTestCache(t, cfg)
	waitSubscribed(t, a, b)
	settle()

	for round := range 3 {
		k := keyFor(round)
		a.Load(ctx, k, time.Time{}, (&fetchCounter{sess: newSession(t, 1)}).fetch)
		if _, ok := peek(b, k); !ok {
			t.Fatal("b: no shared hit")
		}
		checked := localEntry(b, k).checkedAt
		if n := killPubSub(t, bStorage, name); n != 1 {
			t.Fatalf("killed %d pub/sub connections of b, want 1", n)
		}
		if _, err := a.Evict(ctx, k); err != nil {
			t.Fatal(err)
		}
		waitClock(t, b, checked+int64(recheck))
		if _, ok := b.Get(ctx, k); ok {
			t.Fatalf("round %d: served past checkedAt + Recheck after the subscription dropped", round)
		}
		t.Logf("round %d: eviction message lost: %v", round, localEntry(b, k) != nil)
		// The next round needs b subscribed again, on a new connection.
		waitFor(t, 30*time.Second, "b does not subscribe again", func() bool {
			return b.bus.since.Load() > checked && b.Stats().Subscribed
		})
		settle()
	}
}

// TestRedisSharedValueLimits runs the reader-limit and Secret tests end to
// end on Redis.
func TestRedisSharedValueLimits(t *testing.T) {
	addr := redistest.Addr(t)
	prefix := uniquePrefix(t)
	storage := newRedisStorage(t, addr, prefix)
	t.Run("reader limits", func(t *testing.T) { testReaderLimits(t, storage, prefix+"limits:") })
	t.Run("secret", func(t *testing.T) { testSecretValues(t, storage, prefix+"secret:") })
	t.Run("realms", func(t *testing.T) { testUserIndexRealms(t, storage, prefix+"realms:") })
}

// TestRedisPrefixesApart proves two deployments with different prefixes on
// one Redis do not see each other's values for the same token (same scope)
// and do not hear each other's evictions.
func TestRedisPrefixesApart(t *testing.T) {
	addr := redistest.Addr(t)
	ctx := context.Background()
	base := uniquePrefix(t)
	storage := newRedisStorage(t, addr, base)
	p1, p2 := base+"p1:", base+"p2:"
	cfg := Config{Storage: storage, TTL: 10 * time.Minute, Recheck: time.Minute, StoreTimeout: 2 * time.Second}
	cfg.Prefix = p1
	a1, b1 := newTestCache(t, cfg), newTestCache(t, cfg)
	cfg.Prefix = p2
	a2, b2 := newTestCache(t, cfg), newTestCache(t, cfg)
	all := []*Cache{a1, b1, a2, b2}
	waitSubscribed(t, all...)
	settle()
	if a1.bus.channel == a2.bus.channel {
		t.Fatalf("both prefixes evict on %q", a1.bus.channel)
	}
	subs, err := storage.Conn().PubSubNumSub(ctx, p1+"evict", p2+"evict").Result()
	if err != nil || subs[p1+"evict"] != 2 || subs[p2+"evict"] != 2 {
		t.Fatalf("subscribers per channel: %v, %v; want 2 and 2", subs, err)
	}

	k := keyFor(1)
	if r := a1.Load(ctx, k, time.Time{}, (&fetchCounter{sess: newSession(t, 1)}).fetch); r.Session == nil {
		t.Fatal(r.Err)
	}
	if _, ok := peek(a2, k); ok {
		t.Fatal("p2 sees p1's value")
	}
	if r := a2.Load(ctx, k, time.Time{}, (&fetchCounter{sess: newSession(t, 2)}).fetch); r.Session == nil {
		t.Fatal(r.Err)
	}
	user := func(c *Cache) string {
		r, ok := c.Get(ctx, k)
		if !ok || r.Session == nil {
			return ""
		}
		return r.Session.User.ID
	}
	load := func(c *Cache) {
		t.Helper()
		if _, ok := peek(c, k); !ok {
			t.Fatal("no shared hit")
		}
	}
	load(b1)
	load(b2)
	for _, c := range []struct {
		c    *Cache
		want string
	}{{a1, "1"}, {b1, "1"}, {a2, "2"}, {b2, "2"}} {
		if got := user(c.c); got != c.want {
			t.Fatalf("user %q, want %q", got, c.want)
		}
	}

	// An eviction under p1 reaches b1, and not p2's copies.
	if _, err := a1.Evict(ctx, k); err != nil {
		t.Fatal(err)
	}
	waitEvicted(t, b1, k)
	// A marker published after the eviction reaches p2's listeners after
	// anything Redis sent them before it: once they have it, a stray
	// eviction would have arrived too.
	marker(t, storage.Conn(), p2+"evict", a2, b2)
	if user(a2) != "2" || user(b2) != "2" || a2.bus.received.Load() != 1 || b2.bus.received.Load() != 1 {
		t.Fatal("p1's eviction reached p2")
	}
	if _, ok := peek(newTestCache(t, cfg), k); !ok {
		t.Fatal("p1's eviction deleted p2's value")
	}

	// And the other way round.
	a1.Load(ctx, k, time.Time{}, (&fetchCounter{sess: newSession(t, 1)}).fetch)
	load(b1)
	r1 := b1.bus.received.Load()
	if _, err := a2.Evict(ctx, k); err != nil {
		t.Fatal(err)
	}
	waitEvicted(t, b2, k)
	marker(t, storage.Conn(), p1+"evict", b1)
	if user(a1) != "1" || user(b1) != "1" || b1.bus.received.Load() != r1+1 {
		t.Fatal("p2's eviction reached p1")
	}
}

// TestRedisStaleAfterGoneWhenFull proves allauth's 410 purges a kept session
// from a Redis too full to take the negative answer (maxmemory 1,
// noeviction: writes fail, deletes work), so the next allauth outage is an
// error, not the logged-out session served stale, on this instance and on
// another reading the same Redis.
func TestRedisStaleAfterGoneWhenFull(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	prefix := uniquePrefix(t)
	storage := newRedisStorage(t, srv.Addr(), prefix)
	const ttl, negTTL = time.Second, 300 * time.Millisecond
	cfg := Config{Storage: storage, Prefix: prefix, TTL: ttl, NegativeTTL: negTTL, StaleIfError: time.Minute, StoreTimeout: time.Second}
	a, b := newTestCache(t, cfg), newTestCache(t, cfg)
	k := keyFor(1)
	sk := prefix + k.String()
	if r := a.Load(ctx, k, time.Time{}, (&fetchCounter{sess: newSession(t, 1)}).fetch); r.Session == nil {
		t.Fatalf("Load = %+v", r)
	}
	if _, ok := peek(b, k); !ok {
		t.Fatal("b: no shared hit")
	}

	conn := storage.Conn()
	if err := conn.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	if err := conn.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := conn.Set(ctx, prefix+"probe", "x", time.Minute).Err(); err == nil || !strings.Contains(err.Error(), "OOM") {
		t.Fatalf("a write to the full Redis: %v, want OOM", err)
	}

	// The session's TTL passes; allauth fails: served stale (the setup is
	// right), by both instances.
	waitClock(t, a, localEntry(a, k).FreshUntil)
	waitClock(t, b, localEntry(b, k).FreshUntil)
	upstream := &fetchCounter{err: upstreamErr()}
	for _, c := range []*Cache{a, b} {
		if r := c.Load(ctx, k, time.Time{}, upstream.fetch); r.Session == nil || !r.Stale {
			t.Fatalf("allauth failing before its 410: %+v, want the session, stale", r)
		}
	}

	// allauth answers 410; the negative answer cannot be written.
	errs := a.Stats().StoreErrors
	gone := &fetchCounter{err: &introspect.AuthError{Status: http.StatusGone}}
	if r := a.Load(ctx, k, time.Time{}, gone.fetch); r.Session != nil || !isAuthStatus(r.Err, http.StatusGone) || gone.calls.Load() != 1 {
		t.Fatalf("allauth's 410: %+v after %d fetches", r, gone.calls.Load())
	}
	if a.Stats().StoreErrors == errs {
		t.Error("the negative write did not fail: is Redis full?")
	}
	if n, err := conn.Exists(ctx, sk).Result(); n != 0 || err != nil {
		t.Errorf("the refused session is still in Redis (%d, %v)", n, err)
	}

	// allauth fails again: an error, not the session, on both instances.
	var ue *introspect.UpstreamError
	if r := b.Load(ctx, k, time.Time{}, upstream.fetch); r.Session != nil || r.Stale || !errors.As(r.Err, &ue) {
		t.Errorf("b, allauth failing after its 410: %+v, want the upstream error", r)
	}
	if r := a.Load(ctx, k, time.Time{}, upstream.fetch); r.Session != nil || r.Stale || r.Err == nil {
		t.Errorf("a, allauth failing after its 410: %+v, want an error", r)
	}
	// Once a's cached 410 is over, a asks allauth again, and still serves
	// no stale session.
	waitClock(t, a, a.nanos()+int64(negTTL+2*clockResolution))
	if r := a.Load(ctx, k, time.Time{}, upstream.fetch); r.Session != nil || r.Stale || !errors.As(r.Err, &ue) {
		t.Errorf("a, allauth failing after its cached 410: %+v, want the upstream error", r)
	}
	if err := conn.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Error(err)
	}
}

// An eviction message that arrives after this instance wrote allauth's
// earlier answer to Redis (its lookup ran while another instance evicted)
// deletes that answer from Redis too, not only from this process: otherwise
// every instance would read it back until its TTL. The late message is sent
// by hand, as the instance that evicted would have sent it.
func TestRedisLateEvictionMessageDeletesSharedCopy(t *testing.T) {
	addr := redistest.Addr(t)
	ctx := context.Background()
	prefix := uniquePrefix(t)
	storage := newRedisStorage(t, addr, prefix)
	b := newTestCache(t, Config{Storage: storage, Prefix: prefix, TTL: time.Minute, Recheck: time.Minute})
	waitSubscribed(t, b)

	k := keyFor(1)
	f := &fetchCounter{sess: newSession(t, 1)}
	if r := b.Load(ctx, k, time.Time{}, f.fetch); r.Session == nil {
		t.Fatalf("Load: %+v", r)
	}
	if n, err := storage.Conn().Exists(ctx, prefix+k.String()).Result(); err != nil || n != 1 {
		t.Fatalf("the answer is not in Redis: %d, %v", n, err)
	}

	msg := append([]byte("elsewhere"[:senderIDLen]), k[:]...)
	if err := storage.Conn().Publish(ctx, prefix+"evict", msg).Err(); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 5*time.Second, "the message", func() bool { return b.Stats().EvictionsHeard > 0 })
	if _, ok := b.Get(ctx, k); ok {
		t.Error("the in-process copy survived the eviction")
	}
	// The second delete follows the in-process drop, off the listener.
	waitFor(t, 2*time.Second, "the answer is still in Redis after the eviction message", func() bool {
		n, err := storage.Conn().Exists(ctx, prefix+k.String()).Result()
		return err == nil && n == 0
	})
}

// marker publishes a malformed message on channel and waits until each of
// caches has received it (and counted it malformed). Redis delivers a
// subscriber's messages in the order it sent them, so whatever was published
// before the marker has been handled by then: a test waits on it to prove
// that a message did not come.
func marker(tb testing.TB, conn goredis.UniversalClient, channel string, caches ...*Cache) {
	tb.Helper()
	want := make([]int64, len(caches))
	for i, c := range caches {
		want[i] = c.bus.malformed.Load() + 1
	}
	if err := conn.Publish(context.Background(), channel, "marker").Err(); err != nil {
		tb.Fatal(err)
	}
	for i, c := range caches {
		waitFor(tb, 5*time.Second, "the marker on "+channel, func() bool { return c.bus.malformed.Load() >= want[i] })
	}
}
