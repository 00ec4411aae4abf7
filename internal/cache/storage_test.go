package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/allauthgo/headless/internal/testwait"
	"github.com/allauthgo/headless/introspect"
)

// TestEncodeDecodeRoundTrip proves what one instance writes to the shared
// store, another reads back as the same answer: a session (raw user with a
// project's extra fields, a method with its time), a 401 and a 410.
func TestEncodeDecodeRoundTrip(t *testing.T) {
	sess := newSession(t, 42)
	for _, tc := range []struct {
		name string
		e    *entry
	}{
		{"200", &entry{Session: sess, Status: http.StatusOK, FreshUntil: 1_893_456_000_123_456_789}},
		{"401", &entry{Status: http.StatusUnauthorized, FreshUntil: 1}},
		{"410", &entry{Status: http.StatusGone, FreshUntil: math.MaxInt64}},
		{"410 negative time", &entry{Status: http.StatusGone, FreshUntil: -5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := encodeEntry(tc.e, nil)
			if err != nil {
				t.Fatal(err)
			}
			if b[0] != valueMagic || b[1] != valueVersion {
				t.Fatalf("header % x", b[:2])
			}
			got, err := decodeEntry(b, nil)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got.Status != tc.e.Status || got.FreshUntil != tc.e.FreshUntil || (got.Session == nil) != (tc.e.Session == nil) {
				t.Fatalf("got %+v, want %+v", got, tc.e)
			}
			if tc.e.Session == nil {
				if len(b) != headerLen {
					t.Errorf("negative value is %d bytes, want %d", len(b), headerLen)
				}
				return
			}
			g, w := got.Session, tc.e.Session
			if g.User.ID != "42" || g.User.ID != w.User.ID || g.User.Display != w.User.Display ||
				g.User.Email != w.User.Email || g.User.Username != w.User.Username ||
				g.User.HasUsablePassword != w.User.HasUsablePassword {
				t.Errorf("user %+v, want %+v", g.User, w.User)
			}
			if !bytes.Equal(g.User.Raw, w.User.Raw) {
				t.Errorf("raw user %s, want %s", g.User.Raw, w.User.Raw)
			}
			var extra struct{ Tenant string }
			if err := g.User.Decode(&extra); err != nil || extra.Tenant != "acme" {
				t.Errorf("project field lost: %+v, %v", extra, err)
			}
			if len(g.Methods) != 1 || g.Methods[0].Method != "password" ||
				!g.Methods[0].At.Equal(w.Methods[0].At) || !bytes.Equal(g.Methods[0].Raw, w.Methods[0].Raw) {
				t.Errorf("methods %+v, want %+v", g.Methods, w.Methods)
			}
			if g.Methods[0].At.IsZero() {
				t.Error("method time lost")
			}
		})
	}

	t.Run("hand-built session", func(t *testing.T) {
		at := time.Unix(1_700_000_000, 500_000_000).UTC()
		in := &introspect.Session{
			User:    introspect.User{ID: "0b7f6c1e-uuid", Email: "bob@example.com", HasUsablePassword: true},
			Methods: []introspect.Method{{Method: "code", At: at}},
		}
		b, err := encodeEntry(&entry{Session: in, Status: http.StatusOK, FreshUntil: 9}, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeEntry(b, nil)
		if err != nil {
			t.Fatal(err)
		}
		u := got.Session.User
		if u.ID != in.User.ID || u.Email != in.User.Email || !u.HasUsablePassword ||
			len(got.Session.Methods) != 1 || !got.Session.Methods[0].At.Equal(at) {
			t.Errorf("got %+v", got.Session)
		}
	})
}

// TestEncodeEntryRefuses proves nothing but a 200 with a session, a 401 or a
// 410 can be written.
func TestEncodeEntryRefuses(t *testing.T) {
	for _, e := range []*entry{
		{Status: http.StatusOK},
		{Status: http.StatusInternalServerError},
		{Status: 0},
		{Session: newSession(t, 1), Status: http.StatusForbidden},
	} {
		if b, err := encodeEntry(e, nil); err == nil {
			t.Errorf("encodeEntry(%+v, nil) = % x, want an error", e, b)
		}
	}
}

// validValues returns what encodeEntry writes for a session, a 401 and a 410.
func validValues(tb testing.TB) [][]byte {
	tb.Helper()
	var out [][]byte
	for _, e := range []*entry{
		{Session: newSession(tb, 42), Status: http.StatusOK, FreshUntil: 1_893_456_000_000_000_000},
		{Status: http.StatusUnauthorized, FreshUntil: 1_893_456_000_000_000_000},
		{Status: http.StatusGone, FreshUntil: 1_893_456_000_000_000_000},
	} {
		b, err := encodeEntry(e, nil)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// corruptValues are values this version must refuse, each named.
func corruptValues(tb testing.TB) map[string][]byte {
	tb.Helper()
	vals := validValues(tb)
	ok200, ok401, ok410 := vals[0], vals[1], vals[2]
	with := func(b []byte, i int, v byte) []byte {
		b = bytes.Clone(b)
		b[i] = v
		return b
	}
	header200 := ok200[:headerLen]
	body := func(s string) []byte { return append(bytes.Clone(header200), s...) }
	return map[string][]byte{
		"nil":                      nil,
		"empty":                    {},
		"one byte":                 {valueMagic},
		"short header":             ok401[:headerLen-1],
		"wrong magic":              with(ok200, 0, 0xA6),
		"json, no header":          []byte(`{"user":{"id":1},"methods":[]}`),
		"version 0":                with(ok200, 1, 0),
		"version 1":                with(ok200, 1, 1),
		"version 3":                with(ok200, 1, 3),
		"version 3 negative":       with(ok410, 1, 3),
		"kind 0":                   with(ok401, 2, 0),
		"kind 4":                   with(ok401, 2, 4),
		"kind 255":                 with(ok200, 2, 255),
		"truncated json":           ok200[:len(ok200)-3],
		"header only 200":          header200,
		"200 null":                 body("null"),
		"200 empty object":         body("{}"),
		"200 array":                body("[]"),
		"200 user null id":         body(`{"user":{"id":null}}`),
		"200 user empty id":        body(`{"user":{"id":""}}`),
		"200 user float id":        body(`{"user":{"id":1.5}}`),
		"200 user not object":      body(`{"user":"alice"}`),
		"200 trailing garbage":     append(bytes.Clone(ok200), "xyz"...),
		"200 bad method":           body(`{"user":{"id":1},"methods":[1]}`),
		"401 with trailing bytes":  append(bytes.Clone(ok401), 0),
		"410 with a session body":  append(bytes.Clone(ok410), ok200[headerLen:]...),
		"401 as 200 kind":          with(ok401, 2, 1),
		"random bytes":             []byte("\x9f\x13\x00\xa7\x01\x02\xff\xfe\x10\x11\x12\x13\x14\x15"),
		"redis-ish string":         []byte("+OK\r\n"),
		"another app's json value": []byte(`{"session_key":"abc","expires":123}`),
	}
}

// TestDecodeEntryCorrupt proves an unreadable value is an error and never a
// session: a value from another app, another format version, or damaged.
func TestDecodeEntryCorrupt(t *testing.T) {
	for name, b := range corruptValues(t) {
		e, err := decodeEntry(b, nil)
		if err == nil || e != nil {
			t.Errorf("%s: decodeEntry = %+v, %v; want an error", name, e, err)
			continue
		}
		if !errors.Is(err, errCorrupt) {
			t.Errorf("%s: error %v is not errCorrupt", name, err)
		}
	}
}

// FuzzDecodeEntry proves decodeEntry never panics and never turns bytes into
// a session without a user id; whatever it accepts re-encodes to a value
// that decodes to the same answer. The seed corpus (valid and corrupt
// values) runs with every go test.
func FuzzDecodeEntry(f *testing.F) {
	for _, b := range validValues(f) {
		f.Add(b)
	}
	for _, b := range corruptValues(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeEntry(b, nil)
		if err != nil {
			if e != nil {
				t.Fatalf("an entry with an error: %+v", e)
			}
			return
		}
		switch e.Status {
		case http.StatusOK:
			if e.Session == nil || e.Session.User.ID == "" {
				t.Fatalf("a 200 without a usable session: %+v", e)
			}
		case http.StatusUnauthorized, http.StatusGone:
			if e.Session != nil {
				t.Fatalf("a %d with a session", e.Status)
			}
			if len(b) != headerLen {
				t.Fatalf("a %d from %d bytes", e.Status, len(b))
			}
		default:
			t.Fatalf("status %d", e.Status)
		}
		again, err := encodeEntry(e, nil)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		e2, err := decodeEntry(again, nil)
		if err != nil {
			t.Fatalf("decode of re-encoded value: %v", err)
		}
		if e2.Status != e.Status || e2.FreshUntil != e.FreshUntil ||
			(e.Session != nil && e2.Session.User.ID != e.Session.User.ID) {
			t.Fatalf("round trip changed %+v into %+v", e, e2)
		}
	})
}

var storageKeyRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// TestStorageStoreSharedNoContextDriver proves a fiber.Storage without the
// *WithContext methods works as a shared store: two Caches on one storage
// share a login and a 410, a Delete on one is a miss on the other, keys are
// prefix + 64 hex digits and no value or key holds the token.
func TestStorageStoreSharedNoContextDriver(t *testing.T) {
	ctx := context.Background()
	storage := newMapStorage()
	clk := newFakeClock()
	cfg := Config{Storage: storage, Prefix: "test:shared:", TTL: time.Minute, StaleIfError: 10 * time.Second, NegativeTTL: 3 * time.Second, Recheck: 50 * time.Millisecond, Now: clk.Now}
	a, b := newTestCache(t, cfg), newTestCache(t, cfg)
	store := a.shared

	tok := tokenFor(1)
	k := NewKey(testScope, tok)
	f := &fetchCounter{sess: newSession(t, 1)}
	if r := a.Load(ctx, k, time.Time{}, f.fetch); r.Session == nil {
		t.Fatalf("Load: %+v", r)
	}
	if exp := time.Duration(storage.lastExp.Load()); exp != time.Minute+10*time.Second {
		t.Errorf("session stored for %v, want TTL+StaleIfError", exp)
	}
	r, hit := peek(b, k)
	if !hit || r.Session == nil || r.Session.User.ID != "1" {
		t.Fatalf("second instance: hit=%v %+v", hit, r)
	}
	// The second instance's Load is answered by the store, not allauth.
	if r := b.Load(ctx, k, time.Time{}, f.fetch); r.Session == nil || f.calls.Load() != 1 {
		t.Fatalf("second instance Load: %+v after %d fetches", r, f.calls.Load())
	}

	keys := storage.keys()
	if len(keys) != 1 {
		t.Fatalf("storage holds %d keys", len(keys))
	}
	sk := keys[0]
	if sk != store.storageKey(k) || !strings.HasPrefix(sk, "test:shared:") ||
		!storageKeyRE.MatchString(strings.TrimPrefix(sk, "test:shared:")) {
		t.Errorf("storage key %q", sk)
	}
	if raw := storage.raw(sk); bytes.Contains(raw, []byte(tok)) || strings.Contains(sk, tok) {
		t.Error("the token is in the shared store")
	}

	if _, err := a.Evict(ctx, k); err != nil {
		t.Fatal(err)
	}
	// Without Redis pub/sub, the other instance's in-process copy goes at
	// its next recheck.
	clk.Add(cfg.Recheck + time.Millisecond)
	if _, ok := peek(b, k); ok {
		t.Fatal("hit on the other instance after Delete")
	}

	gone := NewKey(testScope, tokenFor(2))
	a.Load(ctx, gone, time.Time{}, (&fetchCounter{err: &introspect.AuthError{Status: http.StatusGone}}).fetch)
	if exp := time.Duration(storage.lastExp.Load()); exp != 3*time.Second {
		t.Errorf("410 stored for %v, want NegativeTTL", exp)
	}
	if r, ok := peek(b, gone); !ok || !errors.Is(r.Err, introspect.ErrSessionGone) {
		t.Errorf("shared 410: ok=%v %+v", ok, r)
	}
	if st := b.Stats(); st.Entries != 1 || st.StoreErrors != 0 {
		t.Errorf("Stats = %+v", st)
	}

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if storage.closed.Load() {
		t.Error("Cache.Close closed the caller's storage")
	}
}

// TestStorageStoreDefaults proves an empty Prefix means DefaultPrefix.
func TestStorageStoreDefaults(t *testing.T) {
	s := newStorageStore(newMapStorage(), "", 0, nil)
	k := keyFor(1)
	if got := s.storageKey(k); got != DefaultPrefix+k.String() {
		t.Errorf("StorageKey = %q", got)
	}
}

// TestStorageStoreForeignValue proves a value this package did not write
// (another app's, another format version's) is a counted miss, never a
// session, and a Load replaces it with a readable one.
func TestStorageStoreForeignValue(t *testing.T) {
	ctx := context.Background()
	storage := newMapStorage()
	c := newTestCache(t, Config{Storage: storage, Prefix: "test:foreign:"})
	store := c.shared
	k := keyFor(1)
	corrupt := corruptValues(t)
	var errorsWant int64
	for _, name := range []string{"another app's json value", "version 1", "kind 255", "200 null", "401 with trailing bytes"} {
		_ = storage.Set(store.storageKey(k), corrupt[name], 0)
		if r, ok := peek(c, k); ok || r.Session != nil {
			t.Fatalf("%s: Get = %v %+v", name, ok, r)
		}
		errorsWant++
		if got := c.Stats().StoreErrors; got != errorsWant {
			t.Errorf("%s: StoreErrors = %d, want %d", name, got, errorsWant)
		}
	}
	f := &fetchCounter{sess: newSession(t, 1)}
	if r := c.Load(ctx, k, time.Time{}, f.fetch); r.Session != f.sess || f.calls.Load() != 1 {
		t.Fatalf("Load over a foreign value: %+v after %d fetches", r, f.calls.Load())
	}
	if r, ok := peek(c, k); !ok || r.Session == nil {
		t.Fatalf("Load did not replace the foreign value: %v %+v", ok, r)
	}
	// Unreadable values are not storage failures: the store does not rest.
	if _, err := store.Get(ctx, k); err != nil {
		t.Errorf("store resting after unreadable values: %v", err)
	}
}

// TestStorageStoreFailing proves a storage that always fails costs requests
// nothing but the cache: Get is a miss, Load fetches and returns the session,
// errors are counted, and after three failures in a row the storage is not
// called at all for a while (then it is tried again).
func TestStorageStoreFailing(t *testing.T) {
	ctx := context.Background()
	storage := &errStorage{}
	c := newTestCache(t, Config{Storage: storage, StoreTimeout: 20 * time.Millisecond})
	f := &fetchCounter{sess: newSession(t, 1)}

	if _, ok := peek(c, keyFor(1)); ok { // failure 1
		t.Fatal("hit from a failing storage")
	}
	if r := c.Load(ctx, keyFor(1), time.Time{}, f.fetch); r.Session != f.sess || r.Err != nil { // failures 2 (Get) and 3 (Set)
		t.Fatalf("Load = %+v", r)
	}
	if n := storage.calls.Load(); n != 3 {
		t.Fatalf("storage called %d times, want 3", n)
	}
	// Resting: nothing reaches the storage, everything still works.
	for i := range 5 {
		if _, ok := peek(c, keyFor(10+i)); ok {
			t.Fatal("hit while resting")
		}
		if r := c.Load(ctx, keyFor(100+i), time.Time{}, f.fetch); r.Session != f.sess {
			t.Fatalf("Load while resting = %+v", r)
		}
	}
	if n := storage.calls.Load(); n != 3 {
		t.Errorf("storage called %d times while resting, want 3", n)
	}
	// An eviction is never skipped: its delete is tried even while resting.
	if _, err := c.Evict(ctx, keyFor(1)); err == nil || errors.Is(err, ErrStoreUnavailable) {
		t.Errorf("Evict while resting: %v, want the storage's own error", err)
	}
	if n := storage.calls.Load(); n != 4 {
		t.Errorf("storage called %d times by an Evict while resting, want 4", n)
	}
	st := c.Stats()
	// 3 failures, then per round a Get, the Load's Get and Set; then Delete.
	if want := int64(3 + 5*3 + 1); st.StoreErrors != want {
		t.Errorf("StoreErrors = %d, want %d", st.StoreErrors, want)
	}
	if st.Fetches != 6+6 { // peek asks allauth too, and is answered "no"
		t.Errorf("Fetches = %d, want 12", st.Fetches)
	}
	// The rest ends: the storage is tried again.
	testwait.Until(t, 10*time.Second, "the storage to be tried again", func() bool {
		peek(c, keyFor(1))
		return storage.calls.Load() != 3
	})
}

// flakyStorage is a map storage that fails while failing is set.
type flakyStorage struct {
	*mapStorage
	failing atomic.Bool
}

func (s *flakyStorage) Get(key string) ([]byte, error) {
	if s.failing.Load() {
		s.calls.Add(1)
		return nil, errBroken
	}
	return s.mapStorage.Get(key)
}

// TestStorageStoreSuccessResetsStreak proves only three failures in a row
// make the store rest: a success in between starts the count again.
func TestStorageStoreSuccessResetsStreak(t *testing.T) {
	ctx := context.Background()
	fs := &flakyStorage{mapStorage: newMapStorage()}
	s := newStorageStore(fs, "test:flaky:", time.Second, nil)
	for round := range 3 {
		fs.failing.Store(true)
		for range 2 {
			if _, err := s.Get(ctx, keyFor(1)); err == nil || errors.Is(err, ErrStoreUnavailable) {
				t.Fatalf("round %d: err = %v, want the storage's error", round, err)
			}
		}
		fs.failing.Store(false)
		if _, err := s.Get(ctx, keyFor(1)); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	fs.failing.Store(true)
	for range 3 {
		_, _ = s.Get(ctx, keyFor(1))
	}
	before := fs.calls.Load()
	if _, err := s.Get(ctx, keyFor(1)); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("after three failures in a row: %v, want ErrStoreUnavailable", err)
	}
	if fs.calls.Load() != before {
		t.Error("the storage was called while resting")
	}
}

// TestStorageStoreHanging proves a storage that never answers cannot hold a
// request: Get misses and Load returns the fetched session after about
// StoreTimeout per operation, with or without context support in the driver.
func TestStorageStoreHanging(t *testing.T) {
	const storeTimeout = 30 * time.Millisecond
	const generous = 3 * time.Second // many times 2*StoreTimeout, for slow CI
	for _, tc := range []struct {
		name    string
		storage func(t *testing.T) (fiber.Storage, *atomic.Int64)
	}{
		{"with context", func(*testing.T) (fiber.Storage, *atomic.Int64) {
			s := &hangCtxStorage{}
			return s, &s.calls
		}},
		{"without context", func(t *testing.T) (fiber.Storage, *atomic.Int64) {
			t.Helper()
			s := newHangPlainStorage(t)
			return s, &s.calls
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			storage, calls := tc.storage(t)
			c := newTestCache(t, Config{Storage: storage, StoreTimeout: storeTimeout})
			f := &fetchCounter{sess: newSession(t, 1)}

			start := time.Now()
			if _, ok := peek(c, keyFor(1)); ok {
				t.Fatal("hit from a hanging storage")
			}
			if d := time.Since(start); d > generous {
				t.Errorf("Get took %v with StoreTimeout %v", d, storeTimeout)
			}
			start = time.Now()
			r := c.Load(ctx, keyFor(1), time.Time{}, f.fetch)
			if d := time.Since(start); d > generous {
				t.Errorf("Load took %v with StoreTimeout %v", d, storeTimeout)
			}
			if r.Session != f.sess || r.Err != nil {
				t.Fatalf("Load = %+v", r)
			}
			if n := c.Stats().StoreErrors; n != 3 {
				t.Errorf("StoreErrors = %d, want 3", n)
			}
			if n := calls.Load(); n != 3 {
				t.Errorf("storage called %d times, want 3", n)
			}
			// Resting now: the next Load does not wait at all on the storage.
			start = time.Now()
			if r := c.Load(ctx, keyFor(2), time.Time{}, f.fetch); r.Session != f.sess {
				t.Fatalf("Load while resting = %+v", r)
			}
			if d := time.Since(start); d > generous {
				t.Errorf("Load while resting took %v", d)
			}
			if n := calls.Load(); n != 3 {
				t.Errorf("storage called %d times while resting, want 3", n)
			}
		})
	}
}

// TestStorageStoreRespectsCallerContext proves the store's timeout is
// applied on top of the caller's context, not instead of it.
func TestStorageStoreRespectsCallerContext(t *testing.T) {
	s := newStorageStore(&hangCtxStorage{}, "test:ctx:", time.Hour, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Get(ctx, keyFor(1)); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled ctx: %v", err)
	}
}

// TestStorageStoreSessionJSON proves the stored body is allauth's data object,
// so any other client of the store can read it.
func TestStorageStoreSessionJSON(t *testing.T) {
	ctx := context.Background()
	storage := newMapStorage()
	s := newStorageStore(storage, "test:json:", 0, nil)
	if err := s.Set(ctx, keyFor(1), &entry{Session: newSession(t, 5), Status: http.StatusOK, FreshUntil: 7}, time.Minute); err != nil {
		t.Fatal(err)
	}
	raw := storage.raw(s.storageKey(keyFor(1)))
	var data struct {
		User struct {
			ID     int    `json:"id"`
			Tenant string `json:"tenant"`
		} `json:"user"`
		Methods []struct {
			Method string  `json:"method"`
			At     float64 `json:"at"`
		} `json:"methods"`
	}
	if err := json.Unmarshal(raw[headerLen:], &data); err != nil {
		t.Fatalf("body %q: %v", raw[headerLen:], err)
	}
	if data.User.ID != 5 || data.User.Tenant != "acme" || len(data.Methods) != 1 || data.Methods[0].At != 1700000000.25 {
		t.Errorf("body %s", raw[headerLen:])
	}
}
