package fiberauth_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine outlives the tests: every
// middleware, app, allauth stand-in and HTTP transport a test makes must be
// closed. The only exception is fasthttp's process-wide goroutine that
// refreshes the Date header once a second; it starts with the first request
// served and never stops, by design.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	)
}
