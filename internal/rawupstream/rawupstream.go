// Package rawupstream is a raw TCP "allauth" for the tests of the core and
// the doors: it makes the faults the stand-in cannot (a head that stalls, a
// body cut mid-way, something that is not HTTP, 100 MiB), and reads the
// process's memory figures. It is not part of the library's API.
package rawupstream

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

// Server is a TCP server with its own accept loop. It reads each
// request's head and hands it and the connection to behave, which may answer
// anything, stall or hang up; the connection is closed when behave returns.
// Close (run when the test ends) closes the listener and every connection and
// waits for all goroutines.
type Server struct {
	URL      string
	ln       net.Listener
	behave   func(u *Server, c net.Conn, head string)
	requests atomic.Int64 // request heads read, see Requests
	written  atomic.Int64 // body bytes written by StreamBody, see Written
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closed   bool
}

// New starts a Server on a free loopback port, closed when the test ends.
func New(tb testing.TB, behave func(u *Server, c net.Conn, head string)) *Server {
	tb.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	u := &Server{URL: "http://" + ln.Addr().String(), ln: ln, behave: behave, conns: map[net.Conn]struct{}{}}
	u.wg.Add(1)
	go u.accept()
	tb.Cleanup(u.Close)
	return u
}

func (u *Server) accept() {
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
			if head, ok := ReadHead(bufio.NewReader(c)); ok {
				u.requests.Add(1)
				u.behave(u, c, head)
			}
		}()
	}
}

// ReadHead consumes and returns a request head (GET has no body).
func ReadHead(r *bufio.Reader) (string, bool) {
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

// Requests is how many request heads the server has read.
func (u *Server) Requests() int64 { return u.requests.Load() }

// Written is how many body bytes StreamBody (and AddWritten) counted.
func (u *Server) Written() int64 { return u.written.Load() }

// AddWritten counts n body bytes a behave func wrote itself.
func (u *Server) AddWritten(n int) { u.written.Add(int64(n)) }

// Close stops the server and waits for its goroutines.
func (u *Server) Close() {
	u.mu.Lock()
	u.closed = true
	_ = u.ln.Close()
	for c := range u.conns {
		_ = c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

// WaitForPeer blocks until the client hangs up (or Close closes c).
func WaitForPeer(c net.Conn) { _, _ = io.Copy(io.Discard, c) }

// StreamBody writes n bytes of filler (a JSON string's inside) in 64 KiB
// writes, stopping at the first failed write (the client hung up), and
// counts what it wrote.
func (u *Server) StreamBody(w io.Writer, n int64) {
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

// RefusedURL returns a loopback URL nothing listens on.
func RefusedURL(tb testing.TB) string {
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

// HeapAfterGC returns the live heap after two collections.
func HeapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TotalAlloc is the bytes allocated since the process started.
func TotalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}
