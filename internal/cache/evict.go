package cache

import (
	"context"
	"errors"
)

// Evict drops keys from both tiers and tells the other instances (with
// Redis) to drop them from theirs, so that the next request for any of them
// asks allauth. It returns how many held an entry (in this process, or in
// Redis by DEL's reply; other Storage drivers do not say), and the shared
// store's errors; every key is dropped from the in-process tier even when the
// shared tier fails.
//
// The shared tier is reached in one pipelined round trip per chunk of
// evictChunkKeys keys, each bounded by StoreTimeout, and is tried even while
// the store rests after failures: an eviction is never skipped. The keys
// whose delete or announcement failed go to the retry queue.
func (c *Cache) Evict(ctx context.Context, keys ...Key) (int, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	present := make([]bool, len(keys))
	for i, k := range keys {
		c.stats.evictions.Add(1)
		present[i] = c.dropLocal(k)
	}
	var errs []error
	var failed []Key
	if c.shared != nil {
		for start := 0; start < len(keys); start += evictChunkKeys {
			end := min(start+evictChunkKeys, len(keys))
			f, err := c.evictShared(ctx, keys[start:end], present[start:end])
			if err != nil {
				c.stats.storeErrors.Add(1)
				errs = append(errs, err)
			}
			failed = append(failed, f...)
			// Again after the delete: a lookup here that read the value in
			// between must not keep it (this instance ignores its own
			// message, so nothing else would drop it).
			for _, k := range keys[start:end] {
				c.dropLocal(k)
			}
		}
	}
	c.retryEviction(failed)
	n := 0
	for _, p := range present {
		if p {
			n++
		}
	}
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

// heardEviction applies another instance's eviction of keys (one message):
// it drops the in-process copies. The bus then has redeleteHeard delete them
// from the shared tier again.
func (c *Cache) heardEviction(keys []Key) {
	for _, k := range keys {
		c.dropLocal(k)
	}
}
