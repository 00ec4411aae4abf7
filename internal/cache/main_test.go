package cache

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine outlives the tests: every Cache,
// memoryStore and Redis storage a test makes must be closed. Nothing is
// ignored: the coarse clock, the janitor, go-redis's pool and the goroutines
// a hanging fake storage parks are all stopped by the tests themselves.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
