package cache

import (
	"sync"
	"sync/atomic"
	"time"
)

// clockResolution is how often the coarse clock is updated. Freshness is
// judged to within this much, which is nothing against TTLs of seconds.
const clockResolution = 5 * time.Millisecond

// coarseClock is the current time in Unix nanoseconds, updated by one
// goroutine. Reading the system clock costs about 100 ns on some virtual
// machines (as much as the whole cache hit); reading an atomic costs ~1 ns.
type coarseClock struct {
	now  atomic.Int64
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

func startClock() *coarseClock {
	c := &coarseClock{stop: make(chan struct{})}
	c.now.Store(time.Now().UnixNano())
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(clockResolution)
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				c.now.Store(now.UnixNano())
			case <-c.stop:
				return
			}
		}
	}()
	return c
}

func (c *coarseClock) nanos() int64 { return c.now.Load() }

func (c *coarseClock) close() {
	c.once.Do(func() { close(c.stop) })
	c.wg.Wait()
}
