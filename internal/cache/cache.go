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
	// UserIndex keeps a user → keys index, so that EvictUser can drop
	// every entry of one user (see [MaxKeysPerUser] for its bounds).
	UserIndex bool
	// RefreshAhead is how long before an authenticated answer expires a hit
	// on it asks for a background refresh (Result.Refresh, Cache.Refresh).
	// 0 means TTL/5; a negative value turns refreshing off.
	RefreshAhead time.Duration
	// MaxRefreshes bounds the refreshes in flight; a hit that would start
	// one more is served without. Default DefaultMaxRefreshes.
	MaxRefreshes int
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
	// Refresh is true when Get served an entry in the last part of its life
	// (Config.RefreshAhead) and no refresh of it has started yet: pass the
	// Result to Refresh. At most one hit per entry sees it.
	Refresh bool

	refresh *entry // the entry to refresh, with Refresh
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
	// evictGen counts the evictions of the keys of each stripe (by the
	// key's first byte); a fill that saw its stripe's count change while it
	// fetched keeps its answer to itself, so that an eviction racing a
	// lookup is not undone by the lookup's write. Striping keeps evictions of
	// other keys (frequent under many logouts) from costing fills their
	// answer.
	evictGen [256]atomic.Uint64
	pending  *pendingQueue // evictions and purges to retry; nil without Storage
	refresh  *refresher
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
	refreshAhead := cfg.RefreshAhead
	if refreshAhead == 0 {
		refreshAhead = c.ttl / 5
	}
	c.refresh = newRefresher(min(refreshAhead, c.ttl), cfg.MaxRefreshes)
	c.local = newMemoryStore(cfg.MaxEntries)
	if cfg.Storage != nil {
		c.shared = newStorageStore(cfg.Storage, cfg.Prefix, cfg.StoreTimeout, cfg.Secret)
		c.bus = startBus(c.shared.redis, c.shared.prefix+"evict", time.Duration(c.recheck), c.shared.timeout, c.nanos, c.heardEviction, c.redeleteHeard)
		c.startPending(max(time.Duration(c.recheck)/4, time.Millisecond))
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
// that, allauth. Get never leaves the process and allocates nothing. A
// verified JWT's entry (RememberToken) is never Get's answer: only
// GetToken, given the token itself, serves it.
func (c *Cache) Get(_ context.Context, key Key) (r Result, ok bool) {
	e, now := c.local.get(key), c.nanos()
	if e == nil || e.proof != "" || !c.usable(e, now) {
		c.stats.lookups[key[0]&(numShards-1)].misses.Add(1)
		return Result{}, false
	}
	if e.negative() {
		c.stats.lookups[key[0]&(numShards-1)].negativeHits.Add(1)
		return Result{Err: e.authError(), Tier: TierLocal}, true
	}
	c.stats.lookups[key[0]&(numShards-1)].hits.Add(1)
	if e.refreshAt != 0 && now >= e.refreshAt && !e.refreshing.Load() && e.refreshing.CompareAndSwap(false, true) {
		return Result{Session: e.Session, Tier: TierLocal, Refresh: true, refresh: e}, true
	}
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

// RememberToken keeps a verified JWT's answer in the in-process tier only,
// for at most TTL and never until until (its exp: checking it again costs
// more than the whole request, and no other instance needs it), under key
// (normally NewTokenKey(scope, token)). The entry keeps the token (see
// tokenProof), so that GetToken serves it to that token only. token is
// copied. ForgetToken drops the entry.
func (c *Cache) RememberToken(key Key, token []byte, s *introspect.Session, until time.Time) {
	now := c.nanos()
	// The coarse clock may lag by its resolution: stop that much early.
	fresh := min(now+int64(c.ttl), until.UnixNano()-int64(clockResolution))
	if ttl := fresh - now; ttl > 0 {
		e := &entry{Session: s, Status: http.StatusOK, ObtainedAt: now, FreshUntil: fresh, proof: tokenProof(token)}
		c.local.set(key, e, time.Duration(ttl))
	}
}

// GetToken returns the session RememberToken kept for token under key, if it
// is fresh and was remembered for exactly these bytes. Any other token is a
// miss, even one under the same key: only a miss (a verification) is what a
// shared key can cost. It allocates nothing.
func (c *Cache) GetToken(key Key, token []byte) (*introspect.Session, bool) {
	e := c.local.get(key)
	if e == nil || e.proof == "" || !proves(e.proof, token) || !c.usable(e, c.nanos()) {
		c.stats.lookups[key[0]&(numShards-1)].misses.Add(1)
		return nil, false
	}
	c.stats.lookups[key[0]&(numShards-1)].hits.Add(1)
	return e.Session, true
}

// ForgetToken drops a RememberToken entry from the in-process tier and
// reports whether it was there. Nothing is sent to Storage or to other
// instances: a token key means nothing outside this process (NewTokenKey).
func (c *Cache) ForgetToken(key Key) bool { return c.dropLocal(key) }

// Close stops the Cache's goroutines (clock, janitor, eviction listener,
// refreshes in flight, retry queue) and closes its own Redis connections.
// Evictions still waiting to be retried are given up (they end at their
// TTL). A Storage passed in is left to its owner. The Cache must not be used
// afterwards.
func (c *Cache) Close() error {
	c.refresh.close()
	if c.pending != nil {
		c.pending.close()
	}
	if c.bus != nil {
		c.bus.close()
	}
	var err error
	if c.shared != nil {
		err = c.shared.close()
	}
	if c.clock != nil {
		c.clock.close()
	}
	return errors.Join(err, c.local.Close())
}

// nanos is the current time in Unix nanoseconds.
func (c *Cache) nanos() int64 {
	if c.now != nil {
		return c.now().UnixNano()
	}
	return c.clock.nanos()
}
