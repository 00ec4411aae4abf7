package cache

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// An eviction message is the sender's id, then up to maxKeysPerMessage keys
// (what a reader of the channel decodes is bounded; Evict sends larger batches
// in several messages).
const (
	senderIDLen       = 8
	maxKeysPerMessage = 64
)

// bus carries evictions between instances that share a Redis: Evict
// publishes the keys, and every instance's listener drops them from its
// in-process tier.
//
// A message can be lost (a dropped connection, Redis restarting), and
// go-redis resubscribes silently. So the bus vouches for an in-process copy
// only while it can prove it heard everything since the copy was made: the
// subscription must have been confirmed before the copy was checked against
// the shared tier, and a PING sent down the subscription less than Recheck
// ago must have come back (Redis delivers messages and the PONG in order, so
// the PONG proves that every message published before the PING arrived).
// Anything less and the Cache falls back to rechecking the shared tier.
//
// On a Redis Cluster that argument holds only if the publisher and the
// subscriber meet on one node: a plain PUBLISH goes to any node (go-redis
// picks one at random) and reaches the subscriber's node over the cluster
// bus, which may hold it while the subscriber's node keeps answering PONG.
// So on a Cluster the bus uses sharded pub/sub (SSUBSCRIBE, SPUBLISH): both
// go to the node that holds the channel's slot, which delivers the message
// and the PONG in order, as a single Redis does.
type bus struct {
	client  *redisClient
	channel string
	drop    func([]Key) // drops keys from the in-process tier
	// redelete deletes heard keys from the shared tier again; the listener
	// hands them to redeleter, so that a batch's later messages do not wait
	// a round trip to Redis per message before their keys leave the process.
	redelete func(context.Context, []Key)
	redel    chan []Key
	nanos    func() int64 // the Cache's clock
	timeout  time.Duration
	// id marks this bus's own messages, which it ignores: its Cache has
	// dropped those keys already, and may have learnt them anew since.
	id [senderIDLen]byte

	// since is when the current subscription was confirmed (Unix nanos,
	// taken after the confirmation arrived), 0 while there is none.
	since atomic.Int64
	// heard is when the last PING whose PONG came back was sent.
	heard atomic.Int64

	received, malformed, applied atomic.Int64

	ps   atomic.Pointer[redis.PubSub] // set once listen has subscribed
	stop chan struct{}                // closed by close
	once sync.Once
	done sync.WaitGroup
}

// startBus returns a running bus on rc, or nil without one (the storage is
// not a Redis driver: the Cache then relies on Recheck alone). Each command
// the bus sends (subscribe, ping, publish) is bounded by timeout.
func startBus(rc *redisClient, channel string, recheck, timeout time.Duration, nanos func() int64, drop func([]Key), redelete func(context.Context, []Key)) *bus {
	if rc == nil {
		return nil
	}
	b := &bus{
		client: rc, channel: channel, drop: drop, redelete: redelete, nanos: nanos, timeout: timeout,
		redel: make(chan []Key, redeleteQueue), stop: make(chan struct{}),
	}
	_, _ = rand.Read(b.id[:]) // never fails (crypto/rand)
	b.done.Add(2)
	go b.listen(max(recheck/4, time.Millisecond))
	go b.redeleter()
	return b
}

// redeleteQueue bounds the messages whose keys wait for their second
// delete; when it is full the listener deletes them itself (and slows down
// with Redis, as it did before the queue).
const redeleteQueue = 64

// redeleter runs until close: it deletes heard keys from the shared tier
// again, merging the messages that queued meanwhile into one round trip of
// at most evictChunkKeys keys. Keys still queued at close are dropped: the
// second delete is a safeguard, not the eviction.
func (b *bus) redeleter() {
	defer b.done.Done()
	for {
		var keys []Key
		select {
		case <-b.stop:
			return
		case keys = <-b.redel:
		}
		msgs := int64(1)
	merge:
		for len(keys) < evictChunkKeys {
			select {
			case more := <-b.redel:
				keys = append(keys, more...)
				msgs++
			default:
				break merge
			}
		}
		b.redelete(context.Background(), keys)
		b.applied.Add(msgs)
	}
}

// vouches reports whether an in-process copy checked against the shared tier
// at checkedAt may still be served at now.
func (b *bus) vouches(checkedAt, now, recheck int64) bool {
	since := b.since.Load()
	return since != 0 && checkedAt > since && now-b.heard.Load() < recheck
}

// listen runs until close. ping is how often it proves the subscription.
func (b *bus) listen(ping time.Duration) {
	defer b.done.Done()
	// The listener lives as long as the Cache, not any request: its context
	// ends at close, which also closes the subscription (ending a receive at
	// once).
	ctx := untilStopped(b.stop)
	// Subscribing dials Redis, which may be down: here, not in New. If it
	// fails, the first receive subscribes again.
	sctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	ps := b.client.subscribe(sctx, b.channel)
	cancel()
	defer func() { _ = ps.Close() }() // the latest ps: see below
	b.ps.Store(ps)
	if b.stopped() { // closed before ps was there to close
		return
	}
	// outstanding is when the unanswered PING was sent (0: none), last when
	// the latest was.
	var outstanding, last int64
	for !b.stopped() {
		msg, err := ps.ReceiveTimeout(ctx, ping)
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" || m.Kind == "ssubscribe" {
				// The coarse clock may lag by its resolution; since must not
				// be earlier than the confirmation.
				b.since.Store(b.nanos() + int64(clockResolution))
				outstanding = 0
			}
		case *redis.Pong:
			if outstanding != 0 {
				b.heard.Store(outstanding)
				outstanding = 0
			}
		case *redis.Message:
			b.handle(ctx, m.Payload)
		}
		if err != nil && !isTimeout(err) {
			// The connection is gone, and so may be messages: stop vouching
			// until a new subscription is confirmed. go-redis reconnects on
			// the next receive; wait a little so a dead Redis is not spun on.
			b.since.Store(0)
			outstanding = 0
			select {
			case <-b.stop:
			case <-time.After(ping):
			}
			if b.client.cluster {
				// go-redis (v9.17) re-makes a lost sharded subscription on a
				// random node (PubSub.conn hands the cluster only the plain
				// channels), which refuses SSUBSCRIBE with MOVED, and the
				// subscription never comes back. A new PubSub goes to the
				// channel's node.
				_ = ps.Close()
				sctx, cancel := context.WithTimeout(context.Background(), b.timeout)
				ps = b.client.subscribe(sctx, b.channel)
				cancel()
				b.ps.Store(ps)
			}
			continue
		}
		// One PING per interval, or another when one never came back; a
		// steady stream of messages must not starve the proof either.
		now := b.nanos()
		if b.since.Load() != 0 && now-last >= int64(ping) && (outstanding == 0 || now-outstanding > int64(4*ping)) {
			pctx, cancel := context.WithTimeout(context.Background(), b.timeout)
			if ps.Ping(pctx) == nil {
				outstanding, last = now, now
			}
			cancel()
		}
	}
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

// handle drops the keys of one message. The channel is untrusted input
// (anyone who can publish to the Redis can send to it), but the worst a
// message can do is make this instance ask again; a malformed one is
// counted and ignored.
func (b *bus) handle(ctx context.Context, payload string) {
	b.received.Add(1)
	keys := len(payload) - senderIDLen
	if keys <= 0 || keys%len(Key{}) != 0 || keys > maxKeysPerMessage*len(Key{}) {
		b.malformed.Add(1)
		return
	}
	if payload[:senderIDLen] == string(b.id[:]) {
		return
	}
	ks := make([]Key, 0, keys/len(Key{}))
	for p := payload[senderIDLen:]; len(p) > 0; p = p[len(Key{}):] {
		var k Key
		copy(k[:], p)
		ks = append(ks, k)
	}
	b.drop(ks)
	// A message counts as applied (Stats.EvictionsHeard) once its keys are
	// deleted from the shared tier again too, whoever does it.
	select {
	case b.redel <- ks:
	default:
		b.redelete(ctx, ks)
		b.applied.Add(1)
	}
}

// messages encodes the eviction of keys as messages of at most
// maxKeysPerMessage keys each.
func (b *bus) messages(keys []Key) [][]byte {
	msgs := make([][]byte, 0, (len(keys)+maxKeysPerMessage-1)/maxKeysPerMessage)
	for len(keys) > 0 {
		n := min(len(keys), maxKeysPerMessage)
		msg := make([]byte, 0, senderIDLen+n*len(Key{}))
		msg = append(msg, b.id[:]...)
		for _, k := range keys[:n] {
			msg = append(msg, k[:]...)
		}
		msgs = append(msgs, msg)
		keys = keys[n:]
	}
	return msgs
}

// subscribed reports whether the subscription is confirmed and proven
// within recheck at now (for readiness and metrics).
func (b *bus) subscribed(now, recheck int64) bool {
	return b.since.Load() != 0 && now-b.heard.Load() < recheck
}

// close stops the listener, interrupting a receive in progress (it may wait
// Recheck/4 for a message).
// untilStopped is a context that ends when stop is closed.
type untilStopped <-chan struct{}

func (untilStopped) Deadline() (time.Time, bool) { return time.Time{}, false }
func (u untilStopped) Done() <-chan struct{}     { return u }
func (untilStopped) Value(any) any               { return nil }

func (u untilStopped) Err() error {
	select {
	case <-u:
		return context.Canceled
	default:
		return nil
	}
}

func (b *bus) stopped() bool {
	select {
	case <-b.stop:
		return true
	default:
		return false
	}
}

func (b *bus) close() {
	b.once.Do(func() { close(b.stop) })
	if ps := b.ps.Load(); ps != nil {
		_ = ps.Close()
	}
	b.done.Wait()
}
