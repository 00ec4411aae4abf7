package headless

// A raw TCP "allauth" for the faults the stand-in cannot make (a head that
// stalls, a body cut mid-way, something that is not HTTP, 100 MiB), and the
// process's memory figures.

import (
	"bufio"
	"context"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// rawUpstream is a TCP server with its own accept loop. It reads each
// request's head and hands it and the connection to behave, which may answer
// anything, stall or hang up; the connection is closed when behave returns.
// Close (run when the test ends) closes the listener and every connection and
// waits for all goroutines.
type rawUpstream struct {
	URL      string
	ln       net.Listener
	behave   func(u *rawUpstream, c net.Conn, head string)
	requests atomic.Int64 // request heads read
	written  atomic.Int64 // body bytes written by streamBody
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closed   bool
}

func newRawUpstream(tb testing.TB, behave func(u *rawUpstream, c net.Conn, head string)) *rawUpstream {
	tb.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	u := &rawUpstream{URL: "http://" + ln.Addr().String(), ln: ln, behave: behave, conns: map[net.Conn]struct{}{}}
	u.wg.Add(1)
	go u.accept()
	tb.Cleanup(u.Close)
	return u
}

func (u *rawUpstream) accept() {
	defer u.wg.Done()
	for {
		c, err := u.ln.Accept()
		if err != nil {
			return
		}
		u.mu.Lock()
		if u.closed {
			u.mu.Unlock()
			_ = c.Close()
			return
		}
		u.conns[c] = struct{}{}
		u.wg.Add(1)
		u.mu.Unlock()
		go func() {
			defer u.wg.Done()
			defer func() {
				u.mu.Lock()
				delete(u.conns, c)
				u.mu.Unlock()
				_ = c.Close()
			}()
			if head, ok := readHead(bufio.NewReader(c)); ok {
				u.requests.Add(1)
				u.behave(u, c, head)
			}
		}()
	}
}

// readHead consumes and returns a request head (GET has no body).
func readHead(r *bufio.Reader) (string, bool) {
	var head strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", false
		}
		head.WriteString(line)
		if line == "\r\n" || line == "\n" {
			return head.String(), true
		}
	}
}

// Close stops the server and waits for its goroutines.
func (u *rawUpstream) Close() {
	u.mu.Lock()
	u.closed = true
	_ = u.ln.Close()
	for c := range u.conns {
		_ = c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

// waitForPeer blocks until the client hangs up (or Close closes c).
func waitForPeer(c net.Conn) { _, _ = io.Copy(io.Discard, c) }

// streamBody writes n bytes of filler (a JSON string's inside) in 64 KiB
// writes, stopping at the first failed write (the client hung up), and
// counts what it wrote.
func (u *rawUpstream) streamBody(w io.Writer, n int64) {
	chunk := []byte(strings.Repeat("a", 64<<10))
	for n > 0 {
		k := min(int64(len(chunk)), n)
		m, err := w.Write(chunk[:k])
		u.written.Add(int64(m))
		if err != nil {
			return
		}
		n -= int64(m)
	}
}

// refusedURL returns a loopback URL nothing listens on.
func refusedURL(tb testing.TB) string {
	tb.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		tb.Fatal(err)
	}
	return "http://" + addr
}

// heapAfterGC returns the live heap after two collections.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// totalAlloc is the bytes allocated since the process started.
func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}
