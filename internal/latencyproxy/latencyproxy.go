// Package latencyproxy is a loopback TCP proxy that delays every byte by a
// fixed latency in each direction, in order, for tests: a Redis "0.5 ms
// away", or a Redis Cluster whose bus is slow. It is not part of the
// library's API.
package latencyproxy

import (
	"context"
	"net"
	"sync"
	"time"
)

// maxQueued bounds the chunks read but not yet written, per direction of one
// connection; a reader waits beyond it (back pressure, as a slow link).
const maxQueued = 1024

// Proxy forwards connections from its own loopback address to a target,
// each direction delayed by Delay.
type Proxy struct {
	ln     net.Listener
	target string
	delay  time.Duration

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Start listens on a free loopback port and forwards to target with delay
// each way. Close stops it and every connection.
func Start(target string, delay time.Duration) (*Proxy, error) {
	return Listen("127.0.0.1:0", target, delay)
}

// Listen is Start on a given address.
func Listen(addr, target string, delay time.Duration) (*Proxy, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, delay: delay, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops accepting, closes every connection and waits for the proxy's
// goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	err := p.ln.Close()
	p.wg.Wait()
	return err
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(in) {
			return
		}
		p.wg.Add(1)
		go p.serve(in)
	}
}

func (p *Proxy) serve(in net.Conn) {
	defer p.wg.Done()
	d := net.Dialer{Timeout: 5 * time.Second}
	out, err := d.DialContext(context.Background(), "tcp", p.target)
	if err != nil || !p.track(out) {
		_ = in.Close()
		return
	}
	var pair sync.WaitGroup
	pair.Add(2)
	go func() { defer pair.Done(); p.pipe(out, in) }()
	go func() { defer pair.Done(); p.pipe(in, out) }()
	pair.Wait()
	p.mu.Lock()
	delete(p.conns, in)
	delete(p.conns, out)
	p.mu.Unlock()
}

type chunk struct {
	due  time.Time
	data []byte
}

// pipe copies src to dst, each chunk written delay after it was read, in
// order. When either side ends, both are closed.
func (p *Proxy) pipe(dst, src net.Conn) {
	q := make(chan chunk, maxQueued)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range q {
			if wait := time.Until(c.due); wait > 0 {
				time.Sleep(wait)
			}
			if _, err := dst.Write(c.data); err != nil {
				_ = src.Close()
				for range q { // drain, so the reader is not stuck
				}
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			q <- chunk{due: time.Now().Add(p.delay), data: append([]byte(nil), buf[:n]...)}
		}
		if err != nil {
			break
		}
	}
	close(q)
	<-done
	// Half-close would be kinder, but Redis clients do not rely on it:
	// closing both ends mirrors a dropped link.
	_ = dst.Close()
	_ = src.Close()
}
