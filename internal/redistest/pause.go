//go:build unix

package redistest

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// paused maps each paused *Server to its pid (a stopped server cannot be
// asked it); kept apart from Server so that this file stands alone.
var paused sync.Map

// Pause stops redis-server with SIGSTOP: it keeps its connections and its
// data but answers nothing, as a Redis that hangs (swapping, a long fork, a
// network partition) does. Resume lets it go on; the test's end resumes it
// too.
func (s *Server) Pause(tb testing.TB) {
	tb.Helper()
	pid := s.pid(tb)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		tb.Fatalf("SIGSTOP redis-server: %v", err)
	}
	tb.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGCONT) })
	paused.Store(s, pid)
}

// Resume sends SIGCONT to a redis-server stopped by Pause.
func (s *Server) Resume(tb testing.TB) {
	tb.Helper()
	v, ok := paused.LoadAndDelete(s)
	if !ok {
		tb.Fatal("Resume without Pause")
	}
	pid, _ := v.(int) // only ints are stored
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		tb.Fatalf("SIGCONT redis-server: %v", err)
	}
}

// pid asks the server its process id (INFO server), which the test's own
// redis-server child has.
func (s *Server) pid(tb testing.TB) int {
	tb.Helper()
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(context.Background(), "tcp", s.Addr())
	if err != nil {
		tb.Fatalf("redis-server pid: %v", err)
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("INFO server\r\n")); err != nil {
		tb.Fatalf("redis-server pid: %v", err)
	}
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			tb.Fatalf("redis-server pid: no process_id in INFO: %v", err)
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, err := strconv.Atoi(v)
			if err != nil || pid <= 1 {
				tb.Fatalf("redis-server pid %q", v)
			}
			return pid
		}
	}
}
