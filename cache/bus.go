package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisConn is what gofiber/storage's Redis driver offers beyond Storage:
// its go-redis client, which pub/sub needs.
type redisConn interface {
	Conn() redis.UniversalClient
}

// maxKeysPerMessage bounds one eviction message (and so what a reader of
// the channel decodes): Drop sends larger batches in several messages.
const maxKeysPerMessage = 64

// bus carries evictions between instances that share a Redis: Drop
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
type bus struct {
	client  redis.UniversalClient
	channel string
	drop    func(Key) bool
	nanos   func() int64 // the Cache's clock
	timeout time.Duration

	// since is when the current subscription was confirmed (Unix nanos,
	// taken after the confirmation arrived), 0 while there is none.
	since atomic.Int64
	// heard is when the last PING whose PONG came back was sent.
	heard atomic.Int64

	received, malformed atomic.Int64

	// ps is the listener's subscription, closed by close to end a receive
	// at once: go-redis does not stop a blocked receive when its context
	// ends, and the receive timeout is Recheck/4 (15 s for a minute).
	ps     atomic.Pointer[redis.PubSub]
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// startBus returns a running bus for storage, or nil when storage is not a
// Redis driver (the Cache then relies on Recheck alone).
func startBus(storage Storage, channel string, recheck, timeout time.Duration, nanos func() int64, drop func(Key) bool) *bus {
	rc, ok := storage.(redisConn)
	if !ok || rc.Conn() == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &bus{client: rc.Conn(), channel: channel, drop: drop, nanos: nanos, timeout: timeout, cancel: cancel}
	b.done.Add(1)
	go b.listen(ctx, max(recheck/4, time.Millisecond))
	return b
}

// vouches reports whether an in-process copy checked against the shared tier
// at checkedAt may still be served at now.
func (b *bus) vouches(checkedAt, now, recheck int64) bool {
	since := b.since.Load()
	return since != 0 && checkedAt > since && now-b.heard.Load() < recheck
}

// listen runs until close. ping is how often it proves the subscription.
func (b *bus) listen(ctx context.Context, ping time.Duration) {
	defer b.done.Done()
	ps := b.client.Subscribe(ctx) // no channel yet: no I/O
	defer func() { _ = ps.Close() }()
	b.ps.Store(ps)
	if ctx.Err() != nil {
		return // close ran before ps was stored, and will not close it
	}
	_ = ps.Subscribe(ctx, b.channel) // on failure, the receive below resubscribes
	// outstanding is when the unanswered PING was sent (0: none), last when
	// the latest was.
	var outstanding, last int64
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, ping)
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
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
			b.handle(m.Payload)
		}
		if err != nil && !isTimeout(err) {
			// The connection is gone, and so may be messages: stop vouching
			// until a new subscription is confirmed. go-redis reconnects on
			// the next receive; wait a little so a dead Redis is not spun on.
			b.since.Store(0)
			outstanding = 0
			select {
			case <-ctx.Done():
			case <-time.After(ping):
			}
			continue
		}
		// One PING per interval, or another when one never came back; a
		// steady stream of messages must not starve the proof either.
		now := b.nanos()
		if b.since.Load() != 0 && now-last >= int64(ping) && (outstanding == 0 || now-outstanding > int64(4*ping)) {
			if ps.Ping(ctx) == nil {
				outstanding, last = now, now
			}
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
func (b *bus) handle(payload string) {
	b.received.Add(1)
	if len(payload) == 0 || len(payload)%len(Key{}) != 0 || len(payload) > maxKeysPerMessage*len(Key{}) {
		b.malformed.Add(1)
		return
	}
	for p := payload; len(p) > 0; p = p[len(Key{}):] {
		var k Key
		copy(k[:], p)
		b.drop(k)
	}
}

// publish tells every instance to drop keys.
func (b *bus) publish(ctx context.Context, keys []Key) error {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	var errs []error
	for len(keys) > 0 {
		n := min(len(keys), maxKeysPerMessage)
		msg := make([]byte, 0, n*len(Key{}))
		for _, k := range keys[:n] {
			msg = append(msg, k[:]...)
		}
		if err := b.client.Publish(ctx, b.channel, msg).Err(); err != nil {
			errs = append(errs, fmt.Errorf("cache: publish eviction: %w", err))
		}
		keys = keys[n:]
	}
	return errors.Join(errs...)
}

// subscribed reports whether the subscription is confirmed and proven
// within recheck at now (for readiness and metrics).
func (b *bus) subscribed(now, recheck int64) bool {
	return b.since.Load() != 0 && now-b.heard.Load() < recheck
}

func (b *bus) close() {
	b.cancel()
	if ps := b.ps.Load(); ps != nil {
		_ = ps.Close() // ends a blocked receive; closing twice is harmless
	}
	b.done.Wait()
}
