package allauth

import (
	"sync"
	"time"
)

// testClocks holds the breaker clocks tests set, by BaseURL: the tests of
// the core and of the doors drive a breaker's cool-down without a clock in
// any public Config. A test's stand-in allauth has a URL of its own, so
// parallel tests do not share a clock. Empty outside tests.
var testClocks sync.Map // BaseURL -> func() time.Time

// SetTestClock makes the breakers of Clients made for baseURL from now on
// run on now, until the returned undo is called. For tests only.
func SetTestClock(baseURL string, now func() time.Time) (undo func()) {
	testClocks.Store(baseURL, now)
	return func() { testClocks.Delete(baseURL) }
}

// testClock returns the clock a test set for baseURL, or nil.
func testClock(baseURL string) func() time.Time {
	now, _ := testClocks.Load(baseURL)
	f, _ := now.(func() time.Time)
	return f
}
