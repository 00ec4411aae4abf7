package cache

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/sync/singleflight"

	"github.com/allauthgo/headless/introspect"
)

// Defaults for [Config].
const (
	DefaultTTL         = 30 * time.Second
	DefaultNegativeTTL = 5 * time.Second
)

// Config tunes a Cache. The zero value is usable: in process, TTL 30 s,
// NegativeTTL 5 s, 100,000 entries, no stale answers.
type Config struct {
	// TTL is how long an authenticated answer is served without asking
	// allauth again. It is the longest a logout elsewhere can go unnoticed
	// (unless the token is evicted). Default 30 s.
	TTL time.Duration
	// NegativeTTL is how long allauth's 401 or 410 is served. 0 means the
	// default, 5 s; a negative value turns negative caching off.
	NegativeTTL time.Duration
	// StaleIfError lets an authenticated answer that expired less than this
	// long ago be served while allauth fails (not for 401 or 410). The result
	// says it was stale. Default 0: off.
	StaleIfError time.Duration
	// MaxEntries bounds the in-process store (each of its authenticated and
	// negative tables). Ignored with Storage or Store. Default 100,000.
	MaxEntries int
	// Storage, if set, is a shared fiber.Storage (e.g. gofiber/storage
	// redis) used instead of the in-process store.
	Storage fiber.Storage
	// Prefix is put before every key written to Storage. Default "allauthgo:".
	Prefix string
	// StoreTimeout bounds each Storage operation. Default 50 ms.
	StoreTimeout time.Duration
	// Store, if set, is used as is (Storage, Prefix, StoreTimeout and
	// MaxEntries are then ignored).
	Store Store
	// Now is the clock; tests inject one. By default the Cache reads a clock
	// that one goroutine updates every 5 ms, since reading the system clock
	// on every hit would cost more than the rest of the hit.
	Now func() time.Time
	// UserIndex keeps a user → keys index, so that DeleteUser can drop
	// every entry of one user (see [UserIndexer] for what it costs and how
	// it is bounded). It needs a Store that implements UserIndexer, as
	// MemoryStore and StorageStore do. Default false.
	UserIndex bool
}

// Fetch asks allauth. It returns a session, an *introspect.AuthError (a 401
// or 410 to cache negatively) or any other error (never cached).
type Fetch func(ctx context.Context) (*introspect.Session, error)

// Result is the cache's answer for one key.
type Result struct {
	// Session is the authenticated session, or nil.
	Session *introspect.Session
	// Err is why there is no session: an *introspect.AuthError (allauth's
	// 401 or 410, live or cached), an *introspect.UpstreamError, or the
	// caller's context error.
	Err error
	// Stale is true when Session expired and is served within StaleIfError
	// because allauth failed.
	Stale bool
}

// Cache serves allauth's answers from a Store and coalesces concurrent misses
// for one key into one fetch. It is safe for concurrent use.
type Cache struct {
	store        Store
	owned        bool // the store was made here, so Close closes it
	ttl          time.Duration
	negTTL       time.Duration
	staleIfError time.Duration
	now          func() time.Time // injected clock, or nil
	clock        *coarseClock     // used when now is nil
	group        singleflight.Group
	users        UserIndexer // nil without Config.UserIndex
	stats        counters
}

// New returns a Cache configured by cfg.
func New(cfg Config) *Cache {
	c := &Cache{
		store:        cfg.Store,
		ttl:          cfg.TTL,
		negTTL:       cfg.NegativeTTL,
		staleIfError: cfg.StaleIfError,
		now:          cfg.Now,
	}
	if c.ttl <= 0 {
		c.ttl = DefaultTTL
	}
	if c.negTTL == 0 {
		c.negTTL = DefaultNegativeTTL
	}
	if c.staleIfError < 0 {
		c.staleIfError = 0
	}
	if c.now == nil {
		c.clock = startClock()
	}
	if c.store == nil {
		c.owned = true
		if cfg.Storage != nil {
			c.store = NewStorageStore(cfg.Storage, cfg.Prefix, cfg.StoreTimeout)
		} else {
			c.store = NewMemoryStore(cfg.MaxEntries)
		}
	}
	if cfg.UserIndex {
		c.users, _ = c.store.(UserIndexer)
	}
	return c
}

// Get returns a fresh cached answer for key: a session, or allauth's cached
// 401/410 in Result.Err. ok is false on a miss (an expired entry, an
// unreadable one, or a failing store, which is counted and never an error).
func (c *Cache) Get(ctx context.Context, key Key) (r Result, ok bool) {
	e := c.lookup(ctx, key)
	if e == nil || c.nanos() >= e.FreshUntil {
		c.stats.lookups[key[0]&(numShards-1)].misses.Add(1)
		return Result{}, false
	}
	if e.negative() {
		c.stats.lookups[key[0]&(numShards-1)].negativeHits.Add(1)
		return Result{Err: e.authError()}, true
	}
	c.stats.lookups[key[0]&(numShards-1)].hits.Add(1)
	return Result{Session: e.Session}, true
}

// Load fetches the answer for key, with every concurrent Load of the same
// key sharing one fetch, and stores it. notAfter, if not zero, caps how long
// an authenticated answer is kept (a JWT's exp).
//
// The fetch runs detached from ctx: a caller whose ctx ends gets ctx's error
// at once, while the fetch goes on for the others who wait on it (it is
// bounded by the fetch's own timeout, such as introspect.Config.Timeout). If
// the fetch fails with anything but allauth's 401/410 and an authenticated
// entry expired less than StaleIfError ago, that entry is returned as stale.
func (c *Cache) Load(ctx context.Context, key Key, notAfter time.Time, fetch Fetch) Result {
	leader := false
	ch := c.group.DoChan(string(key[:]), func() (any, error) {
		leader = true
		return c.fill(context.WithoutCancel(ctx), key, notAfter, fetch), nil
	})
	select {
	case res := <-ch:
		if !leader {
			c.stats.coalesced.Add(1)
		}
		return res.Val.(Result) //nolint:errcheck // fill always returns a Result
	case <-ctx.Done():
		return Result{Err: &introspect.UpstreamError{Reason: "gave up waiting", Err: ctx.Err()}}
	}
}

// fill runs once per coalesced miss.
func (c *Cache) fill(ctx context.Context, key Key, notAfter time.Time, fetch Fetch) Result {
	// Another instance (shared store) or an earlier leader may have filled
	// the key while this call waited to become leader.
	prev := c.lookup(ctx, key)
	if prev != nil && c.nanos() < prev.FreshUntil {
		if prev.negative() {
			return Result{Err: prev.authError()}
		}
		return Result{Session: prev.Session}
	}

	c.stats.fetches.Add(1)
	sess, err := fetch(ctx)
	now := time.Unix(0, c.nanos())
	var authErr *introspect.AuthError
	switch {
	case err == nil && sess != nil:
		ttl, keep := c.ttl, c.ttl+c.staleIfError
		if !notAfter.IsZero() {
			// Nothing is kept past notAfter, not even as a stale fallback.
			ttl = min(ttl, notAfter.Sub(now))
			keep = min(keep, notAfter.Sub(now))
		}
		if ttl > 0 {
			e := &Entry{Session: sess, Status: http.StatusOK, FreshUntil: now.Add(ttl).UnixNano()}
			c.set(ctx, key, e, keep)
			c.indexUser(ctx, sess.User.ID, key, keep)
		}
		return Result{Session: sess}
	case errors.As(err, &authErr):
		if c.negTTL > 0 {
			e := &Entry{Status: authErr.Status, FreshUntil: now.Add(c.negTTL).UnixNano()}
			c.set(ctx, key, e, c.negTTL)
		} else if prev != nil {
			// Without negative caching nothing overwrites an expired session:
			// drop it, or StaleIfError would serve it after allauth's "no".
			if err := c.store.Delete(ctx, key); err != nil {
				c.stats.storeErrors.Add(1)
			}
		}
		return Result{Err: err}
	default:
		if err == nil {
			err = &introspect.UpstreamError{Reason: "fetch returned neither a session nor an error"}
		}
		if prev != nil && !prev.negative() && now.UnixNano() < prev.FreshUntil+int64(c.staleIfError) &&
			(notAfter.IsZero() || now.Before(notAfter)) {
			c.stats.staleServes.Add(1)
			return Result{Session: prev.Session, Stale: true}
		}
		return Result{Err: err}
	}
}

// Delete drops key from the store, so the next request asks allauth. It
// returns the store's error, if any.
func (c *Cache) Delete(ctx context.Context, key Key) error {
	c.stats.evictions.Add(1)
	if err := c.store.Delete(ctx, key); err != nil {
		c.stats.storeErrors.Add(1)
		return err
	}
	return nil
}

// Store returns the store in use.
func (c *Cache) Store() Store { return c.store }

// Close stops the Cache's clock and releases the store if this Cache made it
// (stopping the in-process janitor). A Store or Storage passed in is left to
// its owner. The Cache must not be used afterwards.
func (c *Cache) Close() error {
	if c.clock != nil {
		c.clock.close()
	}
	if c.owned {
		return c.store.Close()
	}
	return nil
}

// nanos is the current time in Unix nanoseconds.
func (c *Cache) nanos() int64 {
	if c.now != nil {
		return c.now().UnixNano()
	}
	return c.clock.nanos()
}

func (c *Cache) lookup(ctx context.Context, key Key) *Entry {
	e, err := c.store.Get(ctx, key)
	if err != nil {
		c.stats.storeErrors.Add(1)
		return nil
	}
	return e
}

func (c *Cache) set(ctx context.Context, key Key, e *Entry, ttl time.Duration) {
	if err := c.store.Set(ctx, key, e, ttl); err != nil {
		c.stats.storeErrors.Add(1)
	}
}

// Stats are running totals since the Cache was made.
type Stats struct {
	Hits         int64 // fresh authenticated answers served
	NegativeHits int64 // fresh 401/410 answers served
	Misses       int64 // lookups that found nothing fresh
	Fetches      int64 // calls made to allauth (one per coalesced miss)
	Coalesced    int64 // Loads that waited on another's fetch instead of fetching
	StaleServes  int64 // expired sessions served because allauth failed
	Evictions    int64 // Delete calls
	StoreErrors  int64 // store failures and unreadable values, each a miss
	Rejected     int64 // entries a full in-process store declined
	Entries      int   // entries held now, or -1 for a shared store
}

type counters struct {
	// Lookups are counted on every request, from every core: spread by the
	// key's first byte over padded slots, as the in-process store is, so
	// parallel hits of different tokens do not write one cache line.
	lookups                                                 [numShards]lookupCounters
	fetches, coalesced, staleServes, evictions, storeErrors atomic.Int64
}

type lookupCounters struct {
	hits, negativeHits, misses atomic.Int64
	_                          [40]byte
}

// Stats returns the running totals.
func (c *Cache) Stats() Stats {
	s := Stats{
		Fetches:     c.stats.fetches.Load(),
		Coalesced:   c.stats.coalesced.Load(),
		StaleServes: c.stats.staleServes.Load(),
		Evictions:   c.stats.evictions.Load(),
		StoreErrors: c.stats.storeErrors.Load(),
		Entries:     c.store.Len(),
	}
	for i := range c.stats.lookups {
		s.Hits += c.stats.lookups[i].hits.Load()
		s.NegativeHits += c.stats.lookups[i].negativeHits.Load()
		s.Misses += c.stats.lookups[i].misses.Load()
	}
	if m, ok := c.store.(*MemoryStore); ok {
		s.Rejected = m.Rejected()
	}
	return s
}
