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
	if c.shared != nil {
		if e, ok := c.readShared(ctx, key, checked); ok {
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
	e.refreshAt = c.refresh.refreshAt(e.ObtainedAt, e.FreshUntil)
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
	if c.evictGen[key[0]].Load() != gen {
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
	if c.evictGen[key[0]].Load() != gen {
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
