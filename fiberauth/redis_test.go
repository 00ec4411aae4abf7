package fiberauth_test

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
