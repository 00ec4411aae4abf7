package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/testwait"
	"github.com/allauthgo/headless/introspect"
)

// testEndpoint is the allauth endpoint every test key is scoped to.
const testEndpoint = "https://allauth.example/_allauth/app/v1/auth/session"

var testScope = NewScope(introspect.SessionToken, testEndpoint)

// tokenFor returns a distinct 32-byte session token for i.
func tokenFor(i int) string { return fmt.Sprintf("tok-%028d", i) }

// keyFor returns the key of tokenFor(i).
func keyFor(i int) Key { return NewKey(testScope, tokenFor(i)) }

// userJSON is an alice-like user object as allauth's default serialize_user
// writes it, plus a field a project's own serialize_user might add.
func userJSON(id int) string {
	return `{"id":` + strconv.Itoa(id) + `,"display":"alice","email":"alice@example.com",` +
		`"username":"alice","has_usable_password":true,"tenant":"acme"}`
}

// sessionJSON is allauth's data object for user id: the user and one
// password method.
func sessionJSONFor(id int) []byte {
	return []byte(`{"user":` + userJSON(id) +
		`,"methods":[{"method":"password","at":1700000000.25,"username":"alice"}]}`)
}

// newSession decodes a realistic session for user id, as the introspect
// client would (Raw kept for the user and the method).
func newSession(tb testing.TB, id int) *introspect.Session {
	tb.Helper()
	var s introspect.Session
	if err := json.Unmarshal(sessionJSONFor(id), &s); err != nil {
		tb.Fatalf("decode session %d: %v", id, err)
	}
	return &s
}

// fakeClock is an injectable Config.Now.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Add(d time.Duration) { c.ns.Add(int64(d)) }
func (c *fakeClock) Set(t time.Time)     { c.ns.Store(t.UnixNano()) }

// newTestCache makes a Cache that is closed when the test ends.
func newTestCache(tb testing.TB, cfg Config) *Cache {
	tb.Helper()
	c := New(cfg)
	tb.Cleanup(func() {
		if err := c.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return c
}

// fetchCounter is a Fetch that counts its calls and returns a fixed answer.
type fetchCounter struct {
	calls atomic.Int64
	sess  *introspect.Session
	err   error
}

func (f *fetchCounter) fetch(context.Context) (*introspect.Session, error) {
	f.calls.Add(1)
	return f.sess, f.err
}

func upstreamErr() error {
	return &introspect.UpstreamError{Status: 502, Reason: "bad gateway"}
}

// waitLoadWaiters waits until n goroutines are parked in Cache.Load's select,
// i.e. have joined a flight and wait for its result (or their ctx). Counting
// parked goroutines in a stack dump is the only way to know a Load has joined
// singleflight before the fetch is released, which Coalesced depends on.
func waitLoadWaiters(tb testing.TB, n int) {
	tb.Helper()
	buf := make([]byte, 1<<20)
	testwait.Until(tb, 30*time.Second, fmt.Sprintf("%d Loads waiting", n), func() bool {
		var got int
		got, buf = parkedInLoad(buf)
		return got >= n
	})
}

func parkedInLoad(buf []byte) (int, []byte) {
	for {
		m := runtime.Stack(buf, true)
		if m < len(buf) {
			buf = buf[:m]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		header, _, _ := bytes.Cut(g, []byte("\n"))
		if bytes.Contains(header, []byte("[select")) &&
			bytes.Contains(g, []byte("/cache.(*Cache).Load(")) {
			count++
		}
	}
	return count, buf[:cap(buf)]
}

// mapStorage is a fiber.Storage without the *WithContext methods, backed by
// a map. It honours expirations and counts calls.
type mapStorage struct {
	mu      sync.Mutex
	m       map[string]mapValue
	calls   atomic.Int64
	lastExp atomic.Int64 // the exp of the last Set
	closed  atomic.Bool
}

type mapValue struct {
	val     []byte
	expires time.Time // zero: never
}

func newMapStorage() *mapStorage { return &mapStorage{m: map[string]mapValue{}} }

func (s *mapStorage) Get(key string) ([]byte, error) {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	if !ok || (!v.expires.IsZero() && time.Now().After(v.expires)) {
		return nil, nil
	}
	return bytes.Clone(v.val), nil
}

func (s *mapStorage) Set(key string, val []byte, exp time.Duration) error {
	s.calls.Add(1)
	s.lastExp.Store(int64(exp))
	s.mu.Lock()
	defer s.mu.Unlock()
	v := mapValue{val: bytes.Clone(val)}
	if exp > 0 {
		v.expires = time.Now().Add(exp)
	}
	s.m[key] = v
	return nil
}

func (s *mapStorage) Delete(key string) error {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

func (s *mapStorage) Reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.m)
	return nil
}

func (s *mapStorage) Close() error {
	s.closed.Store(true)
	return nil
}

func (s *mapStorage) keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.m))
	for k := range s.m {
		out = append(out, k)
	}
	return out
}

func (s *mapStorage) raw(key string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.m[key].val)
}

var errBroken = errors.New("storage: connection refused")

// errStorage fails every operation, with and without a context, and counts
// the calls that reached it.
type errStorage struct{ calls atomic.Int64 }

func (s *errStorage) Get(string) ([]byte, error)              { s.calls.Add(1); return nil, errBroken }
func (s *errStorage) Set(string, []byte, time.Duration) error { s.calls.Add(1); return errBroken }
func (s *errStorage) Delete(string) error                     { s.calls.Add(1); return errBroken }
func (s *errStorage) Reset() error                            { return errBroken }
func (s *errStorage) Close() error                            { return nil }

func (s *errStorage) GetWithContext(context.Context, string) ([]byte, error) {
	s.calls.Add(1)
	return nil, errBroken
}

func (s *errStorage) SetWithContext(context.Context, string, []byte, time.Duration) error {
	s.calls.Add(1)
	return errBroken
}

func (s *errStorage) DeleteWithContext(context.Context, string) error {
	s.calls.Add(1)
	return errBroken
}

// hangCtxStorage is a driver that never answers but honours contexts, as
// gofiber/storage drivers do: every *WithContext call blocks until its ctx
// ends. The plain methods are never used by storageStore for such a driver.
type hangCtxStorage struct{ calls atomic.Int64 }

func (s *hangCtxStorage) wait(ctx context.Context) error {
	s.calls.Add(1)
	<-ctx.Done()
	return ctx.Err()
}

func (s *hangCtxStorage) Get(string) ([]byte, error)              { panic("plain Get used") }
func (s *hangCtxStorage) Set(string, []byte, time.Duration) error { panic("plain Set used") }
func (s *hangCtxStorage) Delete(string) error                     { panic("plain Delete used") }
func (s *hangCtxStorage) Reset() error                            { return nil }
func (s *hangCtxStorage) Close() error                            { return nil }

func (s *hangCtxStorage) GetWithContext(ctx context.Context, _ string) ([]byte, error) {
	return nil, s.wait(ctx)
}

func (s *hangCtxStorage) SetWithContext(ctx context.Context, _ string, _ []byte, _ time.Duration) error {
	return s.wait(ctx)
}

func (s *hangCtxStorage) DeleteWithContext(ctx context.Context, _ string) error {
	return s.wait(ctx)
}

// hangPlainStorage is a driver without context support that hangs until
// released; the test releases it at the end so that no goroutine leaks.
type hangPlainStorage struct {
	calls   atomic.Int64
	release chan struct{}
}

func newHangPlainStorage(tb testing.TB) *hangPlainStorage {
	tb.Helper()
	s := &hangPlainStorage{release: make(chan struct{})}
	tb.Cleanup(func() { close(s.release) })
	return s
}

func (s *hangPlainStorage) Get(string) ([]byte, error) {
	s.calls.Add(1)
	<-s.release
	return nil, errBroken
}

func (s *hangPlainStorage) Set(string, []byte, time.Duration) error {
	s.calls.Add(1)
	<-s.release
	return errBroken
}

func (s *hangPlainStorage) Delete(string) error {
	s.calls.Add(1)
	<-s.release
	return errBroken
}

func (s *hangPlainStorage) Reset() error { return nil }
func (s *hangPlainStorage) Close() error { return nil }

var errPeek = errors.New("peek: allauth is not asked")

// peek answers as Load would from either tier, without asking allauth: ok
// is false when neither held a fresh answer (the fetch would have run).
func peek(c *Cache, k Key) (Result, bool) {
	asked := false
	r := c.Load(context.Background(), k, time.Time{}, func(context.Context) (*introspect.Session, error) {
		asked = true
		return nil, errPeek
	})
	return r, !asked
}
