package cache

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

// TestStorageStoreAbandonedBounded: a driver that ignores contexts and hangs
// cannot grow the goroutines. Each call is waited for StoreTimeout, at most
// maxAbandoned calls may still run in the driver, and beyond that calls fail
// at once with errStoreBusy, counted.
func TestStorageStoreAbandonedBounded(t *testing.T) {
	storage := newHangPlainStorage(t)
	s := newStorageStore(storage, "test:bounded:", 5*time.Millisecond, nil)
	base := runtime.NumGoroutine()
	const calls = 3 * maxAbandoned
	busy := 0
	for range calls {
		// purge is a delete that ignores the rest after failures, so every
		// call reaches the bound.
		if err := s.purge(context.Background(), keyFor(1)); errors.Is(err, errStoreBusy) {
			busy++
		}
	}
	if n := storage.calls.Load(); n != maxAbandoned {
		t.Errorf("the hanging driver was called %d times, want %d (the bound)", n, maxAbandoned)
	}
	if busy != calls-maxAbandoned || s.busy.Load() != int64(busy) {
		t.Errorf("%d calls failed busy (counted %d), want %d", busy, s.busy.Load(), calls-maxAbandoned)
	}
	if g := runtime.NumGoroutine(); g > base+maxAbandoned+5 {
		t.Errorf("goroutines grew from %d to %d", base, g)
	}
}
