package cache

import (
	"context"
	"errors"
	"fmt"
)

// evictChunkKeys is how many keys Evict sends to Redis in one pipelined
// round trip: eight eviction messages' worth. A chunk costs Redis well under
// a millisecond, and a chunk lost to a timeout is a bounded amount of work
// for the retry queue.
const evictChunkKeys = 8 * maxKeysPerMessage

// evictShared deletes chunk from the shared tier and announces it on the
// bus, within one StoreTimeout, even while the store rests. It sets
// present[i] when the shared tier held chunk[i], and returns the keys whose
// delete or announcement failed (all of them on a timeout), with the error.
//
// The deletes come before the announcement, in the same pipeline (a single
// Redis runs a connection's commands in order): an instance that hears the
// message drops its copy and reads the shared tier on its next lookup, which
// must not find the old answer there. Announcing first would let such a
// lookup copy the old answer back into its process, vouched for by the bus.
// On a Cluster the nodes run their parts of the pipeline concurrently, so the
// order holds per node only; heardEviction's second delete covers the rest.
func (c *Cache) evictShared(ctx context.Context, chunk []Key, present []bool) ([]Key, error) {
	ctx, cancel := context.WithTimeout(ctx, c.shared.timeout)
	defer cancel()
	if c.shared.redis == nil {
		return c.evictSharedEach(ctx, chunk)
	}
	skeys := make([]string, len(chunk))
	for i, k := range chunk {
		skeys[i] = c.shared.storageKey(k)
	}
	var channel string
	var msgs [][]byte
	if c.bus != nil {
		channel, msgs = c.bus.channel, c.bus.messages(chunk)
	}
	held, delFailed, pubFailed, err := c.shared.redis.deleteAndPublish(ctx, skeys, channel, msgs)
	var failed []Key
	for i, k := range chunk {
		present[i] = present[i] || held[i]
		if delFailed[i] || pubFailed[i/maxKeysPerMessage] {
			failed = append(failed, k)
		}
	}
	if err = c.shared.note(err); err != nil {
		return failed, fmt.Errorf("cache: evict %d keys (%d failed): %w", len(chunk), len(failed), err)
	}
	return failed, nil
}

// evictSharedEach deletes chunk one key at a time, for Storage drivers other
// than Redis (which have no bus): until ctx's deadline, after which the rest
// fail without being tried.
func (c *Cache) evictSharedEach(ctx context.Context, chunk []Key) ([]Key, error) {
	var failed []Key
	var errs []error
	for i, k := range chunk {
		if ctx.Err() != nil {
			failed = append(failed, chunk[i:]...)
			errs = append(errs, fmt.Errorf("cache: shared store: %d deletes not tried: %w", len(chunk)-i, ctx.Err()))
			break
		}
		if err := c.shared.purge(ctx, k); err != nil {
			failed = append(failed, k)
			errs = append(errs, err)
		}
	}
	return failed, errors.Join(errs...)
}

// deleteMany deletes keys from the shared tier within one StoreTimeout (one
// pipelined round trip on Redis), even while the store rests: it is an
// eviction's delete, which must never be skipped.
func (s *storageStore) deleteMany(ctx context.Context, keys []Key) error {
	skeys := make([]string, len(keys))
	for i, k := range keys {
		skeys[i] = s.storageKey(k)
	}
	return s.run(ctx, func(ctx context.Context) error {
		if s.redis != nil {
			_, _, _, err := s.redis.deleteAndPublish(ctx, skeys, "", nil)
			return err
		}
		var errs []error
		for _, k := range skeys {
			errs = append(errs, s.storage.Delete(k))
		}
		return errors.Join(errs...)
	})
}

// redeleteHeard deletes keys that another instance evicted from the shared
// tier again. The second delete closes a window: a lookup here that wrote
// allauth's earlier answer to the shared tier after the other instance
// deleted it, but before its message arrived, would otherwise keep that
// answer there until its TTL. A later answer (a re-check after the eviction)
// only costs one more lookup.
//
// The delete is tried even while the store rests after failures. If it
// fails, or other deletes are already waiting (the store is failing: the
// bus must not wait a timeout per message), the keys go to the retry queue.
// After the delete the in-process copies are dropped again: a lookup here
// that read the old value between the first drop and the delete must not
// keep it.
func (c *Cache) redeleteHeard(ctx context.Context, keys []Key) {
	if c.shared == nil {
		return
	}
	if c.pending != nil && c.pending.len() > 0 {
		c.pending.add(false, keys)
		return
	}
	if err := c.shared.deleteMany(ctx, keys); err != nil {
		c.stats.storeErrors.Add(1)
		if c.pending != nil {
			c.pending.add(false, keys)
		}
		return
	}
	for _, k := range keys {
		c.dropLocal(k)
	}
}
