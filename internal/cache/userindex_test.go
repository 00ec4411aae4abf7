package cache

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/redistest"
	"github.com/allauthgo/headless/introspect"
)

// loadFor stores an authenticated entry of user id under keyFor(i).
func loadFor(tb testing.TB, c *Cache, i, id int) {
	tb.Helper()
	f := &fetchCounter{sess: newSession(tb, id)}
	if r := c.Load(context.Background(), keyFor(i), time.Time{}, f.fetch); r.Session == nil {
		tb.Fatalf("Load %d: %+v", i, r)
	}
}

func memStoreOf(tb testing.TB, c *Cache) *memoryStore {
	tb.Helper()
	return c.local
}

func storageStoreOf(tb testing.TB, c *Cache) *storageStore {
	tb.Helper()
	if c.shared == nil {
		tb.Fatal("no shared tier")
	}
	return c.shared
}

// TestUserIndexOff proves the index is opt-in: without Config.UserIndex
// nothing is indexed and DeleteUser says so.
func TestUserIndexOff(t *testing.T) {
	c := newTestCache(t, Config{})
	loadFor(t, c, 1, 1)
	if n := memStoreOf(t, c).IndexedKeys(); n != 0 {
		t.Errorf("%d keys indexed without UserIndex", n)
	}
	if n, err := c.EvictUser(context.Background(), "1"); n != 0 || !errors.Is(err, ErrNoUserIndex) {
		t.Errorf("DeleteUser = %d, %v; want ErrNoUserIndex", n, err)
	}
}

// TestUserIndexMemoryDeleteUser proves DeleteUser drops every entry of one
// user (and counts those that were there), leaves other users alone, and
// that a user nobody indexed is 0 and no error.
func TestUserIndexMemoryEvictUser(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, Config{UserIndex: true, TTL: time.Minute})
	for i := 1; i <= 3; i++ {
		loadFor(t, c, i, 1)
	}
	loadFor(t, c, 4, 2)
	loadFor(t, c, 1, 1) // a refill of the same key is indexed once
	if n := memStoreOf(t, c).IndexedKeys(); n != 4 {
		t.Errorf("IndexedKeys = %d, want 4", n)
	}
	// A negative entry is not indexed (allauth named no user).
	f := &fetchCounter{err: &introspect.AuthError{Status: http.StatusGone}}
	c.Load(ctx, keyFor(9), time.Time{}, f.fetch)
	if n := memStoreOf(t, c).IndexedKeys(); n != 4 {
		t.Errorf("IndexedKeys after a 410 = %d, want 4", n)
	}
	// One of alice's keys is already gone: it is not counted.
	if _, err := c.Evict(ctx, keyFor(3)); err != nil {
		t.Fatal(err)
	}

	n, err := c.EvictUser(ctx, "1")
	if n != 2 || err != nil {
		t.Fatalf("DeleteUser = %d, %v; want 2 entries", n, err)
	}
	for i := 1; i <= 3; i++ {
		if _, ok := peek(c, keyFor(i)); ok {
			t.Errorf("key %d of user 1 still cached", i)
		}
	}
	if r, ok := peek(c, keyFor(4)); !ok || r.Session == nil {
		t.Error("user 2's entry was dropped")
	}
	if n, err := c.EvictUser(ctx, "1"); n != 0 || err != nil {
		t.Errorf("second DeleteUser = %d, %v", n, err)
	}
	if n, err := c.EvictUser(ctx, "no-such-user"); n != 0 || err != nil {
		t.Errorf("DeleteUser of an unknown user = %d, %v", n, err)
	}
}

// TestDropCounts proves Drop counts what was there, negative entries
// included, and deletes all.
func TestDropCounts(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, Config{})
	loadFor(t, c, 1, 1)
	f := &fetchCounter{err: &introspect.AuthError{Status: http.StatusUnauthorized}}
	c.Load(ctx, keyFor(2), time.Time{}, f.fetch)
	if n, err := c.Evict(ctx, keyFor(1), keyFor(2), keyFor(3)); n != 2 || err != nil {
		t.Fatalf("Drop = %d, %v; want 2", n, err)
	}
	if n, err := c.Evict(ctx, keyFor(1), keyFor(2)); n != 0 || err != nil {
		t.Fatalf("Drop again = %d, %v; want 0", n, err)
	}
	if st := c.Stats(); st.Evictions != 5 {
		t.Errorf("Evictions = %d, want 5", st.Evictions)
	}
	// A failing store: the error is returned and counted.
	c2 := newTestCache(t, Config{Storage: &errStorage{}})
	if n, err := c2.Evict(ctx, keyFor(1)); n != 0 || !errors.Is(err, errBroken) {
		t.Errorf("Drop on a failing store = %d, %v", n, err)
	}
}

// TestUserIndexMemoryBounds proves the in-process index keeps at most
// MaxKeysPerUser keys per user (forgetting the one that expires first), at
// most MaxEntries keys in all (declining new ones when full of live keys),
// and frees expired keys.
func TestUserIndexMemoryBounds(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	s := newMemoryStore(10)
	s.now = clock.Now
	t.Cleanup(func() { _ = s.Close() })

	// Per user: 40 keys with growing TTLs; the first 8 are forgotten.
	big := newMemoryStore(1000)
	big.now = clock.Now
	t.Cleanup(func() { _ = big.Close() })
	for i := range 40 {
		if err := big.AddUserKey(ctx, "1", keyFor(i), time.Hour+time.Duration(i)*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	keys, _ := big.UserKeys(ctx, "1")
	if len(keys) != MaxKeysPerUser || big.IndexedKeys() != MaxKeysPerUser {
		t.Fatalf("user holds %d keys (index %d), want %d", len(keys), big.IndexedKeys(), MaxKeysPerUser)
	}
	held := map[Key]bool{}
	for _, k := range keys {
		held[k] = true
	}
	for i := range 40 {
		if want := i >= 40-MaxKeysPerUser; held[keyFor(i)] != want {
			t.Errorf("key %d held = %v, want %v", i, held[keyFor(i)], want)
		}
	}

	// In all: 10 users with short-lived keys fill it; once they expired a
	// new key gets in (a sweep), while live keys make it decline.
	for u := range 10 {
		_ = s.AddUserKey(ctx, strings.Repeat("u", u+1), keyFor(u), 50*time.Millisecond)
	}
	if s.IndexedKeys() != 10 {
		t.Fatalf("IndexedKeys = %d", s.IndexedKeys())
	}
	clock.Add(80 * time.Millisecond) // the short-lived keys expire
	_ = s.AddUserKey(ctx, "late", keyFor(100), time.Hour)
	if keys, _ := s.UserKeys(ctx, "late"); len(keys) != 1 || s.IndexedKeys() != 1 || s.IndexRejected() != 0 {
		t.Fatalf("after expiry: late holds %d keys, index %d, rejected %d", len(keys), s.IndexedKeys(), s.IndexRejected())
	}
	for u := range 9 {
		_ = s.AddUserKey(ctx, "live"+strings.Repeat("x", u), keyFor(200+u), time.Hour)
	}
	_ = s.AddUserKey(ctx, "one-too-many", keyFor(300), time.Hour)
	if keys, _ := s.UserKeys(ctx, "one-too-many"); len(keys) != 0 || s.IndexRejected() != 1 || s.IndexedKeys() != 10 {
		t.Errorf("full index: %d keys for the newcomer, %d rejected, %d indexed", len(keys), s.IndexRejected(), s.IndexedKeys())
	}
	// A user already indexed may still refresh a key it holds.
	_ = s.AddUserKey(ctx, "late", keyFor(100), 2*time.Hour)
	if keys, _ := s.UserKeys(ctx, "late"); len(keys) != 1 || s.IndexRejected() != 1 {
		t.Errorf("refresh in a full index: %d keys, %d rejected", len(keys), s.IndexRejected())
	}
	// Expired keys are not returned, and the janitor's sweep frees them.
	_ = big.AddUserKey(ctx, "2", keyFor(500), time.Millisecond)
	clock.Add(5 * time.Millisecond) // it expires
	if keys, _ := big.UserKeys(ctx, "2"); len(keys) != 0 {
		t.Errorf("expired key returned: %d", len(keys))
	}
	big.users.sweep(clock.Now().UnixNano())
	if big.IndexedKeys() != MaxKeysPerUser {
		t.Errorf("after a sweep the index holds %d keys", big.IndexedKeys())
	}
}

// TestUserIndexStorage proves the shared index over a fiber.Storage: one
// value per user under prefix + "u:" + 64 hex digits, holding no token,
// kept as long as the user's latest key, bounded per user, read by another
// instance, and that an unreadable value is reported by DeleteUser and
// replaced by the next add. A hit never touches it.
func TestUserIndexStorage(t *testing.T) {
	ctx := context.Background()
	storage := newMapStorage()
	clk := newFakeClock()
	cfg := Config{Storage: storage, Prefix: "t:", TTL: time.Minute, StaleIfError: 10 * time.Second, UserIndex: true, Recheck: 50 * time.Millisecond, Now: clk.Now}
	a, b := newTestCache(t, cfg), newTestCache(t, cfg)
	store := storageStoreOf(t, a)
	loadFor(t, a, 1, 1)
	loadFor(t, b, 2, 1)
	loadFor(t, b, 3, 2)

	uk := store.userStorageKey(a.indexID("1"))
	if !strings.HasPrefix(uk, "t:u:") || !storageKeyRE.MatchString(strings.TrimPrefix(uk, "t:u:")) {
		t.Errorf("index key %q", uk)
	}
	if raw := storage.raw(uk); len(raw) != 2+2*userKeyLen || strings.Contains(string(raw), tokenFor(1)) {
		t.Errorf("index value of %d bytes", len(raw))
	}
	if exp := time.Duration(storage.lastExp.Load()); exp < time.Minute || exp > time.Minute+10*time.Second {
		t.Errorf("index kept for %v, want about TTL+StaleIfError", exp)
	}
	keys, err := store.UserKeys(ctx, a.indexID("1"))
	if err != nil || len(keys) != 2 {
		t.Fatalf("UserKeys = %v, %v", keys, err)
	}

	// A hit costs one storage read, index or not.
	before := storage.calls.Load()
	if _, ok := peek(a, keyFor(2)); !ok {
		t.Fatal("miss")
	}
	if n := storage.calls.Load() - before; n != 1 {
		t.Errorf("a hit cost %d storage calls", n)
	}

	if n, err := a.EvictUser(ctx, "1"); n != 2 || err != nil {
		t.Fatalf("DeleteUser = %d, %v", n, err)
	}
	// Without Redis pub/sub, the other instance's in-process copy goes
	// at its next recheck.
	clk.Add(cfg.Recheck + time.Millisecond)
	if _, ok := peek(b, keyFor(2)); ok {
		t.Error("the other instance still has user 1's entry")
	}
	if _, ok := peek(b, keyFor(3)); !ok {
		t.Error("user 2's entry is gone")
	}

	// Per-user bound.
	for i := range MaxKeysPerUser + 5 {
		if err := store.AddUserKey(ctx, "many", keyFor(1000+i), time.Hour+time.Duration(i)*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if keys, err := store.UserKeys(ctx, "many"); err != nil || len(keys) != MaxKeysPerUser {
		t.Errorf("UserKeys of a busy user: %d, %v", len(keys), err)
	}

	// An unreadable value: reported, then replaced.
	if err := storage.Set(store.userStorageKey(a.indexID("3")), []byte("garbage"), 0); err != nil {
		t.Fatal(err)
	}
	errsBefore := a.Stats().StoreErrors
	if n, err := a.EvictUser(ctx, "3"); n != 0 || err == nil {
		t.Errorf("DeleteUser over garbage = %d, %v", n, err)
	}
	if a.Stats().StoreErrors != errsBefore+1 {
		t.Error("the unreadable index was not counted")
	}
	if err := store.AddUserKey(ctx, "3", keyFor(7), time.Minute); err != nil {
		t.Fatal(err)
	}
	if keys, err := store.UserKeys(ctx, "3"); err != nil || len(keys) != 1 || keys[0] != keyFor(7) {
		t.Errorf("after replacing garbage: %v, %v", keys, err)
	}
}

// TestDecodeUserKeys covers the index format's checks.
func TestDecodeUserKeys(t *testing.T) {
	good := encodeUserKeys([]userKey{{key: keyFor(1), expires: 42}})
	if ks, err := decodeUserKeys(good); err != nil || len(ks) != 1 || ks[0].key != keyFor(1) || ks[0].expires != 42 {
		t.Fatalf("round trip: %+v, %v", ks, err)
	}
	if ks, err := decodeUserKeys(nil); err != nil || ks != nil {
		t.Errorf("empty: %v, %v", ks, err)
	}
	tooMany := make([]userKey, MaxKeysPerUser+1)
	for name, b := range map[string][]byte{
		"magic":    append([]byte{0x00}, good[1:]...),
		"version":  append([]byte{userIndexMagic, 9}, good[2:]...),
		"short":    good[:len(good)-1],
		"one byte": {userIndexMagic},
		"too many": encodeUserKeys(tooMany),
	} {
		if _, err := decodeUserKeys(b); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestUserIndexRedis proves the shared index reaches every instance: two
// caches on one Redis store two sessions of one user, one DeleteUser drops
// both.
func TestUserIndexRedis(t *testing.T) {
	addr := redistest.Addr(t)
	ctx := context.Background()
	prefix := uniquePrefix(t)
	storage := newRedisStorage(t, addr, prefix)
	cfg := Config{Storage: storage, Prefix: prefix, TTL: time.Minute, StoreTimeout: time.Second, UserIndex: true}
	a, b := newTestCache(t, cfg), newTestCache(t, cfg)
	waitSubscribed(t, a, b)
	loadFor(t, a, 1, 1)
	loadFor(t, b, 2, 1)
	loadFor(t, b, 3, 2)
	uk := storageStoreOf(t, a).userStorageKey(a.indexID("1"))
	ttl, err := storage.Conn().PTTL(ctx, uk).Result()
	if err != nil || ttl <= 50*time.Second || ttl > time.Minute {
		t.Errorf("index TTL %v, %v", ttl, err)
	}
	if n, err := b.EvictUser(ctx, "1"); n != 2 || err != nil {
		t.Fatalf("DeleteUser = %d, %v", n, err)
	}
	// a's in-process copy of key 1 goes when b's eviction message arrives,
	// which DeleteUser does not wait for.
	waitEvicted(t, a, keyFor(1))
	for _, c := range []*Cache{a, b} {
		if _, ok := peek(c, keyFor(1)); ok {
			t.Error("key 1 still cached")
		}
		if _, ok := peek(c, keyFor(2)); ok {
			t.Error("key 2 still cached")
		}
		if _, ok := peek(c, keyFor(3)); !ok {
			t.Error("user 2's key was dropped")
		}
	}
}

// With a secret, a writer to Redis without it cannot hide a user's keys from
// EvictUser by adding entries to the user's index (padding, junk, or valid
// entries copied from another user's index), nor turn EvictUser onto
// another user's sessions: each entry carries a MAC bound to the index's
// key, entries that fail it are left out and counted, the others still
// count, and the next add keeps them. Real Redis, as an attacker would
// write it.
func TestUserIndexForgedEntriesRedis(t *testing.T) {
	addr := redistest.Addr(t)
	ctx := context.Background()
	prefix := uniquePrefix(t)
	storage := newRedisStorage(t, addr, prefix)
	cfg := Config{
		Storage: storage, Prefix: prefix, TTL: time.Minute, StoreTimeout: time.Second, UserIndex: true,
		Secret: []byte("0123456789abcdef0123456789abcdef"),
	}
	a, b := newTestCache(t, cfg), newTestCache(t, cfg)
	waitSubscribed(t, a, b)
	loadFor(t, a, 1, 1)
	loadFor(t, b, 2, 1)
	loadFor(t, a, 3, 2)
	store := storageStoreOf(t, a)
	uk1, uk2 := store.userStorageKey(a.indexID("1")), store.userStorageKey(a.indexID("2"))
	conn := storage.Conn()
	raw1, err := conn.Get(ctx, uk1).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	raw2, err := conn.Get(ctx, uk2).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if len(raw2) < 3 {
		t.Fatalf("user 2's index: %d bytes", len(raw2))
	}
	entryLen := len(raw2) - 2 // user 2 has one key

	// The forger appends user 2's entry and more junk entries than a user
	// may hold, then an odd byte.
	forged := append([]byte(nil), raw1...)
	forged = append(forged, raw2[2:]...)
	for i := range MaxKeysPerUser + 1 {
		junk := make([]byte, entryLen)
		k := keyFor(900 + i)
		copy(junk, k[:])
		forged = append(forged, junk...)
	}
	forged = append(forged, 0xff)
	if err := conn.Set(ctx, uk1, forged, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	// A new session of user 1 is indexed over the forged value: the add
	// keeps the authentic keys (and counts the others).
	errs := b.Stats().StoreErrors
	loadFor(t, b, 4, 1)
	if b.Stats().StoreErrors == errs {
		t.Error("the forged entries were not counted")
	}
	// The forger pads the index again.
	cur, err := conn.Get(ctx, uk1).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Set(ctx, uk1, append(cur, forged[len(raw1):]...), time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	errs = a.Stats().StoreErrors
	if n, err := a.EvictUser(ctx, "1"); n != 3 || err != nil {
		t.Errorf("EvictUser(1) over a padded index = %d, %v; want user 1's 3 sessions", n, err)
	}
	if a.Stats().StoreErrors == errs {
		t.Error("the forged entries were not counted by EvictUser")
	}
	waitEvicted(t, b, keyFor(2))
	for _, i := range []int{1, 2, 4} {
		for _, c := range []*Cache{a, b} {
			if _, ok := peek(c, keyFor(i)); ok {
				t.Errorf("user 1's key %d is still cached", i)
			}
		}
	}
	if _, ok := peek(a, keyFor(3)); !ok {
		t.Error("user 2's session was evicted by an entry copied into user 1's index")
	}

	// User 1's index replaced by user 2's (a valid value, under the wrong
	// key): EvictUser(1) does not reach user 2.
	if err := conn.Set(ctx, uk1, raw2, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := a.EvictUser(ctx, "1"); n != 0 || err != nil {
		t.Errorf("EvictUser(1) over user 2's index = %d, %v; want 0", n, err)
	}
	if _, ok := peek(a, keyFor(3)); !ok {
		t.Error("user 2's session was evicted through user 1's index")
	}
}
