// Package redisproc runs a private redis-server on a free loopback port, for
// the tests (through internal/redistest) and the load tool. It is not part of
// the library's API.
package redisproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNotInstalled is returned when there is no redis-server to run.
var ErrNotInstalled = errors.New("no redis-server: install it (apt-get install redis-server) or set REDIS_SERVER_BIN")

// startAttempts bounds how often Start picks a new port when redis-server
// exits at once: the free port it was given can be taken before it binds.
const startAttempts = 3

// Bin is the redis-server to run: REDIS_SERVER_BIN, else redis-server on
// PATH, else ErrNotInstalled.
func Bin() (string, error) {
	if bin := os.Getenv("REDIS_SERVER_BIN"); bin != "" {
		return bin, nil
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", ErrNotInstalled
	}
	return bin, nil
}

// Server is a redis-server on a free loopback port, without persistence.
type Server struct {
	bin, dir string
	port     int
	extra    []string
	cmd      *exec.Cmd
	done     chan struct{}
}

// Start runs redis-server (see Bin) on a free port, with extra arguments
// after its own (e.g. "--cluster-enabled", "yes"; relative file names are in
// the server's own directory), and waits until it answers PING. Close stops
// it and removes its directory.
func Start(extra ...string) (*Server, error) {
	bin, err := Bin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "redisproc-")
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, dir: dir, extra: extra}
	for attempt := 1; ; attempt++ {
		if s.port, err = FreePort(); err == nil {
			err = s.Restart()
		}
		if err == nil || !errors.Is(err, ErrExited) || attempt == startAttempts {
			break
		}
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// ErrExited is returned (wrapped, with the server's last output) when
// redis-server exits before it answers PING, most often because a port it
// was given was taken in the meantime. Start already retries on a new port;
// a caller that chose other ports (a cluster bus port) retries with new ones.
var ErrExited = errors.New("exited before answering PING (port taken?)")

// outputTail keeps the last outputTailMax bytes redis-server wrote, so that
// ErrExited can say why it exited.
type outputTail struct {
	mu  sync.Mutex
	buf []byte
}

const outputTailMax = 2048

func (t *outputTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - outputTailMax; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *outputTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// Restart starts redis-server on the same port (again, after Kill), empty,
// and waits until it answers PING.
func (s *Server) Restart() error {
	if s.cmd != nil {
		return errors.New("redis-server is already running")
	}
	args := append([]string{
		"--bind", "127.0.0.1", "--port", strconv.Itoa(s.port),
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--logfile", "",
	}, s.extra...)
	//nolint:gosec // the binary is the caller's own redis-server
	cmd := exec.CommandContext(context.Background(), s.bin, args...)
	cmd.SysProcAttr = sysProcAttr()
	out := &outputTail{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(cmd, s.done)
	deadline := time.Now().Add(10 * time.Second)
	for !ping(s.Addr()) {
		select {
		case <-s.done:
			s.cmd = nil
			return fmt.Errorf("redis-server on %s %w: %s", s.Addr(), ErrExited, out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = s.Kill()
			return fmt.Errorf("redis-server on %s did not answer PING within 10s", s.Addr())
		}
	}
	return nil
}

// Kill stops redis-server with SIGKILL (a crash, not a clean shutdown) and
// waits for it to exit. Restart starts it again.
func (s *Server) Kill() error {
	if s.cmd == nil {
		return nil
	}
	err := s.cmd.Process.Kill()
	if errors.Is(err, os.ErrProcessDone) {
		err = nil
	}
	<-s.done
	s.cmd = nil
	return err
}

// Port is the server's port.
func (s *Server) Port() int { return s.port }

// Stop suspends redis-server with SIGSTOP: it keeps its connections and
// accepts new ones (the kernel does), but answers nothing until Continue. It
// is how a Redis stalled by swapping, a long fork or a paused VM looks to a
// client.
func (s *Server) Stop() error { return s.signal(sigStop) }

// Continue resumes redis-server after Stop.
func (s *Server) Continue() error { return s.signal(sigCont) }

func (s *Server) signal(sig os.Signal) error {
	if sig == nil {
		return errors.New("stopping redis-server is supported on Linux only")
	}
	if s.cmd == nil {
		return errors.New("redis-server is not running")
	}
	return s.cmd.Process.Signal(sig)
}

// Close kills redis-server and removes its directory.
func (s *Server) Close() error {
	return errors.Join(s.Kill(), os.RemoveAll(s.dir))
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = ln.Close() }()
	addr, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		return 0, fmt.Errorf("listener address %v", ln.Addr())
	}
	return addr.Port, nil
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
