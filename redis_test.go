package headless

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/storage/redis/v3"

	"github.com/allauthgo/headless/internal/cache"
	"github.com/allauthgo/headless/internal/redistest"
	"github.com/allauthgo/headless/introspect"
)

// Instances sharing a Redis (the gofiber/storage driver): the shared tier,
// evictions by pub/sub, and Redis failing. Each needs a redis-server
// (internal/redistest); pub/sub is asynchronous, so the tests wait for a
// message to arrive (waitHeard) before they look.

// redisKeys lists the keys under prefix.
func redisKeys(tb testing.TB, st *redis.Storage, prefix string) []string {
	tb.Helper()
	keys, err := st.Conn().Keys(tb.Context(), prefix+"*").Result()
	if err != nil {
		tb.Fatal(err)
	}
	return keys
}

// waitStatus repeats r until a answers want, failing after 2 s: far less
// than the Recheck of the tests that use it, so only an eviction message can
// explain the change.
func waitStatus(tb testing.TB, a *Authenticator, r *req, want int) {
	tb.Helper()
	waitUntil(tb, http.StatusText(want), func() bool { return statusOf(auth(a, r)) == want })
}

// Two instances (two apps, two middlewares) sharing one Redis-backed cache:
// a login seen by A is a hit on B, an Evict on A reaches B, and Redis holds
// no raw token.
func TestRedis_SharedAcrossInstances(t *testing.T) {
	t.Parallel()
	prefix := redisPrefix(t)
	st := newRedis(t, prefix)
	srv := newAllauth(t)
	cfg := Config{Storage: st, Prefix: prefix, CacheTTL: time.Minute}
	ma, mb := newCore(t, srv, cfg), newCore(t, srv, cfg)
	a, b := ma, mb
	waitSubscribed(t, ma, mb)

	tok := srv.IssueToken("alice")
	wantUser(t, auth(a, withToken(tok)), "alice")
	wantUser(t, auth(b, withToken(tok)), "alice")
	wantUser(t, auth(b, withToken(tok)), "alice")
	wantCalls(t, srv, 1)

	// A 410 seen by A is a hit on B too.
	wantError(t, auth(a, withToken("abcdefghijklmnopqrstuvwxyz012345")), http.StatusGone, CodeSessionGone)
	wantError(t, auth(b, withToken("abcdefghijklmnopqrstuvwxyz012345")), http.StatusGone, CodeSessionGone)
	wantCalls(t, srv, 2)

	keys := redisKeys(t, st, prefix)
	if len(keys) != 2 {
		t.Errorf("redis keys %q, want 2", keys)
	}
	for _, k := range keys {
		v, err := st.Conn().Get(t.Context(), k).Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(k, tok) || strings.Contains(string(v), tok) || strings.Contains(k, "abcdefghijklmnopqrstuvwxyz012345") {
			t.Errorf("redis key %q (value %q) holds a token", k, v)
		}
		if len(k) != len(prefix)+64 {
			t.Errorf("redis key %q is not prefix + a SHA-256 in hex", k)
		}
	}

	// Logout at allauth, Evict through B: A refuses the token as soon as
	// the eviction reaches it by pub/sub.
	srv.Logout(tok)
	if err := mb.Evict(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	waitHeard(t, ma, 1)
	wantError(t, auth(a, withToken(tok)), http.StatusGone, CodeSessionGone)
	wantError(t, auth(b, withToken(tok)), http.StatusGone, CodeSessionGone)
	wantCalls(t, srv, 3)
}

// Evict on A makes B ask allauth again (and then share the new answer).
func TestRedis_EvictReachesOtherInstance(t *testing.T) {
	t.Parallel()
	prefix := redisPrefix(t)
	st := newRedis(t, prefix)
	srv := newAllauth(t)
	cfg := Config{Storage: st, Prefix: prefix}
	ma, mb := newCore(t, srv, cfg), newCore(t, srv, cfg)
	a, b := ma, mb
	waitSubscribed(t, ma, mb)

	tok := srv.IssueToken("bob")
	wantUser(t, auth(a, withToken(tok)), "bob")
	wantCalls(t, srv, 1)
	if err := ma.Evict(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	// B had no copy, but an eviction heard while it asks allauth makes it
	// keep its answer to itself (the answer might predate the eviction):
	// let the message arrive first, as it would long before a real request.
	waitHeard(t, mb, 1)
	if keys := redisKeys(t, st, prefix); len(keys) != 0 {
		t.Errorf("keys left after Evict: %q", keys)
	}
	wantUser(t, auth(b, withToken(tok)), "bob")
	wantCalls(t, srv, 2)
	wantUser(t, auth(a, withToken(tok)), "bob")
	wantCalls(t, srv, 2)
	if err := ma.Evict(t.Context(), "never-seen"); err != nil {
		t.Errorf("Evict of an unknown token: %v", err)
	}
}

// Config.Storage directly: each middleware builds its cache on the storage
// (default prefix "allauthgo:") and two instances still share answers. The
// prefix may be shared with other packages' tests running at the same time,
// so this test touches only its own key.
func TestRedis_ConfigStorage(t *testing.T) {
	t.Parallel()
	st := newRedis(t, "")
	srv := newAllauth(t)
	ma := newCore(t, srv, Config{Storage: st, StaleIfError: time.Minute})
	mb := newCore(t, srv, Config{Storage: st})
	a, b := ma, mb

	tok := srv.IssueToken("alice")
	wantUser(t, auth(a, withToken(tok)), "alice")
	wantUser(t, auth(b, withToken(tok)), "alice")
	wantCalls(t, srv, 1)
	if s := mb.Metrics().Cache; s.Misses != 1 || s.SharedReads != 1 || s.Fetches != 0 || s.Entries != 1 {
		t.Errorf("B stats %+v, want one in-process miss answered by the shared store", s)
	}
	scope := cache.NewScope(introspect.SessionToken, ma.client.Endpoint(introspect.SessionToken))
	key := cache.DefaultPrefix + cache.NewKey(scope, tok).String()
	if n, err := st.Conn().Exists(t.Context(), key).Result(); err != nil || n != 1 {
		t.Errorf("key %s: exists %d, %v", key, n, err)
	}
	for _, k := range redisKeys(t, st, cache.DefaultPrefix) {
		if strings.Contains(k, tok) {
			t.Errorf("redis key %q holds the token", k)
		}
	}

	// Closing a middleware leaves the storage open for the other.
	if err := ma.Close(); err != nil {
		t.Fatal(err)
	}
	wantUser(t, auth(b, withToken(tok)), "alice")
	if err := mb.Evict(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	if n, err := st.Conn().Exists(t.Context(), key).Result(); err != nil || n != 0 {
		t.Errorf("key %s after Evict: exists %d, %v", key, n, err)
	}
}

// Redis down (its client closed) costs the shared cache, never a login: the
// in-process copy serves until Recheck, then allauth is asked again (an
// eviction elsewhere could not have reached this instance).
func TestRedis_StoreFailureFallsBackToAllauth(t *testing.T) {
	t.Parallel()
	// A private Redis, killed: the fault is real (the core talks to Redis
	// through a client of its own, so closing the driver is no fault).
	rs := redistest.Start(t)
	addr := rs.Addr()
	var st *redis.Storage
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("redis at %s: %v", addr, p)
			}
		}()
		st = redis.New(redis.Config{Addrs: []string{addr}, PoolSize: 2})
	}()
	t.Cleanup(func() { _ = st.Close() })
	srv := newAllauth(t)
	const recheck = 50 * time.Millisecond
	clock := newTestClock()
	m := newCore(t, srv, Config{Storage: st, Recheck: recheck, now: clock.Now})
	app := m
	rs.Kill(t)
	tok := srv.IssueToken("alice")
	wantUser(t, auth(app, withToken(tok)), "alice")
	wantUser(t, auth(app, withToken(tok)), "alice")
	wantCalls(t, srv, 1)
	clock.Add(recheck + time.Millisecond)
	wantUser(t, auth(app, withToken(tok)), "alice")
	wantCalls(t, srv, 2)
	if s := m.Metrics().Cache; s.StoreErrors == 0 {
		t.Errorf("no store errors counted: %+v", s)
	}
	wantError(t, auth(app, withToken("abcdefghijklmnopqrstuvwxyz012345")), http.StatusGone, CodeSessionGone)
}

// Two instances on one Redis: the second learns a login from the shared tier
// (no call to allauth), then answers from its own process; Evict and
// EvictUser on one instance reach the other's in-process tier by pub/sub,
// long before Recheck.
func TestRedis_TwoTiersEvictByPubSub(t *testing.T) {
	t.Parallel()
	prefix := redisPrefix(t)
	st := newRedis(t, prefix)
	srv := newAllauth(t)
	cfg := Config{Storage: st, Prefix: prefix, Recheck: time.Minute, CacheTTL: time.Minute, UserIndex: true}
	ma, mb := newCore(t, srv, cfg), newCore(t, srv, cfg)
	a, b := ma, mb
	waitSubscribed(t, ma, mb)

	tok := srv.IssueToken("alice")
	wantUser(t, auth(a, withToken(tok)), "alice")
	wantCalls(t, srv, 1)
	for range 3 {
		wantUser(t, auth(b, withToken(tok)), "alice")
	}
	wantCalls(t, srv, 1)
	if s := mb.Metrics().Cache; s.SharedReads != 1 || s.Hits != 2 || s.Fetches != 0 {
		t.Errorf("B: %+v, want one shared read, then in-process hits", s)
	}

	// Logout, then Evict on A: B's in-process copy goes at once.
	srv.Logout(tok)
	if err := ma.Evict(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, b, withToken(tok), http.StatusGone)

	// EvictUser on B reaches A's copy of bob's two sessions.
	bob1, bob2 := srv.IssueToken("bob"), srv.IssueToken("bob")
	wantUser(t, auth(b, withToken(bob1)), "bob")
	wantUser(t, auth(b, withToken(bob2)), "bob")
	wantUser(t, auth(a, withToken(bob1)), "bob")
	wantUser(t, auth(a, withToken(bob2)), "bob")
	srv.SetActive("bob", false)
	if n, err := mb.EvictUser(t.Context(), "2"); n != 2 || err != nil {
		t.Fatalf("EvictUser = %d, %v; want 2", n, err)
	}
	waitStatus(t, a, withToken(bob1), http.StatusUnauthorized)
	waitStatus(t, a, withToken(bob2), http.StatusUnauthorized)
}
