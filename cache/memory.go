package cache

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	gocache "github.com/patrickmn/go-cache"
)

// DefaultMaxEntries bounds each table of the in-process store.
const DefaultMaxEntries = 100_000

// MemoryStore is the in-process Store, built on patrickmn/go-cache.
//
// It keeps authenticated and negative entries in two tables, each bounded by
// MaxEntries, so a flood of random tokens (each a 410 from allauth) can fill
// the negative table but never evict or crowd out a real user's session.
//
// When a table is full, expired entries go first (a sweep, at most once per
// second); if it is still full the new entry is not stored. Declining is O(1)
// and keeps every entry that is already proving useful, where evicting would
// need an O(n) scan of go-cache's map to pick a victim; the cost is that a
// session seen for the first time while the table is full goes uncached until
// entries expire (after TTL at most). A janitor removes expired entries every
// minute; Close stops it.
type MemoryStore struct {
	pos, neg  *table
	rejected  atomic.Int64
	stop      chan struct{}
	closeOnce sync.Once
	users     memUserIndex // see userindex.go; used with Config.UserIndex
	wg        sync.WaitGroup
}

type table struct {
	c         *gocache.Cache
	max       int
	mu        sync.Mutex // serialises inserts, so the bound is exact
	lastSweep time.Time
}

// NewMemoryStore returns an in-process store holding at most maxEntries
// authenticated and maxEntries negative entries (DefaultMaxEntries if
// maxEntries <= 0).
func NewMemoryStore(maxEntries int) *MemoryStore {
	if maxEntries <= 0 {
		maxEntries = DefaultMaxEntries
	}
	s := &MemoryStore{
		// go-cache's own janitor can only be stopped by a finalizer; ours
		// stops on Close, so no goroutine outlives the store.
		pos:  &table{c: gocache.New(gocache.NoExpiration, 0), max: maxEntries},
		neg:  &table{c: gocache.New(gocache.NoExpiration, 0), max: maxEntries},
		stop: make(chan struct{}),
	}
	s.wg.Add(1)
	go s.janitor(time.Minute)
	return s
}

func (s *MemoryStore) janitor(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			s.pos.sweep(now)
			s.neg.sweep(now)
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
	entry   *Entry
	expires int64 // Unix nanoseconds
}

// Get returns the entry under key, even one past its ttl that the janitor has
// not removed yet (the Cache checks freshness). It never fails.
func (s *MemoryStore) Get(_ context.Context, key Key) (*Entry, error) {
	// string(key[:]) does not escape into go-cache, so it is built on the
	// stack: a hit allocates nothing.
	if v, ok := s.pos.c.Get(string(key[:])); ok {
		return v.(*memItem).entry, nil //nolint:errcheck // only *memItem is ever stored
	}
	if v, ok := s.neg.c.Get(string(key[:])); ok {
		return v.(*memItem).entry, nil //nolint:errcheck // only *memItem is ever stored
	}
	return nil, nil //nolint:nilnil // a miss is not an error, as Store documents
}

// Set stores e for ttl unless its table is full (see [MemoryStore]).
func (s *MemoryStore) Set(_ context.Context, key Key, e *Entry, ttl time.Duration) error {
	t, other := s.pos, s.neg
	if e.negative() {
		t, other = s.neg, s.pos
	}
	k := string(key[:])
	other.c.Delete(k) // an answer replaces the other kind of answer
	if !t.set(k, e, ttl) {
		s.rejected.Add(1)
	}
	return nil
}

func (t *table) set(k string, e *Entry, ttl time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if _, exists := t.c.Get(k); !exists && t.c.ItemCount() >= t.max {
		if now.Sub(t.lastSweep) >= time.Second {
			t.lastSweep = now
			t.sweepLocked(now)
		}
		if t.c.ItemCount() >= t.max {
			return false
		}
	}
	t.c.Set(k, &memItem{entry: e, expires: now.Add(ttl).UnixNano()}, gocache.NoExpiration)
	return true
}

func (t *table) sweep(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweepLocked(now)
}

// sweepLocked removes expired items. go-cache's Items copies the map, which
// is O(n); it runs once a minute, or at most once a second while full.
func (t *table) sweepLocked(now time.Time) {
	n := now.UnixNano()
	for k, v := range t.c.Items() {
		if it, ok := v.Object.(*memItem); !ok || it.expires <= n {
			t.c.Delete(k)
		}
	}
}

// Delete removes key from both tables.
func (s *MemoryStore) Delete(_ context.Context, key Key) error {
	k := string(key[:])
	s.pos.c.Delete(k)
	s.neg.c.Delete(k)
	return nil
}

// Len returns the number of entries held, expired ones not yet swept
// included.
func (s *MemoryStore) Len() int { return s.pos.c.ItemCount() + s.neg.c.ItemCount() }

// Rejected returns how many entries were not stored because a table was full.
func (s *MemoryStore) Rejected() int64 { return s.rejected.Load() }

// Close stops the janitor. The store keeps working afterwards, without it.
func (s *MemoryStore) Close() error {
	s.closeOnce.Do(func() { close(s.stop) })
	s.wg.Wait()
	return nil
}
