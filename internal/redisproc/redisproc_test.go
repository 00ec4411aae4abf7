package redisproc

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
)

// A node whose cluster bus port is taken exits at once; the error must say
// so (ErrExited, for a caller to retry on other ports) and carry the
// server's own reason, not leave the caller guessing.
func TestRedisServerReportsWhyItExited(t *testing.T) {
	if _, err := Bin(); err != nil {
		t.Skip(err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}

	s, err := Start("--cluster-enabled", "yes", "--cluster-port", port)
	if err == nil {
		_ = s.Close()
		t.Fatalf("Start with a taken cluster bus port: no error")
	}
	if !errors.Is(err, ErrExited) {
		t.Fatalf("Start: %v, want ErrExited", err)
	}
	if !strings.Contains(err.Error(), "in use") {
		t.Fatalf("Start: %v, want the server's reason (address in use)", err)
	}
}

func TestRedisServerKillRestart(t *testing.T) {
	if _, err := Bin(); err != nil {
		t.Skip(err)
	}
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	if !ping(s.Addr()) {
		t.Fatal("no PONG after Start")
	}
	if err := s.Kill(); err != nil {
		t.Fatal(err)
	}
	if ping(s.Addr()) {
		t.Fatal("PONG after Kill")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if !ping(s.Addr()) {
		t.Fatal("no PONG after Restart")
	}
}
