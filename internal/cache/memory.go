package cache

import (
	"sync"
	"sync/atomic"
	"time"

	gocache "github.com/patrickmn/go-cache"
)

// DefaultMaxEntries bounds each kind of entry (sessions, negative answers)
// in the in-process store.
const DefaultMaxEntries = 100_000

// memoryStore is the in-process Store, built on patrickmn/go-cache.
//
// It keeps authenticated and negative entries apart, each kind bounded by
// MaxEntries, so a flood of random tokens (each a 410 from allauth) can fill
// the negative side but never evict or crowd out a real user's session.
//
// When a kind is full, expired entries go first (a sweep, at most once per
// second); if it is still full the new entry is not stored. Declining is O(1)
// and keeps every entry that is already proving useful, where evicting would
// need an O(n) scan of go-cache's map to pick a victim; the cost is that a
// session seen for the first time while the store is full goes uncached until
// entries expire (after TTL at most). A janitor removes expired entries every
// minute; Close stops it.
//
// A store of 4,096 entries or more is split into 16 shards by the key's
// first byte, each a pair of go-cache tables. go-cache guards a table with one
// RWMutex, whose reader count is a cache line every core writes on every
// hit: one table would serialise the parallel hits of different tokens.
// Inserts (misses only) take one lock and check the bound over all shards,
// so the bound stays exact.
type memoryStore struct {
	shards    []shard
	mask      int
	max       int        // the bound of each kind, over all shards
	insertMu  sync.Mutex // serialises inserts, so the bound is exact
	lastSweep [2]time.Time
	rejected  atomic.Int64
	stop      chan struct{}
	closeOnce sync.Once
	users     memUserIndex // see userindex.go; used with Config.UserIndex
	wg        sync.WaitGroup
	// now is the wall clock entries and index keys expire on; tests set
	// another.
	now func() time.Time
}

// The two kinds of entries, as indexes into a shard's tables.
const (
	kindPos = 0
	kindNeg = 1
)

type shard struct {
	tables [2]*gocache.Cache // kindPos, kindNeg
	_      [48]byte          // keeps neighbouring shards off one cache line
}

// Shards of a large store; a small one has one shard.
const (
	numShards      = 16
	minShardedSize = 4096
)

// newMemoryStore returns an in-process store holding at most maxEntries
// authenticated and maxEntries negative entries (DefaultMaxEntries if
// maxEntries <= 0).
func newMemoryStore(maxEntries int) *memoryStore {
	if maxEntries <= 0 {
		maxEntries = DefaultMaxEntries
	}
	n := 1
	if maxEntries >= minShardedSize {
		n = numShards
	}
	s := &memoryStore{shards: make([]shard, n), mask: n - 1, max: maxEntries, stop: make(chan struct{}), now: time.Now}
	for i := range s.shards {
		// No expiration and no go-cache janitor: go-cache's janitor can only
		// be stopped by a finalizer; ours stops on Close, so no goroutine
		// outlives the store.
		s.shards[i].tables = [2]*gocache.Cache{gocache.New(gocache.NoExpiration, 0), gocache.New(gocache.NoExpiration, 0)}
	}
	s.wg.Add(1)
	go s.janitor(time.Minute)
	return s
}

func (s *memoryStore) janitor(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			s.sweep(kindPos, now)
			s.sweep(kindNeg, now)
			s.users.sweep(now.UnixNano())
		case <-s.stop:
			return
		}
	}
}

// memItem is what the tables hold. Items are stored in go-cache without an
// expiration, because go-cache reads the system clock on every Get of an
// expiring item; the Cache judges freshness itself, and the janitor removes
// items whose expires has passed.
type memItem struct {
	entry   *entry
	expires int64 // Unix nanoseconds
}

// get returns the entry under key, even one past its ttl that the janitor has
// not removed yet (the Cache checks freshness). It never fails.
func (s *memoryStore) get(key Key) *entry {
	sh := s.shard(key)
	// string(key[:]) does not escape into go-cache, so it is built on the
	// stack: a hit allocates nothing.
	if v, ok := sh.tables[kindPos].Get(string(key[:])); ok {
		return v.(*memItem).entry //nolint:errcheck // only *memItem is ever stored
	}
	if v, ok := sh.tables[kindNeg].Get(string(key[:])); ok {
		return v.(*memItem).entry //nolint:errcheck // only *memItem is ever stored
	}
	return nil
}

// set stores e for ttl unless its kind is full (see [memoryStore]).
func (s *memoryStore) set(key Key, e *entry, ttl time.Duration) {
	sh := s.shard(key)
	kind := kindPos
	if e.negative() {
		kind = kindNeg
	}
	k := string(key[:])
	sh.tables[1-kind].Delete(k) // an answer replaces the other kind of answer
	if !s.insert(kind, sh.tables[kind], k, e, ttl) {
		s.rejected.Add(1)
	}
}

func (s *memoryStore) insert(kind int, t *gocache.Cache, k string, e *entry, ttl time.Duration) bool {
	s.insertMu.Lock()
	defer s.insertMu.Unlock()
	now := s.now()
	if _, exists := t.Get(k); !exists && s.count(kind) >= s.max {
		if now.Sub(s.lastSweep[kind]) >= time.Second {
			s.lastSweep[kind] = now
			s.sweepLocked(kind, now)
		}
		if s.count(kind) >= s.max {
			return false
		}
	}
	t.Set(k, &memItem{entry: e, expires: now.Add(ttl).UnixNano()}, gocache.NoExpiration)
	return true
}

// count returns how many entries of a kind the shards hold.
func (s *memoryStore) count(kind int) int {
	n := 0
	for i := range s.shards {
		n += s.shards[i].tables[kind].ItemCount()
	}
	return n
}

func (s *memoryStore) sweep(kind int, now time.Time) {
	s.insertMu.Lock()
	defer s.insertMu.Unlock()
	s.sweepLocked(kind, now)
}

// sweepLocked removes expired items of a kind. go-cache's Items copies the
// map, which is O(n); it runs once a minute, or at most once a second while
// full.
func (s *memoryStore) sweepLocked(kind int, now time.Time) {
	n := now.UnixNano()
	for i := range s.shards {
		t := s.shards[i].tables[kind]
		for k, v := range t.Items() {
			if it, ok := v.Object.(*memItem); !ok || it.expires <= n {
				t.Delete(k)
			}
		}
	}
}

// del removes key from both tables.
func (s *memoryStore) del(key Key) {
	sh := s.shard(key)
	k := string(key[:])
	sh.tables[kindPos].Delete(k)
	sh.tables[kindNeg].Delete(k)
}

// shard returns the shard of key. Keys are SHA-256 hashes, so their first
// byte spreads evenly.
func (s *memoryStore) shard(key Key) *shard { return &s.shards[int(key[0])&s.mask] }

// Len returns the number of entries held, expired ones not yet swept
// included.
func (s *memoryStore) Len() int {
	return s.count(kindPos) + s.count(kindNeg)
}

// Rejected returns how many entries were not stored because a table was full.
func (s *memoryStore) Rejected() int64 { return s.rejected.Load() }

// Close stops the janitor. The store keeps working afterwards, without it.
func (s *memoryStore) Close() error {
	s.closeOnce.Do(func() { close(s.stop) })
	s.wg.Wait()
	return nil
}
