// Package redistest runs a private redis-server for tests that must stop and
// restart it (an outage under load), so that the shared server CI passes in
// REDIS_ADDR is never disturbed. It is shared by the cache and fiberauth
// tests and is not part of the library's API.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SkipMessage names REDIS_ADDR, so that CI (which has redis-server and sets
// REDIS_ADDR) fails on the skip instead of hiding it.
const SkipMessage = "no redis-server: set REDIS_SERVER_BIN or put redis-server on PATH (CI, which sets REDIS_ADDR, has it)"

// Server is a redis-server on a free loopback port.
type Server struct {
	bin, dir string
	port     int
	cmd      *exec.Cmd
	done     chan struct{}
}

// Start runs a redis-server (REDIS_SERVER_BIN, or redis-server on PATH) on a
// free port, killed when the test ends, or skips the test with SkipMessage.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin := os.Getenv("REDIS_SERVER_BIN")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("redis-server"); err != nil {
			tb.Skip(SkipMessage)
		}
	}
	s := &Server{bin: bin, dir: tb.TempDir(), port: freePort(tb)}
	s.Restart(tb)
	tb.Cleanup(func() { s.Kill(tb) })
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Restart starts redis-server on the same port (again, after Kill), empty,
// and waits until it answers PING.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	//nolint:gosec // the binary is the test's own redis-server
	s.cmd = exec.CommandContext(context.Background(), s.bin,
		"--bind", "127.0.0.1", "--port", strconv.Itoa(s.port),
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--logfile", "")
	if err := s.cmd.Start(); err != nil {
		tb.Fatalf("start redis-server: %v", err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(s.cmd, s.done)
	deadline := time.Now().Add(10 * time.Second)
	for !ping(s.Addr()) {
		if time.Now().After(deadline) {
			s.Kill(tb)
			tb.Fatalf("redis-server on %s did not answer PING", s.Addr())
		}
		select {
		case <-s.done:
			tb.Fatalf("redis-server on %s exited (port taken?)", s.Addr())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Kill stops redis-server with SIGKILL: a crash, not a clean shutdown.
func (s *Server) Kill(tb testing.TB) {
	tb.Helper()
	if s.cmd == nil {
		return
	}
	if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		tb.Errorf("kill redis-server: %v", err)
	}
	<-s.done
	s.cmd = nil
}

func freePort(tb testing.TB) int {
	tb.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	addr, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		tb.Fatalf("listener address %v", ln.Addr())
	}
	return addr.Port
}

func ping(addr string) bool {
	d := net.Dialer{Timeout: 200 * time.Millisecond}
	conn, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		return false
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}
