// Package testwait lets a test wait for a condition that something running
// in real time makes true: a real server answering, a redis-server delivering
// a pub/sub message, a goroutine reaching a point. Tests that can drive an
// injected clock do so instead; this is for what no clock can move. It is
// not part of the library's API.
package testwait

import (
	"testing"
	"time"
)

// poll is how often a condition is checked: short next to what the tests
// wait for, long enough not to spin.
const poll = time.Millisecond

// Until checks cond until it holds, failing the test with what once timeout
// has passed.
func Until(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("after %v, still waiting for %s", timeout, what)
		}
		// Real time: what is awaited happens in another process or
		// goroutine, which no injected clock moves.
		time.Sleep(poll)
	}
}
