package cache

import (
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/redistest"
)

// TestRedisCloseStopsListenerAtOnce proves Close does not wait for the
// eviction listener's next receive timeout (Recheck/4: a minute here) to
// stop it. 20 s is no speed bound, only far below that minute.
func TestRedisCloseStopsListenerAtOnce(t *testing.T) {
	addr := redistest.Addr(t)
	prefix := uniquePrefix(t)
	storage := newRedisStorage(t, addr, prefix)
	c := New(Config{Storage: storage, Prefix: prefix, Recheck: 4 * time.Minute})
	waitSubscribed(t, c)
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("Close took %v: it waited for the listener's receive timeout", d.Round(time.Second))
	}
}
