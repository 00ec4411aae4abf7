package headless

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/storage/redis/v3"

	"github.com/allauthgo/headless/internal/redistest"
)

var redisSeq atomic.Int64

// redisPrefix keeps tests, and concurrent runs of other packages, apart in
// one Redis.
func redisPrefix(tb testing.TB) string {
	tb.Helper()
	return fmt.Sprintf("headless-test:%s:%d:%d:", tb.Name(), os.Getpid(), redisSeq.Add(1))
}

// newRedis connects to a Redis (redistest.Addr: REDIS_ADDR, else a private
// redis-server); when the test ends it deletes the keys under prefix and
// closes the client (stopping go-redis's goroutines).
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
		if keys, err := st.Conn().Keys(ctx, prefix+"*").Result(); err == nil && len(keys) > 0 {
			st.Conn().Del(ctx, keys...)
		}
		if err := st.Close(); err != nil {
			tb.Errorf("close redis: %v", err)
		}
	})
	return st
}

// scanAll returns every key under prefix (SCAN, not KEYS) with its value.
func scanAll(tb testing.TB, st *redis.Storage, prefix string) map[string][]byte {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := map[string][]byte{}
	iter := st.Conn().Scan(ctx, 0, prefix+"*", 500).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		v, err := st.GetWithContext(ctx, k) // nil, nil if it expired meanwhile
		if err != nil {
			tb.Fatalf("GET %s: %v", k, err)
		}
		out[k] = v
	}
	if err := iter.Err(); err != nil {
		tb.Fatalf("SCAN %s*: %v", prefix, err)
	}
	return out
}

// waitSubscribed waits until each Authenticator hears evictions from the
// others (Redis pub/sub is asynchronous).
func waitSubscribed(tb testing.TB, as ...*Authenticator) {
	tb.Helper()
	for _, a := range as {
		waitUntil(tb, "the eviction subscription", func() bool { return a.Metrics().Cache.Subscribed })
	}
}

// waitHeard waits until a has applied n eviction messages from other
// instances, so that a test goes on only once an eviction has reached it.
func waitHeard(tb testing.TB, a *Authenticator, n int64) {
	tb.Helper()
	waitUntil(tb, fmt.Sprintf("%d eviction messages heard", n), func() bool { return a.Metrics().Cache.EvictionsHeard >= n })
}
