package latencyproxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestDelaysEachWayInOrder echoes through the proxy: every line comes back
// intact and in order, and a round trip takes at least twice the delay.
func TestDelaysEachWayInOrder(t *testing.T) {
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	echoDone := make(chan struct{})
	go func() {
		defer close(echoDone)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = io.Copy(c, c)
		_ = c.Close()
	}()
	const delay = 20 * time.Millisecond
	p, err := Start(ln.Addr().String(), delay)
	if err != nil {
		t.Fatal(err)
	}
	d := net.Dialer{}
	c, err := d.DialContext(context.Background(), "tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	start := time.Now()
	for _, line := range []string{"a\n", "bb\n", "ccc\n"} {
		if _, err := c.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []string{"a\n", "bb\n", "ccc\n"} {
		got, err := r.ReadString('\n')
		if err != nil || got != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
	}
	if rtt := time.Since(start); rtt < 2*delay {
		t.Fatalf("round trip %v, want at least %v", rtt, 2*delay)
	}
	_ = c.Close()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	_ = ln.Close()
	<-echoDone
}
