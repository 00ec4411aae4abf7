package cache

import (
	"context"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/redistest"
)

// What docs/security.md says a writer to Redis can still do with a secret:
// put back a value it copied before an eviction. The value is genuine, so it
// is served again, until its ObtainedAt plus the reader's TTL and no longer.
// (A replay window, not a forgery: the test pins down its bound.)
func TestRedisReplayAfterEvictionBoundedByTTL(t *testing.T) {
	addr := redistest.Addr(t)
	ctx := context.Background()
	prefix := uniquePrefix(t)
	storage := newRedisStorage(t, addr, prefix)
	clk := newFakeClock()
	const ttl = time.Minute
	cfg := Config{
		Storage: storage, Prefix: prefix, TTL: ttl, Recheck: time.Hour, Now: clk.Now, StoreTimeout: time.Second,
		Secret: []byte("0123456789abcdef0123456789abcdef"),
	}
	a := newTestCache(t, cfg)
	// b reads the same Redis through the Storage methods alone: no eviction
	// bus, so no second delete of its own races the put-back below.
	cfgB := cfg
	cfgB.Storage = plainStorage{storage}
	b := newTestCache(t, cfgB)
	k := keyFor(1)
	sk := prefix + k.String()
	if r := a.Load(ctx, k, time.Time{}, (&fetchCounter{sess: newSession(t, 1)}).fetch); r.Session == nil {
		t.Fatalf("Load: %+v", r)
	}
	copied, err := storage.Conn().Get(ctx, sk).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Evict(ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, ok := peek(b, k); ok {
		t.Fatal("served after the eviction")
	}

	// The copy is put back, with no expiry.
	if err := storage.Conn().Set(ctx, sk, copied, 0).Err(); err != nil {
		t.Fatal(err)
	}
	clk.Add(ttl - time.Second)
	if r, ok := peek(b, k); !ok || r.Session == nil || r.Tier != TierShared {
		t.Errorf("the replayed value within its TTL: %+v, %v; docs/security.md says it is served", r, ok)
	}
	clk.Add(2 * time.Second)
	if r, ok := peek(b, k); ok {
		t.Errorf("the replayed value past ObtainedAt + TTL: %+v, want a miss", r)
	}
}

// plainStorage hides a driver's Conn: the Cache sees a Storage only.
type plainStorage struct{ Storage }
