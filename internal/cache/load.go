package cache

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/allauthgo/headless/introspect"
)

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
		return c.fill(context.WithoutCancel(ctx), key, notAfter, fetch, false), nil
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
// leader may have filled it), then the shared tier, then allauth. A refresh
// (see refresh.go) passes over an answer that is itself due for one.
func (c *Cache) fill(ctx context.Context, key Key, notAfter time.Time, fetch Fetch, refresh bool) Result {
	gen := c.evictGen[key[0]].Load()
	checked := c.nanos() // before the shared read: see bus.vouches
	due := func(e *entry) bool { return refresh && e.refreshAt != 0 && checked >= e.refreshAt }
	prev := c.local.get(key)
	if prev != nil && c.usable(prev, checked) && !due(prev) {
		return prev.result(TierLocal)
	}
	// unread: the shared tier could not be read, so it may hold a session
	// this instance does not know of.
	unread := false
	if c.shared != nil {
		e, ok := c.readShared(ctx, key, checked)
		unread = !ok
		if ok {
			// The shared tier is the truth: nothing there means evicted or
			// expired, so an in-process copy is no stale fallback either.
			if e == nil && prev != nil {
				c.local.del(key)
			}
			prev = e
			if e != nil && checked < e.FreshUntil && !due(e) {
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
			if notAfter.IsZero() { // a JWT's session ends at its exp: no refresh helps
				e.refreshAt = c.refresh.refreshAt(now, fresh)
			}
			c.keep(ctx, key, e, started, gen)
			c.indexUser(ctx, sess.User.ID, key, time.Duration(e.keepUntil()-now))
		}
		return Result{Session: sess}
	case errors.As(err, &authErr):
		c.refused(ctx, key, authErr.Status, now, started, prev != nil && !prev.negative(), unread)
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
	e.refreshAt = c.refresh.refreshAt(e.ObtainedAt, e.FreshUntil)
	writerStale := e.StaleUntil
	e.StaleUntil = 0
	if c.staleIfError > 0 && writerStale > 0 {
		e.StaleUntil = min(writerStale, e.ObtainedAt+int64(c.ttl+c.staleIfError))
	}
	return e, true
}

// keep stores a fresh authenticated answer from allauth in both tiers,
// unless an eviction happened since gen (the answer may predate it). An
// eviction that comes in while the write is on its way may have deleted
// before the write lands: then the key is evicted again, in both tiers and on
// the other instances (see redoEviction).
func (c *Cache) keep(ctx context.Context, key Key, e *entry, checked int64, gen uint64) {
	if c.evictGen[key[0]].Load() != gen {
		return
	}
	if c.shared != nil {
		// A write that timed out may still land, so the re-check below
		// runs whatever Set returned.
		if err := c.shared.Set(ctx, key, e, time.Duration(e.keepUntil()-c.nanos())); err != nil {
			c.stats.storeErrors.Add(1)
		}
		if c.evictGen[key[0]].Load() != gen {
			c.redoEviction(ctx, key)
			return
		}
	}
	c.keepLocal(key, e, checked, gen)
}

// keepLocal stores e in the in-process tier, unless an eviction happened
// since gen; checked is when the shared tier last vouched for it. An
// eviction that lands while e is being stored takes it out again.
func (c *Cache) keepLocal(key Key, e *entry, checked int64, gen uint64) {
	if c.shared != nil {
		e.checkedAt = checked
	}
	if c.evictGen[key[0]].Load() != gen {
		return
	}
	if ttl := e.keepUntil() - c.nanos(); ttl > 0 {
		c.local.set(key, e, time.Duration(ttl))
		// dropLocal counts before it deletes: if the delete ran before the
		// set, the count has moved.
		if c.evictGen[key[0]].Load() != gen {
			c.local.del(key)
		}
	}
}

// refused stores allauth's 401/410 for key and makes sure that no
// authenticated answer for key outlives it in either tier, or StaleIfError
// would serve a logged-out session. A refusal is always safe to store, so no
// eviction suppresses it (an eviction of another key of the same stripe
// would otherwise leave the old session in place).
//
// hadSession says this instance held a session for key; unread that the
// shared tier could not be read (it may hold one). When the negative answer
// cannot be written over it (a full Redis refuses writes, not deletes), a
// known session is deleted at once (even while the store rests); a possible
// one, and a delete that failed, go to the retry queue, so a flood of
// unknown tokens during an outage costs no waits.
func (c *Cache) refused(ctx context.Context, key Key, status int, now, checked int64, hadSession, unread bool) {
	stored := false
	if c.negTTL > 0 {
		e := &entry{Status: status, ObtainedAt: now, FreshUntil: now + int64(c.negTTL)}
		if c.shared != nil {
			e.checkedAt = checked
			if err := c.shared.Set(ctx, key, e, c.negTTL); err != nil {
				c.stats.storeErrors.Add(1)
			} else {
				stored = true
			}
		}
		// Replaces a session held in process, whatever the stripe's count.
		c.local.set(key, e, c.negTTL)
	} else {
		c.local.del(key)
	}
	if stored || c.shared == nil {
		return
	}
	switch {
	case hadSession:
		if err := c.shared.purge(ctx, key); err != nil {
			c.stats.storeErrors.Add(1)
			c.retryPurge(key)
		}
	case unread:
		c.retryPurge(key)
	}
}

// redoEviction evicts key again after a write of this instance may have
// landed after an eviction's delete: from the shared tier (even while the
// store rests), from this process, and from the other instances, which may
// have read the value meanwhile. What fails goes to the retry queue.
func (c *Cache) redoEviction(ctx context.Context, key Key) {
	failed, err := c.evictShared(ctx, []Key{key}, make([]bool, 1))
	c.dropLocal(key)
	if err != nil {
		c.stats.storeErrors.Add(1)
	}
	c.retryEviction(failed)
}
