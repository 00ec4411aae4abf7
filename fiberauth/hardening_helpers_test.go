package fiberauth_test

// Helpers of the hardening tests (faults, hostile input, floods, fuzzing,
// secrets, shutdown): a raw TCP "allauth" for faults the stand-in cannot
// make, a request straight through app.Handler() (what the middleware sees,
// without a server's limits), and a private redis-server a test may kill.

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
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

// totalAlloc is the bytes allocated since the process started.
func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// ---------------------------------------------------------------------------
// A private redis-server.

// redisSkipMsg names REDIS_ADDR, so that CI (which has redis-server and sets
// REDIS_ADDR) fails on the skip instead of hiding it.
const redisSkipMsg = "no redis-server: set REDIS_SERVER_BIN or put redis-server on PATH (CI, which sets REDIS_ADDR, has it)"

// ownRedis is a redis-server the test starts, kills and restarts itself, so
// the shared REDIS_ADDR server is never disturbed.
type ownRedis struct {
	bin, dir string
	port     int
	cmd      *exec.Cmd
	done     chan struct{}
}

// startOwnRedis starts a private redis-server on a free port, stopped when
// the test ends, or skips the test (with a message naming REDIS_ADDR) when
// there is no redis-server.
func startOwnRedis(tb testing.TB) *ownRedis {
	tb.Helper()
	bin := os.Getenv("REDIS_SERVER_BIN")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("redis-server"); err != nil {
			tb.Skip(redisSkipMsg + " (REDIS_ADDR)")
		}
	}
	r := &ownRedis{bin: bin, dir: tb.TempDir(), port: freeTCPPort(tb)}
	r.start(tb)
	tb.Cleanup(func() { r.stop(tb) })
	return r
}

func freeTCPPort(tb testing.TB) int {
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

func (r *ownRedis) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// start runs redis-server on r.port (again, after stop) and waits for PING.
func (r *ownRedis) start(tb testing.TB) {
	tb.Helper()
	//nolint:gosec // the binary is the test's own redis-server
	r.cmd = exec.Command(r.bin,
		"--bind", "127.0.0.1", "--port", strconv.Itoa(r.port),
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--logfile", "")
	if err := r.cmd.Start(); err != nil {
		tb.Fatalf("start redis-server: %v", err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(r.cmd, r.done)
	deadline := time.Now().Add(10 * time.Second)
	for !redisPing(r.addr()) {
		if time.Now().After(deadline) {
			r.stop(tb)
			tb.Fatalf("redis-server on %s did not answer PING", r.addr())
		}
		select {
		case <-r.done:
			tb.Fatalf("redis-server on %s exited (port taken?)", r.addr())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop kills redis-server (SIGKILL: a crash, not a clean shutdown).
func (r *ownRedis) stop(tb testing.TB) {
	tb.Helper()
	if r.cmd == nil {
		return
	}
	if err := r.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		tb.Errorf("kill redis-server: %v", err)
	}
	<-r.done
	r.cmd = nil
}

func redisPing(addr string) bool {
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
