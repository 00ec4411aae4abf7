package cache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of the retry queue. Explicit evictions (Evict, EvictUser, the
// webhook) and speculative purges (deletes that allauth's 401/410 or a heard
// eviction asked for, when the shared tier could not be reached) are kept
// apart, each with its own bound, so that a flood of unknown tokens during an
// outage can never push an eviction out.
const (
	maxPendingEvictions = 100_000
	maxPendingPurges    = 10_000
	// pendingBatch is how many keys one pass takes from the queue before it
	// looks at Close again.
	pendingBatch = 1024
)

// pendingQueue holds the keys whose delete from the shared tier (and, for an
// eviction, whose message to the other instances) failed, until a background
// goroutine gets them through. Each key is held once; when a class is full,
// new keys are dropped and counted.
type pendingQueue struct {
	mu       sync.Mutex
	evict    map[Key]struct{} // delete, drop in process, tell the others
	purge    map[Key]struct{} // delete, drop in process
	maxEvict int
	maxPurge int
	dropped  atomic.Int64
	size     atomic.Int64 // len(evict) + len(purge), for Stats without the lock

	wake   chan struct{} // a key was added to an empty queue
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// startPending starts c's retry queue (only with a shared tier): a goroutine
// that, while keys wait, retries them every interval until they get through,
// and stops at Close.
func (c *Cache) startPending(interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	q := &pendingQueue{
		evict:    make(map[Key]struct{}),
		purge:    make(map[Key]struct{}),
		maxEvict: maxPendingEvictions,
		maxPurge: maxPendingPurges,
		wake:     make(chan struct{}, 1),
		cancel:   cancel,
	}
	c.pending = q
	q.done.Add(1)
	go func() {
		defer q.done.Done()
		c.retryLoop(ctx, interval)
	}()
}

// retryEviction keeps keys whose eviction did not fully get through (the
// shared tier's delete or the message to the other instances failed) and
// retries them in the background, deleting them from the shared tier, from
// this process again, and telling the other instances, until Redis takes
// them. Without a shared tier it does nothing (nothing can fail). When the
// queue is full the keys that do not fit are dropped and counted
// (Stats.PendingDropped): they end at their TTL.
func (c *Cache) retryEviction(keys []Key) {
	if c.pending == nil || len(keys) == 0 {
		return
	}
	c.pending.add(true, keys)
}

// retryPurge keeps a key that must go from the shared tier (a positive
// answer allauth has refused may be there, or one an eviction heard from
// another instance has to remove) and retries its delete in the background.
// It never waits.
func (c *Cache) retryPurge(key Key) {
	if c.pending == nil {
		return
	}
	c.pending.add(false, []Key{key})
}

func (q *pendingQueue) add(evict bool, keys []Key) {
	q.mu.Lock()
	m, limit := q.purge, q.maxPurge
	if evict {
		m, limit = q.evict, q.maxEvict
	}
	wasEmpty := len(q.evict)+len(q.purge) == 0
	for _, k := range keys {
		if _, ok := m[k]; ok {
			continue
		}
		if len(m) >= limit {
			q.dropped.Add(1)
			continue
		}
		m[k] = struct{}{}
	}
	// An eviction also deletes: the same key need not wait as a purge.
	if evict {
		for _, k := range keys {
			delete(q.purge, k)
		}
	}
	q.size.Store(int64(len(q.evict) + len(q.purge)))
	q.mu.Unlock()
	if wasEmpty {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// take returns up to n keys of one class (evictions first).
func (q *pendingQueue) take(n int) (keys []Key, evict bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	m := q.evict
	evict = true
	if len(m) == 0 {
		m, evict = q.purge, false
	}
	for k := range m {
		if len(keys) == n {
			break
		}
		keys = append(keys, k)
	}
	return keys, evict
}

// remove drops keys that got through.
func (q *pendingQueue) remove(evict bool, keys []Key) {
	q.mu.Lock()
	defer q.mu.Unlock()
	m := q.purge
	if evict {
		m = q.evict
	}
	for _, k := range keys {
		delete(m, k)
	}
	q.size.Store(int64(len(q.evict) + len(q.purge)))
}

func (q *pendingQueue) len() int { return int(q.size.Load()) }

func (q *pendingQueue) close() {
	q.cancel()
	q.done.Wait()
}

// retryLoop sleeps until keys wait, then retries them every interval until
// the queue is empty, and so on until ctx ends (Close).
func (c *Cache) retryLoop(ctx context.Context, interval time.Duration) {
	q := c.pending
	t := time.NewTimer(interval)
	t.Stop()
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		}
		for q.len() > 0 {
			// Wait first: the keys have just failed.
			t.Reset(interval)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			c.flushPending(ctx)
		}
	}
}

// flushPending retries the waiting keys, evictions first, until the queue is
// empty, a call fails (Redis is still away: the next pass tries again) or
// ctx ends. Each call is bounded by the store's timeout and is tried even
// while the store rests after failures: an eviction's keys are deleted and
// announced in one round trip per chunk (evictShared), a purge's deleted.
func (c *Cache) flushPending(ctx context.Context) {
	q := c.pending
	for ctx.Err() == nil {
		keys, evict := q.take(pendingBatch)
		if len(keys) == 0 {
			return
		}
		var done []Key
		failed := false
		for start := 0; start < len(keys) && !failed; start += evictChunkKeys {
			chunk := keys[start:min(start+evictChunkKeys, len(keys))]
			var err error
			if evict {
				var left []Key
				left, err = c.evictShared(ctx, chunk, make([]bool, len(chunk)))
				if err == nil && len(left) > 0 {
					err = errors.New("cache: retried eviction not taken")
				}
			} else {
				err = c.shared.deleteMany(ctx, chunk)
			}
			if err != nil {
				// The whole chunk again next pass: deleting twice is harmless.
				c.stats.storeErrors.Add(1)
				failed = true
				break
			}
			// After the delete: a fill here that read the old value before
			// it is not kept, nor a copy read while the key waited (this may
			// cost a cached 401/410 one more lookup).
			for _, k := range chunk {
				c.dropLocal(k)
			}
			done = append(done, chunk...)
		}
		q.remove(evict, done)
		if failed {
			return
		}
	}
}
