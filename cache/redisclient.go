package cache

import (
	"context"
	"errors"
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
		return &redisClient{c: redis.NewClient(&opt)}
	case *redis.ClusterClient:
		if d == nil {
			return nil
		}
		opt := *d.Options()
		opt.ContextTimeoutEnabled = true
		opt.PoolSize = ownPoolSize
		opt.MinIdleConns, opt.MaxIdleConns = 0, ownPoolSize
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

// close closes the client's connections.
func (r *redisClient) close() error { return r.c.Close() }
