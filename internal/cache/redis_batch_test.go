package cache

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/latencyproxy"
	"github.com/allauthgo/headless/internal/redistest"
	"github.com/allauthgo/headless/internal/testwait"
)

// batchKeys is a Django webhook batch: 500 session keys, each three cache
// keys (app token, browser cookie, bearer).
const batchKeys = 3 * 500

// batchPair is two instances sharing one redis-server through a latency
// proxy that adds delay each way, and a batch of keys both hold.
type batchPair struct {
	a, b *Cache
	keys []Key
	f    *fetchCounter
}

func newBatchPair(tb testing.TB, delay, storeTimeout time.Duration) *batchPair {
	tb.Helper()
	srv := redistest.Start(tb)
	proxy, err := latencyproxy.Start(srv.Addr(), delay)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = proxy.Close() })
	prefix := uniquePrefix(tb)
	cfg := Config{Prefix: prefix, TTL: time.Hour, Recheck: time.Hour, StoreTimeout: storeTimeout}
	cfg.Storage = newRedisStorage(tb, proxy.Addr(), prefix)
	a := newTestCache(tb, cfg)
	cfg.Storage = newRedisStorage(tb, proxy.Addr(), prefix)
	b := newTestCache(tb, cfg)
	waitSubscribed(tb, a, b)
	p := &batchPair{a: a, b: b, f: &fetchCounter{sess: newSession(tb, 1)}}
	for i := range batchKeys {
		p.keys = append(p.keys, NewKey(testScope, fmt.Sprintf("batch-token-%d-0123456789abcdef", i)))
	}
	return p
}

// fill has a log every key in (allauth answers, the answer goes to Redis)
// and b copy each from Redis into its process.
func (p *batchPair) fill(tb testing.TB) {
	tb.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	const workers = 16
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(p.keys); i += workers {
				p.a.Load(ctx, p.keys[i], time.Time{}, p.f.fetch)
				r, ok := peek(p.b, p.keys[i]) //nolint:contextcheck // peek is the tests' own helper
				if !ok || r.Session == nil {
					tb.Errorf("b did not read key %d from Redis: %+v", i, r)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// evict has a evict the batch and waits until b has dropped every key from
// its process, returning both times.
func (p *batchPair) evict(tb testing.TB) (evicted, applied time.Duration) {
	tb.Helper()
	start := time.Now()
	n, err := p.a.Evict(context.Background(), p.keys...)
	evicted = time.Since(start)
	if err != nil || n != len(p.keys) {
		tb.Fatalf("Evict = %d, %v; want %d, nil", n, err, len(p.keys))
	}
	deadline := start.Add(5 * time.Second)
	for _, k := range p.keys {
		testwait.Until(tb, time.Until(deadline), "b to drop every evicted key", func() bool {
			_, ok := p.b.Get(context.Background(), k)
			return !ok
		})
	}
	return evicted, time.Since(start)
}

// TestRedisEvictBatchAppliedEverywhere evicts a Django batch (1,500 cache
// keys) on one instance of two that share a Redis 0.5 ms away each way
// (1 ms round trip): the other instance drops every in-process copy, the
// shared values are gone, and its next lookup asks allauth.
func TestRedisEvictBatchAppliedEverywhere(t *testing.T) {
	// Real time: a real Redis behind a real delayed link. StoreTimeout is
	// generous so a loaded test machine does not fail the batch; the
	// benchmark runs with the default.
	p := newBatchPair(t, 500*time.Microsecond, time.Second)
	p.fill(t)
	evicted, applied := p.evict(t)
	t.Logf("1,500 keys: Evict returned after %v, applied on the other instance after %v", evicted, applied)
	// Each message is counted once its keys are also deleted from Redis
	// again (heardEviction), a little after they left the process.
	want := int64((batchKeys + maxKeysPerMessage - 1) / maxKeysPerMessage)
	waitFor(t, 2*time.Second, fmt.Sprintf("b to hear %d eviction messages", want),
		func() bool { return p.b.Stats().EvictionsHeard == want })
	for i, k := range p.keys {
		if raw, err := p.b.shared.storage.Get(p.b.shared.storageKey(k)); err != nil || raw != nil {
			t.Fatalf("key %d still in Redis after Evict: %d bytes, %v", i, len(raw), err)
		}
	}
	before := p.f.calls.Load()
	if r := p.b.Load(context.Background(), p.keys[0], time.Time{}, p.f.fetch); r.Session == nil || p.f.calls.Load() != before+1 {
		t.Errorf("b after the batch: %+v, %d fetches; want allauth asked again", r, p.f.calls.Load()-before)
	}
}

// BenchmarkEvictBatch measures a Django batch (1,500 cache keys) evicted on
// one instance until the other has dropped every key, through a Redis 0.5 ms
// away each way. StoreTimeout is 1 s, as in the test: on a busy machine a
// single slow fill would make the store rest and leave keys unfilled; the
// batch itself needs a few milliseconds per chunk.
func BenchmarkEvictBatch(b *testing.B) {
	p := newBatchPair(b, 500*time.Microsecond, time.Second)
	var evictTotal, appliedTotal time.Duration
	for b.Loop() {
		b.StopTimer()
		p.fill(b)
		b.StartTimer()
		evicted, applied := p.evict(b)
		evictTotal += evicted
		appliedTotal += applied
	}
	b.ReportMetric(float64(evictTotal.Microseconds())/float64(b.N)/1000, "ms-evict/batch")
	b.ReportMetric(float64(appliedTotal.Microseconds())/float64(b.N)/1000, "ms-applied/batch")
}
