package cache

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisConn is what gofiber/storage's Redis driver offers beyond Storage:
// its go-redis client.
type redisConn interface {
	Conn() redis.UniversalClient
}

// ownPoolSize is the size of the connection pool of the Cache's own Redis
// client (per node on a Cluster). It bounds the connections, and so the
// commands in flight, that a stalled Redis can hold.
const ownPoolSize = 16

// ownRetries is how often the own client retries a failed command: once,
// for a pooled connection that died (Redis restarted), and a refused dial is
// tried once (DialerRetries 1, on a single Redis). go-redis's defaults (3
// retries, 5 dials 100 ms apart) spend all of StoreTimeout on a Redis that
// is down, where failing at once costs the request nothing and lets the
// store start resting sooner. (A Cluster's node clients keep go-redis's dial
// settings: a refused node costs up to StoreTimeout per call until its pool
// has seen 16 failed dials and fails at once.)
const ownRetries = 1

// redisClient is the Cache's own go-redis client, built from the options of
// the driver's client, for every command the Cache sends to Redis.
//
// It exists because a context deadline does not stop a blocked socket read
// in a go-redis client built without ContextTimeoutEnabled (as
// gofiber/storage/redis builds its own): a stalled Redis then holds each
// request for the client's ReadTimeout (3 s by default), whatever
// StoreTimeout says. With ContextTimeoutEnabled, go-redis sets each read and
// write deadline to the earlier of the context's deadline and its own
// timeout, and waits for a pooled connection no longer than the context
// either (go-redis v9.17, internal/pool/conn.go deadline); so every command
// the Cache sends with a StoreTimeout context returns within StoreTimeout.
type redisClient struct {
	c       redis.UniversalClient
	cluster bool

	closeOnce sync.Once
	closeErr  error
}

// newRedisClient returns the Cache's own client for storage, or nil when
// storage is not a go-redis based driver whose options can be copied (a
// single Redis, or a Cluster); the caller then bounds the driver's calls by
// waiting in a goroutine (see storageStore.run).
func newRedisClient(storage Storage) *redisClient {
	rc, ok := storage.(redisConn)
	if !ok {
		return nil
	}
	switch d := rc.Conn().(type) {
	case *redis.Client:
		if d == nil {
			return nil
		}
		opt := *d.Options() // a copy: the driver's client keeps its own
		opt.ContextTimeoutEnabled = true
		opt.PoolSize = ownPoolSize
		opt.MinIdleConns, opt.MaxIdleConns = 0, ownPoolSize
		// One dial, and its error at once: go-redis waits DialerRetryTimeout
		// after every failed dial, the last one included.
		opt.MaxRetries, opt.DialerRetries, opt.DialerRetryTimeout = ownRetries, 1, time.Millisecond
		opt.MinRetryBackoff = -1 // retry at once: StoreTimeout is the budget
		return &redisClient{c: redis.NewClient(&opt)}
	case *redis.ClusterClient:
		if d == nil {
			return nil
		}
		opt := *d.Options()
		opt.ContextTimeoutEnabled = true
		opt.PoolSize = ownPoolSize
		opt.MinIdleConns, opt.MaxIdleConns = 0, ownPoolSize
		opt.MaxRetries = ownRetries
		opt.MinRetryBackoff = -1
		return &redisClient{c: redis.NewClusterClient(&opt), cluster: true}
	default:
		// A Ring, or another UniversalClient: its options cannot be
		// copied, so it is used through the bounded wait.
		return nil
	}
}

// GetWithContext, SetWithContext and DeleteWithContext make the client a
// storageWithContext, so that every operation of storageStore (the user
// index's included) goes through it.

// GetWithContext returns the value under key, nil when there is none.
func (r *redisClient) GetWithContext(ctx context.Context, key string) ([]byte, error) {
	val, err := r.c.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return val, err
}

// SetWithContext stores val under key for exp.
func (r *redisClient) SetWithContext(ctx context.Context, key string, val []byte, exp time.Duration) error {
	return r.c.Set(ctx, key, val, exp).Err()
}

// DeleteWithContext removes key.
func (r *redisClient) DeleteWithContext(ctx context.Context, key string) error {
	return r.c.Del(ctx, key).Err()
}

// deleteAndPublish deletes keys and then publishes msgs on channel, in one
// pipelined round trip (per node on a Cluster, where go-redis routes each
// single-key DEL to its slot's node: keys of one batch live in different
// slots, so one multi-key DEL would be refused). It reports, per key,
// whether the key was there (DEL's reply) and whether its delete failed,
// and per message whether its publish failed; err is the first failure.
func (r *redisClient) deleteAndPublish(ctx context.Context, keys []string, channel string, msgs [][]byte) (present, delFailed, pubFailed []bool, err error) {
	dels := make([]*redis.IntCmd, len(keys))
	pubs := make([]*redis.IntCmd, len(msgs))
	_, err = r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			dels[i] = p.Del(ctx, k)
		}
		for i, m := range msgs {
			pubs[i] = r.publishCmd(ctx, p, channel, m)
		}
		return nil
	})
	present, delFailed = make([]bool, len(keys)), make([]bool, len(keys))
	for i, cmd := range dels {
		n, e := cmd.Result()
		delFailed[i], present[i] = e != nil, e == nil && n > 0
	}
	pubFailed = make([]bool, len(msgs))
	for i, cmd := range pubs {
		pubFailed[i] = cmd.Err() != nil
	}
	return present, delFailed, pubFailed, err
}

// publishCmd publishes msg on channel: sharded (SPUBLISH) on a Cluster, so
// that the message is delivered by the node that holds the channel's slot,
// the one every subscriber is subscribed on (see bus).
func (r *redisClient) publishCmd(ctx context.Context, c redis.Cmdable, channel string, msg []byte) *redis.IntCmd {
	if r.cluster {
		return c.SPublish(ctx, channel, msg)
	}
	return c.Publish(ctx, channel, msg)
}

// subscribe subscribes to channel: sharded (SSUBSCRIBE) on a Cluster.
func (r *redisClient) subscribe(ctx context.Context, channel string) *redis.PubSub {
	if r.cluster {
		return r.c.SSubscribe(ctx, channel)
	}
	return r.c.Subscribe(ctx, channel)
}

// close closes the client's connections; closing again is a no-op (a
// middleware's Close may be called twice).
func (r *redisClient) close() error {
	r.closeOnce.Do(func() { r.closeErr = r.c.Close() })
	return r.closeErr
}
