package cache

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// Refresh ahead: an authenticated entry that is used during the last part of
// its life (Config.RefreshAhead, by default the last fifth of TTL, see
// refreshAt) is asked
// of allauth again in the background while the request that noticed it is
// answered from the cache at once. A token used at least once per fifth of
// TTL thus never waits for allauth, at the cost of at most 1.25 lookups per
// TTL (one every 0.8 TTL) instead of one; an entry nobody uses in its last
// fifth is not refreshed and expires as before.
//
// A refresh is an ordinary coalesced fill (one per key at a time, sharing
// the flight of any lookup of the same key), so everything that guards a
// lookup guards it too: the eviction guard (an eviction racing a refresh is
// not undone by it), the shared tier (a value another instance refreshed is
// taken instead of asking allauth again), and the client's slots and breaker.
// An answer of 401 or 410 replaces the entry; a failure leaves it to expire
// as it would have (StaleIfError applies as before). A refresh never extends
// what allauth said: its answer is as fresh as the refresh, so the longest a
// logout goes unnoticed without an eviction stays TTL.

// DefaultMaxRefreshes bounds the refreshes in flight when Config.MaxRefreshes
// is 0.
const DefaultMaxRefreshes = 32

// refresher runs the background refreshes of one Cache.
type refresher struct {
	window int64           // nanoseconds before FreshUntil a hit asks for one; 0: off
	slots  chan struct{}   // bounds the refreshes in flight
	ctx    context.Context //nolint:containedctx // the refreshes' lifetime: it ends at Close, like the Cache
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newRefresher(window time.Duration, maxInFlight int) *refresher {
	r := &refresher{}
	if window <= 0 {
		return r
	}
	if maxInFlight <= 0 {
		maxInFlight = DefaultMaxRefreshes
	}
	r.window = int64(window)
	r.slots = make(chan struct{}, maxInFlight)
	// Refreshes belong to no request: they end when the Cache closes.
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r
}

// refreshAt is when a hit on an authenticated entry fresh until freshUntil
// and obtained at obtainedAt starts a refresh, or 0 for never: at a random
// point of the first half of the window, so that tokens first seen together
// (a deploy, a burst of logins) do not stay in step and ask allauth at once,
// while the second half is left for a refresh that had to wait for a slot.
func (r *refresher) refreshAt(obtainedAt, freshUntil int64) int64 {
	if r.window == 0 {
		return 0
	}
	return max(freshUntil-r.window+rand.Int64N(r.window/4+1), obtainedAt+1) //nolint:gosec // jitter, not a secret
}

// Refresh starts the background refresh that a hit asked for (Result.Refresh)
// and returns at once. fetch must not hold anything of the request (its
// buffers may be reused): it runs after the request has been answered. The
// refresh is skipped, and may be asked for again by a later hit, when
// MaxRefreshes refreshes are already in flight; ready, if not nil, is asked
// first and may refuse it too (the client's breaker is open, say). Refresh
// does nothing for a Result that did not ask for one.
func (c *Cache) Refresh(key Key, hit Result, ready func() bool, fetch Fetch) {
	e := hit.refresh
	if e == nil {
		return
	}
	if ready != nil && !ready() {
		e.refreshing.Store(false)
		c.stats.refreshSkips.Add(1)
		return
	}
	select {
	case c.refresh.slots <- struct{}{}:
	default:
		e.refreshing.Store(false)
		c.stats.refreshSkips.Add(1)
		return
	}
	c.stats.refreshes.Add(1)
	c.refresh.wg.Add(1)
	go func() {
		defer c.refresh.wg.Done()
		defer func() { <-c.refresh.slots }()
		ch := c.group.DoChan(string(key[:]), func() (any, error) {
			return c.fill(c.refresh.ctx, key, time.Time{}, fetch, true), nil
		})
		// Close cancels ctx, which ends the fetch: the wait is short then.
		res := <-ch
		// The flight may have been a lookup's that found the entry still
		// usable and asked nobody: let a later hit try again.
		if r := res.Val.(Result); r.Tier == TierLocal { //nolint:errcheck // fill always returns a Result
			e.refreshing.Store(false)
		}
	}()
}

// close cancels the refreshes in flight and waits for them.
func (r *refresher) close() {
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
}
