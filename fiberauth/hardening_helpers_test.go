package fiberauth_test

// Helpers of the hardening tests (faults, hostile input, floods, fuzzing,
// secrets, shutdown): a raw TCP "allauth" for faults the stand-in cannot
// make, a request straight through app.Handler() (what the middleware sees,
// without a server's limits), and a private redis-server a test may kill.

import (
	"bufio"
	"context"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/storage/redis/v3"
	"github.com/valyala/fasthttp"
)

// soak reports whether the long versions of the hardening tests were asked
// for (SOAK=1); CI runs the short ones.
func soak() bool { return os.Getenv("SOAK") != "" }

// ---------------------------------------------------------------------------
// A raw TCP upstream.

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

// ---------------------------------------------------------------------------
// Requests straight into the handler.

// answer is what a handler answered one in-process request.
type answer struct {
	Status int
	Body   string
	Header map[string]string // the headers the tests look at
	Raw    string            // every response header, and the body
}

// pair is one request header line; a Cookie pair is parsed as fasthttp
// parses a Cookie header.
type pair struct{ name, value string }

// serveDirect runs one GET / with headers through h (an app.Handler()), as
// fasthttp's server would after parsing the request, but without its buffer
// limits: this is exactly what the middleware sees.
func serveDirect(h fasthttp.RequestHandler, headers ...pair) answer {
	var fctx fasthttp.RequestCtx
	fctx.Request.Header.SetMethod(fiber.MethodGet)
	fctx.Request.SetRequestURI("/")
	for _, p := range headers {
		fctx.Request.Header.Add(p.name, p.value)
	}
	h(&fctx)
	a := answer{Status: fctx.Response.StatusCode(), Body: string(fctx.Response.Body()), Header: map[string]string{}}
	a.Raw = fctx.Response.Header.String() + a.Body
	for _, k := range []string{fiber.HeaderRetryAfter, fiber.HeaderWWWAuthenticate, fiber.HeaderCacheControl, fiber.HeaderContentType} {
		if v := fctx.Response.Header.Peek(k); len(v) > 0 {
			a.Header[k] = string(v)
		}
	}
	return a
}

// handlerApp returns app.Handler() of an app that runs mw and names the
// user (whoHandler) on every path.
func handlerApp(tb testing.TB, mw fiber.Handler) fasthttp.RequestHandler {
	tb.Helper()
	return newApp(tb, mw).Handler()
}

// randomToken is a fresh 32-character [a-z0-9] token, shaped like allauth's.
func randomToken(r *rand.Rand) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [32]byte
	for i := range b {
		b[i] = alphabet[r.IntN(len(alphabet))]
	}
	return string(b[:])
}

// heapAfterGC returns the live heap after two collections.
func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// ---------------------------------------------------------------------------
// A private redis-server.

// redisStorage connects a gofiber redis storage to addr, closed when the
// test ends.
func redisStorage(tb testing.TB, addr string, poolSize int) *redis.Storage {
	tb.Helper()
	var st *redis.Storage
	func() {
		defer func() {
			if p := recover(); p != nil { // redis.New panics when it cannot connect
				tb.Fatalf("redis at %s: %v", addr, p)
			}
		}()
		st = redis.New(redis.Config{Addrs: []string{addr}, PoolSize: poolSize})
	}()
	tb.Cleanup(func() {
		if err := st.Close(); err != nil {
			tb.Errorf("close redis storage: %v", err)
		}
	})
	return st
}

// scanAll returns every key under prefix (SCAN, not KEYS) with its value.
func scanAll(tb testing.TB, st *redis.Storage, prefix string) map[string][]byte {
	tb.Helper()
	out, err := scanRedis(st, prefix)
	if err != nil {
		tb.Fatalf("SCAN %s*: %v", prefix, err)
	}
	return out
}

// scanRedis is scanAll reporting failures (Redis may be down).
func scanRedis(st *redis.Storage, prefix string) (map[string][]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := map[string][]byte{}
	iter := st.Conn().Scan(ctx, 0, prefix+"*", 500).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		v, err := st.GetWithContext(ctx, k) // nil, nil if it expired meanwhile
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, iter.Err()
}
