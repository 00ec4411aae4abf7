package cache

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/allauthgo/headless/introspect"
)

// Defaults for [Config].
const (
	DefaultTTL         = 30 * time.Second
	DefaultNegativeTTL = 5 * time.Second
	DefaultRecheck     = time.Second
)

// maxClockSkew is how far in the future a shared value's ObtainedAt may lie
// (clocks of two instances differ a little) before the value is not trusted.
const maxClockSkew = time.Second

// MinSecretLen is the shortest Config.Secret accepted.
const MinSecretLen = 16

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
	// long ago be served while allauth fails (not after a 401 or 410). The
	// result says it was stale. Default 0: off.
	StaleIfError time.Duration
	// MaxEntries bounds the in-process tier (each of its authenticated and
	// negative tables). Default 100,000.
	MaxEntries int
	// Storage, if set, is a second tier shared by several instances (e.g.
	// gofiber/storage/redis). The in-process tier stays in front of it: a
	// miss there reads Storage, a miss there asks allauth and writes both.
	// With gofiber/storage's Redis driver, evictions reach every instance's
	// in-process tier by Redis pub/sub; otherwise (or while the subscription
	// is down) an in-process copy of a shared answer is rechecked against
	// Storage after Recheck.
	Storage Storage
	// Prefix is put before every key written to Storage, and names the
	// eviction channel. Two deployments that share a Storage and reach
	// their allauth by the same URL (staging and production, say) must set
	// different prefixes. Default "allauthgo:".
	Prefix string
	// Secret, if set (at least MinSecretLen bytes), authenticates each value
	// written to Storage together with its key (HMAC-SHA256): a tampered or
	// planted value, or one copied under another key, is a miss. Without it,
	// whoever can write to Storage can log in as anyone.
	Secret []byte
	// Recheck bounds how long an in-process copy of a shared answer is
	// served without the shared tier vouching for it: when eviction
	// messages cannot be relied on (no pub/sub, or the subscription is
	// down), it is how late an eviction on another instance is seen.
	// Default 1 s.
	Recheck time.Duration
	// Realm names the allauth server whose user IDs the user index holds
	// (its origin and mount), so that two allauth servers sharing a Storage
	// keep apart indexes. A Cache serves the users of one allauth server.
	Realm string
	// StoreTimeout bounds each Storage operation. Default 50 ms.
	StoreTimeout time.Duration
	// Now is the clock; tests inject one. By default the Cache reads a clock
	// that one goroutine updates every 5 ms, since reading the system clock
	// on every hit would cost more than the rest of the hit.
	Now func() time.Time
	// UserIndex keeps a user → keys index, so that DeleteUser can drop
	// every entry of one user (see [MaxKeysPerUser] for its bounds).
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
	// because allauth failed; Cause is then that failure.
	Stale bool
	// Cause is, with Stale, the fetch's error that the stale session stands
	// in for; nil otherwise.
	Cause error
	// Tier is the tier that answered: TierLocal (Get, or an in-process entry
	// that an earlier fetch filled while this Load waited its turn),
	// TierShared, or TierNone when both missed and the fetch ran (whatever
	// it returned, a stale session included).
	Tier Tier
	// Coalesced is true when this Load waited on a fetch that another
	// caller's Load started, instead of starting its own.
	Coalesced bool
}

// Tier names where an answer came from (Result.Tier).
type Tier uint8

// The tiers.
const (
	// TierNone: no tier answered; the fetch ran.
	TierNone Tier = iota
	// TierLocal: the in-process tier.
	TierLocal
	// TierShared: the shared Storage.
	TierShared
)

// String returns "none", "local" or "shared".
func (t Tier) String() string {
	switch t {
	case TierLocal:
		return "local"
	case TierShared:
		return "shared"
	default:
		return "none"
	}
}

// Cache serves allauth's answers from an in-process tier and, optionally, a
// shared one, and coalesces concurrent misses for one key into one fetch. It
// is safe for concurrent use.
type Cache struct {
	local        *memoryStore
	shared       *storageStore // nil without Storage
	bus          *bus          // nil unless Storage is Redis
	ttl          time.Duration
	negTTL       time.Duration
	staleIfError time.Duration
	recheck      int64            // nanoseconds
	now          func() time.Time // injected clock, or nil
	clock        *coarseClock     // used when now is nil
	group        singleflight.Group
	users        userIndexer // nil without Config.UserIndex
	realm        string
	// evictions counts Delete calls and eviction messages; a fill that saw
	// it change while it fetched keeps its answer to itself, so that an
	// eviction racing a lookup is not undone by the lookup's write.
	evictGen atomic.Uint64
	stats    counters
}

// New returns a Cache configured by cfg. It panics on a Secret shorter than
// MinSecretLen, as a config that cannot work.
func New(cfg Config) *Cache {
	if len(cfg.Secret) > 0 && len(cfg.Secret) < MinSecretLen {
		panic(fmt.Sprintf("cache: Config.Secret must be at least %d bytes", MinSecretLen))
	}
	c := &Cache{
		ttl:          cfg.TTL,
		negTTL:       cfg.NegativeTTL,
		staleIfError: cfg.StaleIfError,
		recheck:      int64(cfg.Recheck),
		now:          cfg.Now,
		realm:        cfg.Realm,
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
	if c.recheck <= 0 {
		c.recheck = int64(DefaultRecheck)
	}
	if c.now == nil {
		c.clock = startClock()
	}
	c.local = newMemoryStore(cfg.MaxEntries)
	if cfg.Storage != nil {
		c.shared = newStorageStore(cfg.Storage, cfg.Prefix, cfg.StoreTimeout, cfg.Secret)
		c.bus = startBus(cfg.Storage, c.shared.prefix+"evict", time.Duration(c.recheck), c.shared.timeout, c.nanos, c.dropLocal)
	}
	if cfg.UserIndex {
		if c.shared != nil {
			c.users = c.shared
		} else {
			c.users = c.local
		}
	}
	return c
}

// Get returns a fresh answer from the in-process tier: a session, or
// allauth's cached 401/410 in Result.Err. ok is false on a miss; Load then
// reads the shared tier (once for all concurrent callers) and, failing
// that, allauth. Get never leaves the process and allocates nothing.
func (c *Cache) Get(_ context.Context, key Key) (r Result, ok bool) {
	e := c.local.get(key)
	if e == nil || !c.usable(e, c.nanos()) {
		c.stats.lookups[key[0]&(numShards-1)].misses.Add(1)
		return Result{}, false
	}
	if e.negative() {
		c.stats.lookups[key[0]&(numShards-1)].negativeHits.Add(1)
		return Result{Err: e.authError(), Tier: TierLocal}, true
	}
	c.stats.lookups[key[0]&(numShards-1)].hits.Add(1)
	return Result{Session: e.Session, Tier: TierLocal}, true
}

// usable reports whether an in-process entry may be served fresh at now.
// An in-process copy of a shared answer also needs a recent word from the
// shared tier: the store itself within Recheck, or an eviction channel that
// was listening when the copy was made and has proven itself since.
func (c *Cache) usable(e *entry, now int64) bool {
	if now >= e.FreshUntil {
		return false
	}
	if e.checkedAt == 0 || now-e.checkedAt < c.recheck {
		return true
	}
	return c.bus != nil && c.bus.vouches(e.checkedAt, now, c.recheck)
}

// Remember keeps an authenticated answer in the in-process tier only, for
// at most TTL and never until until (a verified JWT's answer, until its exp:
// checking it again costs more than the whole request, and no other instance
// needs it). Delete drops it.
func (c *Cache) Remember(key Key, s *introspect.Session, until time.Time) {
	now := c.nanos()
	// The coarse clock may lag by its resolution: stop that much early.
	fresh := min(now+int64(c.ttl), until.UnixNano()-int64(clockResolution))
	if ttl := fresh - now; ttl > 0 {
		e := &entry{Session: s, Status: http.StatusOK, ObtainedAt: now, FreshUntil: fresh}
		c.local.set(key, e, time.Duration(ttl))
	}
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
		r := res.Val.(Result) //nolint:errcheck // fill always returns a Result
		if !leader {
			c.stats.coalesced.Add(1)
			r.Coalesced = true
		}
		return r
	case <-ctx.Done():
		return Result{Err: &introspect.UpstreamError{Reason: "gave up waiting", Err: ctx.Err()}}
	}
}

// fill runs once per coalesced miss: the in-process tier again (an earlier
// leader may have filled it), then the shared tier, then allauth.
func (c *Cache) fill(ctx context.Context, key Key, notAfter time.Time, fetch Fetch) Result {
	gen := c.evictGen.Load()
	checked := c.nanos() // before the shared read: see bus.vouches
	prev := c.local.get(key)
	if prev != nil && c.usable(prev, checked) {
		return prev.result(TierLocal)
	}
	if c.shared != nil {
		if e, ok := c.readShared(ctx, key, checked); ok {
			// The shared tier is the truth: nothing there means evicted or
			// expired, so an in-process copy is no stale fallback either.
			if e == nil && prev != nil {
				c.local.del(key)
			}
			prev = e
			if e != nil && checked < e.FreshUntil {
				c.keepLocal(key, e, checked, gen)
				return e.result(TierShared)
			}
		}
	}

	c.stats.fetches.Add(1)
	started := checked
	sess, err := fetch(ctx)
	now := c.nanos()
	var authErr *introspect.AuthError
	switch {
	case err == nil && sess != nil:
		fresh, stale := now+int64(c.ttl), int64(0)
		if c.staleIfError > 0 {
			stale = fresh + int64(c.staleIfError)
		}
		if !notAfter.IsZero() {
			// Nothing is kept past notAfter, not even as a stale fallback.
			fresh = min(fresh, notAfter.UnixNano())
			stale = min(stale, notAfter.UnixNano())
		}
		if fresh > now {
			e := &entry{Session: sess, Status: http.StatusOK, ObtainedAt: now, FreshUntil: fresh, StaleUntil: stale}
			c.keep(ctx, key, e, started, gen)
			c.indexUser(ctx, sess.User.ID, key, time.Duration(e.keepUntil()-now))
		}
		return Result{Session: sess}
	case errors.As(err, &authErr):
		// allauth said no: a positive answer kept for this key must go from
		// both tiers, even when the negative answer cannot be written (a
		// full Redis refuses the write, not the delete; a resting store is
		// tried anyway), or StaleIfError would serve a logged-out session.
		// Only a key known to have held one pays for the forced delete, so a
		// flood of unknown tokens during an outage costs no waits.
		hadSession := prev != nil && !prev.negative()
		if c.negTTL > 0 {
			e := &entry{Status: authErr.Status, ObtainedAt: now, FreshUntil: now + int64(c.negTTL)}
			if !c.keep(ctx, key, e, started, gen) && hadSession {
				c.purgeShared(ctx, key)
			}
		} else if hadSession {
			c.local.del(key)
			c.purgeShared(ctx, key)
		}
		return Result{Err: err}
	default:
		if err == nil {
			err = &introspect.UpstreamError{Reason: "fetch returned neither a session nor an error"}
		}
		if prev != nil && !prev.negative() && now < prev.StaleUntil &&
			(notAfter.IsZero() || now < notAfter.UnixNano()) {
			c.stats.staleServes.Add(1)
			return Result{Session: prev.Session, Stale: true, Cause: err}
		}
		return Result{Err: err}
	}
}

// result is what an entry of tier t answers.
func (e *entry) result(t Tier) Result {
	if e.negative() {
		return Result{Err: e.authError(), Tier: t}
	}
	return Result{Session: e.Session, Tier: t}
}

// readShared reads key from the shared tier and limits the value by this
// reader's own TTLs, whoever wrote it. A value written "in the future" is
// not trusted; an unreadable or forged one is counted and is a miss. ok is
// false when the store could not be read at all.
func (c *Cache) readShared(ctx context.Context, key Key, now int64) (e *entry, ok bool) {
	c.stats.sharedReads.Add(1)
	e, err := c.shared.Get(ctx, key)
	switch {
	case errors.Is(err, errCorrupt) || errors.Is(err, errForged):
		c.stats.storeErrors.Add(1)
		return nil, true
	case err != nil:
		c.stats.storeErrors.Add(1)
		return nil, false
	case e == nil:
		return nil, true
	case e.ObtainedAt > now+int64(maxClockSkew):
		c.stats.storeErrors.Add(1)
		return nil, true
	}
	if e.negative() {
		e.FreshUntil = min(e.FreshUntil, e.ObtainedAt+int64(c.negTTL))
		return e, true
	}
	e.FreshUntil = min(e.FreshUntil, e.ObtainedAt+int64(c.ttl))
	writerStale := e.StaleUntil
	e.StaleUntil = 0
	if c.staleIfError > 0 && writerStale > 0 {
		e.StaleUntil = min(writerStale, e.ObtainedAt+int64(c.ttl+c.staleIfError))
	}
	return e, true
}

// keep stores a fresh answer from allauth in both tiers, unless an eviction
// happened since gen (the answer may predate it). It reports whether the
// shared tier (if any) took it.
func (c *Cache) keep(ctx context.Context, key Key, e *entry, checked int64, gen uint64) bool {
	if c.evictGen.Load() != gen {
		return true
	}
	ok := true
	if c.shared != nil {
		if err := c.shared.Set(ctx, key, e, time.Duration(e.keepUntil()-c.nanos())); err != nil {
			c.stats.storeErrors.Add(1)
			ok = false
		}
	}
	c.keepLocal(key, e, checked, gen)
	return ok
}

// keepLocal stores e in the in-process tier; checked is when the shared
// tier last vouched for it.
func (c *Cache) keepLocal(key Key, e *entry, checked int64, gen uint64) {
	if c.shared != nil {
		e.checkedAt = checked
	}
	if c.evictGen.Load() != gen {
		return
	}
	if ttl := e.keepUntil() - c.nanos(); ttl > 0 {
		c.local.set(key, e, time.Duration(ttl))
	}
}

func (c *Cache) purgeShared(ctx context.Context, key Key) {
	if c.shared == nil {
		return
	}
	if err := c.shared.purge(ctx, key); err != nil {
		c.stats.storeErrors.Add(1)
	}
}

// Delete drops key from both tiers and tells the other instances (with
// Redis) to drop it from theirs, so the next request asks allauth. It
// returns the shared store's error, if any.
func (c *Cache) Delete(ctx context.Context, key Key) error {
	_, err := c.Drop(ctx, key)
	return err
}

// Drop is Delete for several keys; it returns how many of them held an
// entry (in either tier). Every key is dropped from the in-process tier even
// when the shared tier fails.
func (c *Cache) Drop(ctx context.Context, keys ...Key) (int, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	c.evictGen.Add(1)
	var n int
	var errs []error
	for _, k := range keys {
		c.stats.evictions.Add(1)
		present := c.dropLocal(k)
		if c.shared != nil {
			if e, err := c.shared.Get(ctx, k); err == nil && e != nil {
				present = true
			}
			if err := c.shared.Delete(ctx, k); err != nil {
				c.stats.storeErrors.Add(1)
				errs = append(errs, err)
			}
		}
		if present {
			n++
		}
	}
	if c.bus != nil {
		if err := c.bus.publish(ctx, keys); err != nil {
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// dropLocal removes key from the in-process tier (for Drop and for eviction
// messages from other instances) and reports whether it was there.
func (c *Cache) dropLocal(key Key) bool {
	c.evictGen.Add(1)
	e := c.local.get(key)
	c.local.del(key)
	return e != nil
}

// Close stops the Cache's goroutines (clock, janitor, eviction listener).
// A Storage passed in is left to its owner. The Cache must not be used
// afterwards.
func (c *Cache) Close() error {
	if c.bus != nil {
		c.bus.close()
	}
	if c.clock != nil {
		c.clock.close()
	}
	return c.local.Close()
}

// nanos is the current time in Unix nanoseconds.
func (c *Cache) nanos() int64 {
	if c.now != nil {
		return c.now().UnixNano()
	}
	return c.clock.nanos()
}
