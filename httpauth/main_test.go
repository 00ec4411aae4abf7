package httpauth_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine outlives the tests: every
// middleware, allauth stand-in, test server and HTTP transport a test makes
// must be closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
