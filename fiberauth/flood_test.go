package fiberauth_test

import (
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// A flood of distinct random tokens (each one allauth's 410) goes through
// the middleware in process while real users keep working:
//
//   - allauth sees every random token: they cannot be cached away;
//   - the cache holds at most MaxEntries authenticated and MaxEntries
//     negative entries (Stats().Entries <= 2*MaxEntries), declining the rest;
//   - negative entries never evict or crowd out real users: the in-process
//     store keeps them in separate tables, so the users cached before the
//     flood are hits throughout (no extra lookup) and a user who logs in
//     during the flood is cached too;
//   - the heap stays bounded.
//
// CI pushes 10,000 tokens with MaxEntries 500 (about 5 s under -race). Soak (1,000,000 tokens,
// MaxEntries 100,000, the default):
//
//	SOAK=1 go test -run Test_Flood_RandomTokens -v -timeout 30m ./fiberauth/
func Test_Flood_RandomTokens(t *testing.T) {
	n, maxEntries, maxGrowth := 10_000, 500, uint64(16<<20)
	if soak() {
		n, maxEntries, maxGrowth = 1_000_000, 100_000, 128<<20
	}
	const (
		workers  = 8
		users    = 50
		userEach = 20 // every 20th request of a worker is a real user's
	)
	srv := newAllauth(t)
	tokens := make([]string, users)
	for i := range tokens {
		name := "r" + strconv.Itoa(i)
		srv.AddUser(allauthtest.User{ID: 1000 + i, Username: name})
		tokens[i] = srv.IssueToken(name)
	}
	srv.AddUser(allauthtest.User{ID: 999, Username: "newcomer"})
	newcomer := srv.IssueToken("newcomer")
	m := newMiddleware(t, srv, fiberauth.Config{MaxEntries: maxEntries, CacheTTL: time.Hour})
	h := handlerApp(t, m.Handler)
	for i, tok := range tokens {
		if a := serveDirect(h, pair{fiberauth.HeaderSessionToken, tok}); a.Status != 200 || a.Body != "r"+strconv.Itoa(i) {
			t.Fatalf("warm-up r%d: %d %q", i, a.Status, a.Body)
		}
	}
	wantCalls(t, srv, users)
	heap0 := heapAfterGC()

	var next, realOK, realBad, randBad atomic.Int64
	var firstErr sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42)) //nolint:gosec // w is a small loop index
			for k := 0; ; k++ {
				if k%userEach == 0 {
					u := rng.IntN(users)
					if a := serveDirect(h, pair{fiberauth.HeaderSessionToken, tokens[u]}); a.Status == 200 && a.Body == "r"+strconv.Itoa(u) {
						realOK.Add(1)
					} else {
						realBad.Add(1)
						firstErr.Do(func() { t.Errorf("r%d during the flood: %d %q", u, a.Status, a.Body) })
					}
					continue
				}
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				if i == int64(n/2) {
					// A login in the middle of the flood is cached like any.
					for range 2 {
						if a := serveDirect(h, pair{fiberauth.HeaderSessionToken, newcomer}); a.Status != 200 || a.Body != "newcomer" {
							t.Errorf("newcomer during the flood: %d %q", a.Status, a.Body)
						}
					}
				}
				if a := serveDirect(h, pair{fiberauth.HeaderSessionToken, randomToken(rng)}); a.Status != 410 {
					randBad.Add(1)
					firstErr.Do(func() { t.Errorf("random token: %d %q, want 410", a.Status, a.Body) })
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	heap1 := heapAfterGC()
	s := m.Metrics().Cache
	t.Logf("%d random tokens in %v (%.0f/s); real users %d ok; stats %+v; heap %+.0f KiB",
		n, took, float64(n)/took.Seconds(), realOK.Load(), s, (float64(heap1)-float64(heap0))/1024)

	if realBad.Load() != 0 || randBad.Load() != 0 {
		t.Fatalf("%d real-user requests and %d random ones answered wrongly", realBad.Load(), randBad.Load())
	}
	// allauth saw the warm-up, every random token once, and the newcomer
	// once: no real user was asked again.
	wantCalls(t, srv, int64(users+n+1))
	if s.Entries > 2*maxEntries {
		t.Errorf("%d entries, MaxEntries %d", s.Entries, maxEntries)
	}
	if s.Rejected == 0 && n > maxEntries {
		t.Errorf("nothing declined: %+v", s)
	}
	if s.Hits < realOK.Load() {
		t.Errorf("hits %d < real-user answers %d", s.Hits, realOK.Load())
	}
	if heap1 > heap0 && heap1-heap0 > maxGrowth {
		t.Errorf("heap grew by %d MiB", (heap1-heap0)>>20)
	}
}
