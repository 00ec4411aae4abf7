package fiberauth_test

import (
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/internal/cache"
	"github.com/allauthgo/headless/internal/redistest"
	"github.com/allauthgo/headless/internal/testwait"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// The shared cache (a private redis-server) is killed under load and
// restarted on the same port: every request allauth can answer still gets
// its answer (cached users 200, unknown tokens 410), Redis costing nothing
// but the cache while it is down (failures are counted in StoreErrors), and
// once it is back the cache fills and serves hits again.
//
// Soak (three outages of 10 s):
//
//	SOAK=1 go test -race -run Test_RedisOutage_UnderLoad -v ./fiberauth/
func Test_RedisOutage_UnderLoad(t *testing.T) {
	rs := redistest.Start(t)
	st := redisStorage(t, rs.Addr(), 16) // made while Redis is up: redis.New pings
	down, cycles := time.Second, 1
	if soak() {
		down, cycles = 10*time.Second, 3
	}
	const (
		clients = 16
		users   = 20
	)
	srv := newAllauth(t)
	tokens := make([]string, users)
	for i := range tokens {
		name := "s" + strconv.Itoa(i)
		srv.AddUser(allauthtest.User{ID: 200 + i, Username: name})
		tokens[i] = srv.IssueToken(name)
	}
	m := newMiddleware(t, srv, fiberauth.Config{Storage: st, CacheTTL: time.Minute})
	h := handlerApp(t, m.Handler)

	var stop atomic.Bool
	var ok, failed atomic.Int64
	var firstErr sync.Once
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 3)) //nolint:gosec // c is a small loop index
			for k := 0; !stop.Load(); k++ {
				if k%4 == 3 {
					if a := serveDirect(h, pair{fiberauth.HeaderSessionToken, randomToken(rng)}); a.Status == 410 {
						ok.Add(1)
					} else {
						failed.Add(1)
						firstErr.Do(func() { t.Errorf("random token: %d %q, want 410", a.Status, a.Body) })
					}
					continue
				}
				u := rng.IntN(users)
				if a := serveDirect(h, pair{fiberauth.HeaderSessionToken, tokens[u]}); a.Status == 200 && a.Body == "s"+strconv.Itoa(u) {
					ok.Add(1)
				} else {
					failed.Add(1)
					firstErr.Do(func() { t.Errorf("s%d: %d %q", u, a.Status, a.Body) })
				}
				// Real time: pace the clients a little; the point is a steady
				// load, not starving the redis-server and go-redis of the CPUs.
				time.Sleep(time.Millisecond)
			}
		}()
	}

	testwait.Until(t, 15*time.Second, "the load to warm the cache", func() bool { return ok.Load() >= 200 })
	if keys := scanAll(t, st, cache.DefaultPrefix); len(keys) == 0 {
		t.Error("nothing in Redis while it is up")
	}
	for range cycles {
		before := m.Metrics().Cache
		rs.Kill(t)
		// Real time: a real redis-server is down for this long under load.
		time.Sleep(down)
		during := m.Metrics().Cache
		if during.StoreErrors == before.StoreErrors {
			t.Errorf("no store errors while Redis was down: %+v", during)
		}
		rs.Restart(t) // same port, empty
		// The cache works again once entries reappear and hits resume.
		testwait.Until(t, 15*time.Second, "the shared cache to work again after the restart", func() bool {
			keys, err := scanRedis(st, cache.DefaultPrefix)
			return err == nil && len(keys) > 0 && m.Metrics().Cache.Hits > during.Hits+100
		})
		t.Logf("outage: store errors %d, allauth lookups %d; after restart %+v",
			during.StoreErrors-before.StoreErrors, during.Fetches-before.Fetches, m.Metrics().Cache)
	}
	served := ok.Load()
	testwait.Until(t, 15*time.Second, "more answers after the last restart", func() bool { return ok.Load() >= served+200 })
	stop.Store(true)
	wg.Wait()
	t.Logf("%d answers right, %d wrong", ok.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Fatalf("%d requests allauth could answer failed", failed.Load())
	}
}
