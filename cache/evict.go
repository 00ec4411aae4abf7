package cache

import (
	"context"
	"errors"
)

// Evict drops keys from both tiers and tells the other instances (with
// Redis) to drop them from theirs, so that the next request for any of them
// asks allauth. It returns how many held an entry (in either tier), and the
// shared store's errors; every key is dropped from the in-process tier even
// when the shared tier fails.
func (c *Cache) Evict(ctx context.Context, keys ...Key) (int, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	var n int
	var errs []error
	var retry []Key
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
				retry = append(retry, k)
			}
			// Again after the delete: a lookup here that read the value in
			// between must not keep it (this instance ignores its own
			// message, so nothing else would drop it).
			c.dropLocal(k)
		}
		if present {
			n++
		}
	}
	if c.bus != nil {
		if err := c.bus.publish(ctx, keys); err != nil {
			errs = append(errs, err)
			retry = keys
		}
	}
	c.retryEviction(retry)
	return n, errors.Join(errs...)
}

// dropLocal removes key from the in-process tier (for Evict and for eviction
// messages from other instances) and reports whether it was there.
func (c *Cache) dropLocal(key Key) bool {
	c.evictGen[key[0]].Add(1)
	e := c.local.get(key)
	c.local.del(key)
	return e != nil
}

// heardEviction applies another instance's eviction of key: it drops the
// in-process copy, and deletes key from the shared tier again. The second
// delete closes a window: a lookup here that wrote allauth's earlier answer
// to the shared tier after the other instance deleted it, but before its
// message arrived, would otherwise keep that answer there until its TTL. A
// later answer (a re-check after the eviction) only costs one more lookup.
//
// The delete is tried even while the store rests after failures. If it
// fails, or other deletes are already waiting (the store is failing: the
// listener must not wait a timeout per key), the key goes to the retry
// queue.
func (c *Cache) heardEviction(ctx context.Context, key Key) {
	c.dropLocal(key)
	if c.shared == nil {
		return
	}
	if c.pending != nil && c.pending.len() > 0 {
		c.retryPurge(key)
		return
	}
	if err := c.shared.purge(ctx, key); err != nil {
		c.stats.storeErrors.Add(1)
		c.retryPurge(key)
		return
	}
	// Again after the delete: a lookup here that read the value between the
	// first drop and the delete must not keep it (see keepLocal).
	c.dropLocal(key)
}
