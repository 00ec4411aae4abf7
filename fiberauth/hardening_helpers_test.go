package fiberauth_test

// Helpers of the hardening tests (faults, hostile input, floods, fuzzing,
// secrets, shutdown): a raw TCP "allauth" for faults the stand-in cannot
// make, a request straight through app.Handler() (what the middleware sees,
// without a server's limits), and a private redis-server a test may kill.

import (
	"context"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/storage/redis/v3"
	"github.com/valyala/fasthttp"

	"github.com/allauthgo/headless/internal/rawupstream"
)

// soak reports whether the long versions of the hardening tests were asked
// for (SOAK=1); CI runs the short ones.
func soak() bool { return os.Getenv("SOAK") != "" }

// ---------------------------------------------------------------------------
// A raw TCP upstream.

// A raw TCP "allauth" for the faults the stand-in cannot make, shared
// with the core's tests (internal/rawupstream).
type rawUpstream = rawupstream.Server

var (
	newRawUpstream = rawupstream.New
	refusedURL     = rawupstream.RefusedURL
	heapAfterGC    = rawupstream.HeapAfterGC
)

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
