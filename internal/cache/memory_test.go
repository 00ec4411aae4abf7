package cache

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/allauthgo/headless/introspect"
)

// heapAlloc returns the live heap after a full collection.
func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

const mib = 1 << 20

// floodKeys is how many distinct keys the bound tests insert: a million, or
// 200,000 under -race or -short (the race detector makes each insert several
// times slower; BenchmarkMemoryFlood always does the full million).
func floodKeys() int {
	if raceEnabled || testing.Short() {
		return 200_000
	}
	return 1_000_000
}

// TestMemoryStoreBoundUnderFlood proves MaxEntries holds when a million
// distinct keys are inserted, for authenticated and for negative entries
// separately: Len never exceeds 2*MaxEntries, every insert past the bound is
// counted as rejected, and the heap grows with MaxEntries, not with the
// number of keys seen.
func TestMemoryStoreBoundUnderFlood(t *testing.T) {
	const maxEntries = 10_000
	for _, tc := range []struct {
		name  string
		entry *entry
	}{
		{"authenticated", &entry{Session: newSession(t, 1), Status: http.StatusOK, FreshUntil: 1}},
		{"negative", &entry{Status: http.StatusGone, FreshUntil: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := floodKeys()
			before := heapAlloc()
			s := newMemoryStore(maxEntries)
			defer s.Close() //nolint:errcheck // memoryStore.Close never fails
			for i := range n {
				s.set(keyFor(i), tc.entry, time.Hour)
				if i%10_000 == 0 {
					if l := s.Len(); l > 2*maxEntries {
						t.Fatalf("after %d inserts Len = %d > 2*MaxEntries", i+1, l)
					}
				}
			}
			after := heapAlloc()
			growth := float64(after) - float64(before)
			t.Logf("%d keys into MaxEntries %d: heap %.1f MiB -> %.1f MiB (growth %.2f MiB, %.0f B per held entry)",
				n, maxEntries, float64(before)/mib, float64(after)/mib, growth/mib, growth/maxEntries)

			if l := s.Len(); l != maxEntries {
				t.Errorf("Len = %d, want %d (one full table)", l, maxEntries)
			}
			if got, want := s.Rejected(), int64(n-maxEntries); got != want {
				t.Errorf("Rejected = %d, want %d", got, want)
			}
			// The first maxEntries keys were kept, the rest declined.
			for _, i := range []int{0, maxEntries - 1, maxEntries, n - 1} {
				e := s.get(keyFor(i))
				if (e != nil) != (i < maxEntries) {
					t.Errorf("key %d held = %v", i, e != nil)
				}
			}
			// 10,000 entries cost a few MiB at most; a store that kept a
			// million would grow by well over 100 MiB.
			if growth > 32*mib {
				t.Errorf("heap grew by %.1f MiB for %d held entries", growth/mib, maxEntries)
			}
			runtime.KeepAlive(s)
		})
	}
}

// TestMemoryNegativeFloodKeepsSessions proves a flood of random tokens (each
// a 410 from allauth) fills only the negative table: every session cached
// before it still hits, and the flood's excess is rejected.
func TestMemoryNegativeFloodKeepsSessions(t *testing.T) {
	const maxEntries = 1_000
	flood := 20_000
	if raceEnabled || testing.Short() {
		flood = 5_000
	}
	ctx := context.Background()
	c := newTestCache(t, Config{MaxEntries: maxEntries, TTL: time.Hour, NegativeTTL: time.Hour})
	for i := range maxEntries {
		r := c.Load(ctx, keyFor(i), time.Time{}, func(context.Context) (*introspect.Session, error) {
			return newSession(t, i), nil
		})
		if r.Session == nil {
			t.Fatalf("Load %d: %v", i, r.Err)
		}
	}
	gone := func(context.Context) (*introspect.Session, error) {
		return nil, &introspect.AuthError{Status: http.StatusGone}
	}
	for i := maxEntries; i < maxEntries+flood; i++ {
		if r := c.Load(ctx, keyFor(i), time.Time{}, gone); !errors.Is(r.Err, introspect.ErrSessionGone) {
			t.Fatalf("flood Load %d: %+v", i, r)
		}
	}
	for i := range maxEntries {
		r, ok := c.Get(ctx, keyFor(i))
		if !ok || r.Session == nil || r.Session.User.ID != strconv.Itoa(i) {
			t.Fatalf("session %d lost after the flood: ok=%v %+v", i, ok, r)
		}
	}
	st := c.Stats()
	if st.Entries != 2*maxEntries {
		t.Errorf("Entries = %d, want %d", st.Entries, 2*maxEntries)
	}
	if want := int64(flood - maxEntries); st.Rejected != want {
		t.Errorf("Rejected = %d, want %d", st.Rejected, want)
	}
	if st.Hits != maxEntries {
		t.Errorf("Hits = %d, want %d", st.Hits, maxEntries)
	}
}

// TestMemoryFullTableSweepsExpiredThenRejects proves the full-table policy:
// expired entries are swept to make room for a new one; when nothing has
// expired the new entry is declined (and counted), while entries already held
// can still be replaced.
func TestMemoryFullTableSweepsExpiredThenRejects(t *testing.T) {
	const maxEntries = 100
	s := newMemoryStore(maxEntries)
	defer s.Close() //nolint:errcheck // memoryStore.Close never fails
	clock := newFakeClock()
	s.now = clock.Now
	sess := &entry{Session: newSession(t, 1), Status: http.StatusOK}

	for i := range maxEntries {
		s.set(keyFor(i), sess, 20*time.Millisecond)
	}
	clock.Add(50 * time.Millisecond) // all of them expire
	s.set(keyFor(1000), sess, time.Hour)
	if e := s.get(keyFor(1000)); e == nil {
		t.Fatal("new entry not stored although the table only held expired entries")
	}
	if l := s.Len(); l != 1 {
		t.Errorf("Len = %d after the sweep, want 1", l)
	}
	if r := s.Rejected(); r != 0 {
		t.Errorf("Rejected = %d, want 0", r)
	}

	for i := range maxEntries - 1 {
		s.set(keyFor(2000+i), sess, time.Hour)
	}
	if l := s.Len(); l != maxEntries {
		t.Fatalf("Len = %d, want %d", l, maxEntries)
	}
	s.set(keyFor(5000), sess, time.Hour)
	if e := s.get(keyFor(5000)); e != nil {
		t.Error("a full table of live entries stored a new one")
	}
	if r := s.Rejected(); r != 1 {
		t.Errorf("Rejected = %d, want 1", r)
	}
	// Replacing a held key is not an insert: it succeeds when full.
	newer := &entry{Session: newSession(t, 2), Status: http.StatusOK}
	s.set(keyFor(2000), newer, time.Hour)
	if e := s.get(keyFor(2000)); e != newer {
		t.Error("a held key could not be refreshed in a full table")
	}
	if r := s.Rejected(); r != 1 {
		t.Errorf("Rejected = %d after a refresh, want 1", r)
	}
	// The negative table has its own room.
	s.set(keyFor(6000), &entry{Status: http.StatusUnauthorized}, time.Hour)
	if e := s.get(keyFor(6000)); e == nil || e.Status != http.StatusUnauthorized {
		t.Error("a full authenticated table blocked a negative entry")
	}
}

// TestCacheStatsRejected proves a Cache over a full in-process store still
// answers (the session is returned, just not kept) and reports the rejection.
func TestCacheStatsRejected(t *testing.T) {
	ctx := context.Background()
	c := newTestCache(t, Config{MaxEntries: 2, TTL: time.Hour})
	for i := range 3 {
		r := c.Load(ctx, keyFor(i), time.Time{}, func(context.Context) (*introspect.Session, error) {
			return newSession(t, i), nil
		})
		if r.Session == nil || r.Session.User.ID != strconv.Itoa(i) {
			t.Fatalf("Load %d: %+v", i, r)
		}
	}
	st := c.Stats()
	if st.Rejected != 1 || st.Entries != 2 {
		t.Errorf("Rejected = %d, Entries = %d; want 1, 2", st.Rejected, st.Entries)
	}
	if _, ok := c.Get(ctx, keyFor(2)); ok {
		t.Error("the rejected session is served from the cache")
	}
}

// TestMemoryAnswerReplacesOtherKind proves a 401/410 replaces a cached
// session for the same key (a logout is seen at once), and a session
// replaces a cached 401.
func TestMemoryAnswerReplacesOtherKind(t *testing.T) {
	s := newMemoryStore(10)
	defer s.Close() //nolint:errcheck // memoryStore.Close never fails
	k := keyFor(1)
	s.set(k, &entry{Session: newSession(t, 1), Status: http.StatusOK}, time.Hour)
	s.set(k, &entry{Status: http.StatusGone}, time.Hour)
	if e := s.get(k); e == nil || e.Status != http.StatusGone || s.Len() != 1 {
		t.Fatalf("after a 410: %+v, Len %d", e, s.Len())
	}
	s.set(k, &entry{Session: newSession(t, 1), Status: http.StatusOK}, time.Hour)
	if e := s.get(k); e == nil || e.Session == nil || s.Len() != 1 {
		t.Fatalf("after a 200: %+v, Len %d", e, s.Len())
	}
	s.del(k)
	if e := s.get(k); e != nil || s.Len() != 0 {
		t.Fatalf("after Delete: %+v, Len %d", e, s.Len())
	}
}

// buildSession makes what the introspect client decodes for sessionJSONFor(id)
// (fresh strings, raw JSON copies, one method), without the cost of JSON
// decoding a hundred thousand times under -race.
func buildSession(id int) *introspect.Session {
	return &introspect.Session{
		User: introspect.User{
			ID:                strconv.Itoa(id),
			Display:           strings.Clone("alice"),
			Email:             strings.Clone("alice@example.com"),
			Username:          strings.Clone("alice"),
			HasUsablePassword: true,
			Raw:               json.RawMessage(userJSON(id)),
		},
		Methods: []introspect.Method{{
			Method: strings.Clone("password"),
			At:     time.Unix(1700000000, 250_000_000).UTC(),
			Raw:    json.RawMessage(`{"method":"password","at":1700000000.25,"username":"alice"}`),
		}},
	}
}

// TestMemoryBytesPerSession measures what one cached realistic session costs
// (the decoded session with its raw JSON, the entry, the key and the table's
// bookkeeping) over 100,000 sessions, and keeps it under 1 KiB.
func TestMemoryBytesPerSession(t *testing.T) {
	const n = 100_000
	if got, want := buildSession(42), newSession(t, 42); !reflect.DeepEqual(got, want) {
		t.Fatalf("buildSession differs from a decoded session:\n%+v\n%+v", got, want)
	}
	ctx := context.Background()
	before := heapAlloc()
	c := New(Config{MaxEntries: n, TTL: time.Hour, Now: newFakeClock().Now})
	defer c.Close() //nolint:errcheck // an in-process Cache's Close never fails
	for i := range n {
		r := c.Load(ctx, keyFor(i), time.Time{}, func(context.Context) (*introspect.Session, error) {
			return buildSession(1_000_000 + i), nil
		})
		if r.Session == nil {
			t.Fatalf("Load %d: %v", i, r.Err)
		}
	}
	after := heapAlloc()
	if st := c.Stats(); st.Entries != n || st.Rejected != 0 {
		t.Fatalf("Entries = %d, Rejected = %d", st.Entries, st.Rejected)
	}
	per := (float64(after) - float64(before)) / n
	t.Logf("%d cached sessions: heap %.1f MiB -> %.1f MiB, %.0f bytes per session",
		n, float64(before)/mib, float64(after)/mib, per)
	if per >= 1024 {
		t.Errorf("%.0f bytes per cached session, want < 1024", per)
	}
	runtime.KeepAlive(c)
}
