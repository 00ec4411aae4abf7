package cache

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/redistest"
)

// TestRedisStalledBoundsEveryCall stalls a real redis-server (SIGSTOP) under
// traffic: every call (Load's read and write, Evict, EvictUser) returns
// within a generous bound, where a go-redis client without
// ContextTimeoutEnabled waits for its 3 s read timeout; the goroutines do
// not grow; after SIGCONT the shared tier works again.
//
// Real time: the stall is a real process's, and what is bounded is real
// socket reads.
func TestRedisStalledBoundsEveryCall(t *testing.T) {
	srv := redistest.Start(t)
	prefix := uniquePrefix(t)
	storage := newRedisStorage(t, srv.Addr(), prefix)
	c := newTestCache(t, Config{Storage: storage, Prefix: prefix, TTL: time.Minute, Recheck: time.Minute, StoreTimeout: 50 * time.Millisecond, UserIndex: true})
	waitSubscribed(t, c)
	ctx := context.Background()
	f := &fetchCounter{sess: newSession(t, 1)}
	key := func(w, i int) Key { return NewKey(testScope, fmt.Sprintf("stall-token-%d-%d-0123456789abcdef", w, i)) }
	if r := c.Load(ctx, key(0, -1), time.Time{}, f.fetch); r.Session == nil {
		t.Fatalf("warm-up Load: %+v", r)
	}
	base := runtime.NumGoroutine()

	srv.Stop(t)
	const bound = time.Second // the bug takes 3 s (go-redis's read timeout)
	const workers = 8
	var mu sync.Mutex
	slowest := map[string]time.Duration{}
	timed := func(op string, fn func()) {
		start := time.Now()
		fn()
		d := time.Since(start)
		mu.Lock()
		slowest[op] = max(slowest[op], d)
		mu.Unlock()
	}
	maxGoroutines := 0
	stop := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(stop); i++ {
				k := key(w, i)
				timed("Load", func() {
					if r := c.Load(ctx, k, time.Time{}, f.fetch); r.Session == nil {
						t.Errorf("Load while Redis is stalled: %+v (allauth answers)", r)
					}
				})
				timed("Evict", func() { _, _ = c.Evict(ctx, k) })
				timed("EvictUser", func() { _, _ = c.EvictUser(ctx, "1") })
			}
		}()
	}
	for time.Now().Before(stop) {
		maxGoroutines = max(maxGoroutines, runtime.NumGoroutine())
		time.Sleep(10 * time.Millisecond) // real time: samples the goroutines while a real Redis is stopped
	}
	wg.Wait()
	for op, d := range slowest {
		t.Logf("slowest %s while stalled: %v", op, d)
		if d > bound {
			t.Errorf("%s took %v while Redis was stalled, want < %v (StoreTimeout 50ms)", op, d, bound)
		}
	}
	// The workers, the test's own, and a little of the runtime's: nothing
	// per call.
	if maxGoroutines > base+workers+20 {
		t.Errorf("goroutines grew from %d to %d while Redis was stalled", base, maxGoroutines)
	}

	srv.Continue(t)
	// Back: a Load is written to the shared tier again (once the store's
	// rest after the failures is over), and an eviction succeeds.
	i := 0
	var back Key
	waitFor(t, 5*time.Second, "the shared tier to come back after SIGCONT", func() bool {
		back = key(99, i)
		i++
		c.Load(ctx, back, time.Time{}, f.fetch)
		raw, err := storage.Get(prefix + back.String())
		return err == nil && raw != nil
	})
	if _, err := c.Evict(ctx, back); err != nil {
		t.Fatalf("Evict after SIGCONT: %v", err)
	}
}
