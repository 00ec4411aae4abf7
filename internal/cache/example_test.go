package cache_test

import (
	"context"
	"fmt"
	"time"

	"github.com/gofiber/storage/redis/v3"

	"github.com/allauthgo/headless/internal/cache"
	"github.com/allauthgo/headless/introspect"
)

func ExampleCache_Load() {
	c := cache.New(cache.Config{TTL: 30 * time.Second})
	defer c.Close() //nolint:errcheck // an in-process Cache's Close never fails

	scope := cache.NewScope(introspect.SessionToken, "https://auth.example.com/_allauth/app/v1/auth/session")
	key := cache.NewKey(scope, "0123456789abcdef0123456789abcdef")
	ctx := context.Background()

	if _, ok := c.Get(ctx, key); !ok {
		// A miss: ask allauth (usually introspect.Client.Session).
		r := c.Load(ctx, key, time.Time{}, func(context.Context) (*introspect.Session, error) {
			return &introspect.Session{User: introspect.User{ID: "1", Username: "alice"}}, nil
		})
		fmt.Println("loaded:", r.Session.User.Username, r.Err)
	}
	if r, ok := c.Get(ctx, key); ok {
		fmt.Println("cached:", r.Session.User.Username)
	}
	st := c.Stats()
	fmt.Println("fetches:", st.Fetches, "hits:", st.Hits)
	// Output:
	// loaded: alice <nil>
	// cached: alice
	// fetches: 1 hits: 1
}

// Several instances share what they learnt, and see each other's logouts,
// through Redis: each keeps its own in-process tier in front of it, and
// evictions reach every instance by Redis pub/sub. (Compiled only: it needs
// a Redis server.)
func ExampleConfig_storage() {
	storage := redis.New(redis.Config{Host: "127.0.0.1", Port: 6379})
	defer storage.Close() //nolint:errcheck // the example's own storage

	c := cache.New(cache.Config{
		Storage: storage,
		Prefix:  "myapp:auth:",                                    // one per deployment sharing this Redis
		Secret:  []byte("at least 16 bytes, from a secret store"), // values are authenticated
	})
	defer c.Close() //nolint:errcheck // Close does not close the storage
}
