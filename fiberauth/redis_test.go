package fiberauth_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/storage/redis/v3"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/internal/cache"
	"github.com/allauthgo/headless/internal/redistest"
	"github.com/allauthgo/headless/introspect"
)

var redisSeq atomic.Int64

// redisPrefix keeps tests, and concurrent runs of other packages, apart in
// one Redis.
func redisPrefix(tb testing.TB) string {
	tb.Helper()
	return fmt.Sprintf("fiberauth-test:%s:%d:%d:", tb.Name(), os.Getpid(), redisSeq.Add(1))
}

// newRedis connects to a Redis (redistest.Addr: REDIS_ADDR, else a private
// redis-server); when the test ends it deletes the keys
// under prefix (unless prefix is "") and closes the client (stopping
// go-redis's goroutines).
func newRedis(tb testing.TB, prefix string) *redis.Storage {
	tb.Helper()
	addr := redistest.Addr(tb)
	var st *redis.Storage
	func() {
		defer func() {
			if p := recover(); p != nil { // redis.New panics when it cannot connect
				tb.Fatalf("redis at %s: %v", addr, p)
			}
		}()
		st = redis.New(redis.Config{Addrs: []string{addr}, PoolSize: 8})
	}()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if prefix != "" {
			if keys, err := st.Conn().Keys(ctx, prefix+"*").Result(); err == nil && len(keys) > 0 {
				st.Conn().Del(ctx, keys...)
			}
		}
		if err := st.Close(); err != nil {
			tb.Errorf("close redis: %v", err)
		}
	})
	return st
}

// redisKeys lists the keys under prefix.
func redisKeys(tb testing.TB, st *redis.Storage, prefix string) []string {
	tb.Helper()
	keys, err := st.Conn().Keys(tb.Context(), prefix+"*").Result()
	if err != nil {
		tb.Fatal(err)
	}
	return keys
}

// Two instances (two apps, two middlewares) sharing one Redis-backed cache:
// a login seen by A is a hit on B, an Evict on A reaches B, and Redis holds
// no raw token.
func Test_Redis_SharedAcrossInstances(t *testing.T) {
	t.Parallel()
	prefix := redisPrefix(t)
	st := newRedis(t, prefix)
	srv := newAllauth(t)
	cfg := fiberauth.Config{Storage: st, Prefix: prefix, CacheTTL: time.Minute}
	ma, mb := newMiddleware(t, srv, cfg), newMiddleware(t, srv, cfg)
	a, b := newApp(t, ma.Handler), newApp(t, mb.Handler)
	waitSubscribed(t, ma, mb)

	tok := srv.IssueToken("alice")
	wantUser(t, do(t, a, withToken(tok)), "alice")
	wantUser(t, do(t, b, withToken(tok)), "alice")
	wantUser(t, do(t, b, withToken(tok)), "alice")
	wantCalls(t, srv, 1)

	// A 410 seen by A is a hit on B too.
	wantError(t, do(t, a, withToken("abcdefghijklmnopqrstuvwxyz012345")), http.StatusGone, headless.CodeSessionGone)
	wantError(t, do(t, b, withToken("abcdefghijklmnopqrstuvwxyz012345")), http.StatusGone, headless.CodeSessionGone)
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
	wantError(t, do(t, a, withToken(tok)), http.StatusGone, headless.CodeSessionGone)
	wantError(t, do(t, b, withToken(tok)), http.StatusGone, headless.CodeSessionGone)
	wantCalls(t, srv, 3)
}

// Evict on A makes B ask allauth again (and then share the new answer).
func Test_Redis_EvictReachesOtherInstance(t *testing.T) {
	t.Parallel()
	prefix := redisPrefix(t)
	st := newRedis(t, prefix)
	srv := newAllauth(t)
	cfg := fiberauth.Config{Storage: st, Prefix: prefix}
	ma, mb := newMiddleware(t, srv, cfg), newMiddleware(t, srv, cfg)
	a, b := newApp(t, ma.Handler), newApp(t, mb.Handler)
	waitSubscribed(t, ma, mb)

	tok := srv.IssueToken("bob")
	wantUser(t, do(t, a, withToken(tok)), "bob")
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
	wantUser(t, do(t, b, withToken(tok)), "bob")
	wantCalls(t, srv, 2)
	wantUser(t, do(t, a, withToken(tok)), "bob")
	wantCalls(t, srv, 2)
	if err := ma.Evict(t.Context(), "never-seen"); err != nil {
		t.Errorf("Evict of an unknown token: %v", err)
	}
}

// Config.Storage directly: each middleware builds its cache on the storage
// (default prefix "allauthgo:") and two instances still share answers. The
// prefix may be shared with other packages' tests running at the same time,
// so this test touches only its own key.
func Test_Redis_ConfigStorage(t *testing.T) {
	t.Parallel()
	st := newRedis(t, "")
	srv := newAllauth(t)
	ma := newMiddleware(t, srv, fiberauth.Config{Storage: st, StaleIfError: time.Minute})
	mb := newMiddleware(t, srv, fiberauth.Config{Storage: st})
	a, b := newApp(t, ma.Handler), newApp(t, mb.Handler)

	tok := srv.IssueToken("alice")
	wantUser(t, do(t, a, withToken(tok)), "alice")
	wantUser(t, do(t, b, withToken(tok)), "alice")
	wantCalls(t, srv, 1)
	if s := mb.Metrics().Cache; s.Misses != 1 || s.SharedReads != 1 || s.Fetches != 0 || s.Entries != 1 {
		t.Errorf("B stats %+v, want one in-process miss answered by the shared store", s)
	}
	scope := cache.NewScope(introspect.SessionToken, ma.Client().Endpoint(introspect.SessionToken))
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
	wantUser(t, do(t, b, withToken(tok)), "alice")
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
func Test_Redis_StoreFailureFallsBackToAllauth(t *testing.T) {
	t.Parallel()
	// A private Redis, killed: the fault is real (the middleware talks to
	// Redis through a client of its own, so closing the driver is no fault).
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
	m := newMiddleware(t, srv, fiberauth.Config{Storage: st, Recheck: recheck})
	app := newApp(t, m.Handler)
	rs.Kill(t)
	tok := srv.IssueToken("alice")
	wantUser(t, do(t, app, withToken(tok)), "alice")
	wantUser(t, do(t, app, withToken(tok)), "alice")
	wantCalls(t, srv, 1)
	time.Sleep(recheck + 10*time.Millisecond)
	wantUser(t, do(t, app, withToken(tok)), "alice")
	wantCalls(t, srv, 2)
	if s := m.Metrics().Cache; s.StoreErrors == 0 {
		t.Errorf("no store errors counted: %+v", s)
	}
	wantError(t, do(t, app, withToken("abcdefghijklmnopqrstuvwxyz012345")), http.StatusGone, headless.CodeSessionGone)
}
