package cache

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/redistest"
)

// BenchmarkKey hashes a 32-byte session token, as the middleware does on
// every request.
func BenchmarkKey(b *testing.B) {
	tok := []byte(tokenFor(1))
	b.ReportAllocs()
	var k Key
	for b.Loop() {
		k = NewKey(testScope, tok)
	}
	_ = k
}

// benchCache returns an in-process Cache (default coarse clock, as in
// production) holding n sessions under keyFor(0..n-1).
func benchCache(b *testing.B, n int) *Cache {
	b.Helper()
	ctx := context.Background()
	c := New(Config{TTL: time.Hour, MaxEntries: n})
	b.Cleanup(func() { _ = c.Close() })
	for i := range n {
		f := &fetchCounter{sess: buildSession(i)}
		if r := c.Load(ctx, keyFor(i), time.Time{}, f.fetch); r.Session == nil {
			b.Fatal(r.Err)
		}
	}
	return c
}

// BenchmarkGetHit is an in-process hit with the key already hashed; the
// target is at most 100 ns and no allocation.
func BenchmarkGetHit(b *testing.B) {
	c := benchCache(b, 1)
	ctx := context.Background()
	k := keyFor(0)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Get(ctx, k); !ok {
			b.Fatal("miss")
		}
	}
}

// BenchmarkGetHitParallel is BenchmarkGetHit from GOMAXPROCS goroutines over
// 1,024 cached sessions.
func BenchmarkGetHitParallel(b *testing.B) {
	const n = 1024 * 8 // a sharded store, as the default MaxEntries gives
	c := benchCache(b, n)
	ctx := context.Background()
	keys := make([]Key, n)
	for i := range keys {
		keys[i] = keyFor(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := c.Get(ctx, keys[i%n]); !ok {
				b.Error("miss")
				return
			}
			i++
		}
	})
}

// BenchmarkMemorySetFull is the cost of declining a new entry in a full
// table (what each request of a random-token flood costs the store).
func BenchmarkMemorySetFull(b *testing.B) {
	const maxEntries = 10_000
	s := newMemoryStore(maxEntries)
	b.Cleanup(func() { _ = s.Close() })
	e := &entry{Status: http.StatusGone, FreshUntil: 1}
	for i := range maxEntries {
		s.set(keyFor(i), e, time.Hour)
	}
	keys := make([]Key, 4096)
	for i := range keys {
		keys[i] = keyFor(maxEntries + i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		s.set(keys[i%len(keys)], e, time.Hour)
		i++
	}
	if s.Len() != maxEntries {
		b.Fatalf("Len = %d", s.Len())
	}
}

// BenchmarkRedisGetHit is a hit through Redis (REDIS_ADDR, else a private
// redis-server).
func BenchmarkRedisGetHit(b *testing.B) {
	addr := redistest.Addr(b)
	ctx := context.Background()
	prefix := uniquePrefix(b)
	storage := newRedisStorage(b, addr, prefix)
	c := New(Config{Storage: storage, Prefix: prefix, TTL: time.Hour, StoreTimeout: time.Second})
	b.Cleanup(func() { _ = c.Close() })
	k := keyFor(0)
	if r := c.Load(ctx, k, time.Time{}, (&fetchCounter{sess: buildSession(1)}).fetch); r.Session == nil {
		b.Fatal(r.Err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := c.Get(ctx, k); !ok {
			b.Fatal("miss")
		}
	}
}
