// Package redistest gives the cache, fiberauth and example tests a Redis:
// the shared one in REDIS_ADDR when it is set (CI sets it), else a private
// redis-server of the test's own (internal/redisproc). Tests that stop and
// restart Redis (an outage under load) always use a private one, so the
// shared server is never disturbed. It is not part of the library's API.
package redistest

import (
	"errors"
	"os"
	"testing"

	"github.com/allauthgo/headless/internal/redisproc"
)

// SkipMessage is why a Redis test skips: there is neither REDIS_ADDR nor a
// redis-server to start. It names REDIS_ADDR, so that CI's skip detector
// (.ci/run) fails the run instead of hiding the skip.
const SkipMessage = "no Redis: install redis-server (apt-get install redis-server) and the tests start their own, or set REDIS_ADDR=host:port (or REDIS_SERVER_BIN)"

// Addr returns a Redis for the test: REDIS_ADDR when set, else the address
// of a private redis-server started for this test and killed when it ends.
// It skips the test with SkipMessage when there is neither. A private server
// starts empty; on a shared one the test must keep to keys of its own (a
// unique prefix).
func Addr(tb testing.TB) string {
	tb.Helper()
	if addr := os.Getenv("REDIS_ADDR"); addr != "" {
		return addr
	}
	return Start(tb).Addr()
}

// Available reports whether Addr has a Redis to give (REDIS_ADDR is set or
// there is a redis-server), for a test that also runs without one.
func Available() bool {
	if os.Getenv("REDIS_ADDR") != "" {
		return true
	}
	_, err := redisproc.Bin()
	return err == nil
}

// Server is a private redis-server on a free loopback port.
type Server struct{ p *redisproc.Server }

// Start runs a private redis-server (REDIS_SERVER_BIN, or redis-server on
// PATH) on a free port, killed when the test ends, or skips the test with
// SkipMessage. Unlike Addr it ignores REDIS_ADDR: it is for tests that kill
// and restart Redis.
func Start(tb testing.TB) *Server {
	tb.Helper()
	p, err := redisproc.Start()
	if errors.Is(err, redisproc.ErrNotInstalled) {
		tb.Skip(SkipMessage)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := p.Close(); err != nil {
			tb.Errorf("stop redis-server: %v", err)
		}
	})
	return &Server{p: p}
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.p.Addr() }

// Restart starts redis-server on the same port (again, after Kill), empty,
// and waits until it answers PING.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if err := s.p.Restart(); err != nil {
		tb.Fatal(err)
	}
}

// Kill stops redis-server with SIGKILL: a crash, not a clean shutdown.
func (s *Server) Kill(tb testing.TB) {
	tb.Helper()
	if err := s.p.Kill(); err != nil {
		tb.Errorf("kill redis-server: %v", err)
	}
}

// Stop suspends redis-server with SIGSTOP (a stalled Redis: connections
// stay open and nothing answers) until Continue; the test's cleanup resumes
// it if the test does not.
func (s *Server) Stop(tb testing.TB) {
	tb.Helper()
	if err := s.p.Stop(); err != nil {
		tb.Fatalf("stop redis-server: %v", err)
	}
	tb.Cleanup(func() { _ = s.p.Continue() })
}

// Continue resumes redis-server after Stop.
func (s *Server) Continue(tb testing.TB) {
	tb.Helper()
	if err := s.p.Continue(); err != nil {
		tb.Fatalf("resume redis-server: %v", err)
	}
}
