package headless

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allauthgo/headless/introspect/allauthtest"
)

// fakeRequest is a Request whose session-token header is a buffer the test
// may overwrite after Authenticate returns, as a framework reuses its own.
type fakeRequest struct{ token []byte }

func (r *fakeRequest) Header(name string) ([]byte, int) {
	if name != HeaderSessionToken || r.token == nil {
		return nil, 0
	}
	return r.token, 1
}
func (r *fakeRequest) Cookie(string) []byte     { return nil }
func (r *fakeRequest) Context() context.Context { return context.Background() }

type testClock struct{ ns atomic.Int64 }

func (c *testClock) Now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Add(d time.Duration) { c.ns.Add(int64(d)) }
func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polls a background refresh over real HTTP
	}
}

// TestAuthenticate_RefreshAhead: a hit in the last fifth of CacheTTL is
// answered at once and refreshes the session in the background with a copy
// of the token (the request's buffer is reused right after), so the session
// is still served past its first expiry after one more lookup at allauth.
// A logout seen by a refresh refuses the next request.
func TestAuthenticate_RefreshAhead(t *testing.T) {
	srv := allauthtest.NewServer()
	t.Cleanup(srv.Close)
	srv.AddUser(allauthtest.User{Username: "alice", Email: "alice@example.com", Password: "alice-pass-123"})
	token := srv.IssueToken("alice")
	clock := newTestClock()
	a, err := New(Config{BaseURL: srv.URL, CacheTTL: 10 * time.Second, now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })

	req := &fakeRequest{token: []byte(token)}
	first := a.Authenticate(req, false).Session
	if first == nil || first.User.Username != "alice" {
		t.Fatalf("first request: %+v", first)
	}
	clock.Add(9200 * time.Millisecond) // in the last fifth, whatever its jitter
	if res := a.Authenticate(req, false); res.Session == nil {
		t.Fatalf("hit in the refresh window: %+v", res)
	}
	for i := range req.token { // the framework reuses its buffer
		req.token[i] = 'x'
	}
	// The refresh's answer is a new session value in the cache.
	waitUntil(t, "the refresh", func() bool {
		res := a.Authenticate(&fakeRequest{token: []byte(token)}, false)
		return res.Session != nil && res.Session != first
	})

	clock.Add(2 * time.Second) // 11.2 s: past the first answer
	req.token = []byte(token)
	if res := a.Authenticate(req, false); res.Session == nil || res.Session.User.Username != "alice" {
		t.Fatalf("after the refresh: %+v", res)
	}
	if got := srv.SessionCalls(); got != 2 {
		t.Fatalf("allauth calls = %d, want 2", got)
	}

	// allauth logs the session out; the next refresh sees it.
	srv.Logout(token)
	clock.Add(7200 * time.Millisecond) // 18.4 s: the refreshed answer's last fifth
	a.Authenticate(req, false)         // served, and refreshes
	waitUntil(t, "the refresh after logout", func() bool { return srv.SessionCalls() == 3 })
	waitUntil(t, "the refusal to be cached", func() bool {
		res := a.Authenticate(&fakeRequest{token: []byte(token)}, false)
		return res.Session == nil && res.Err != nil
	})
	if res := a.Authenticate(req, false); res.Err == nil || res.Err.Status != 410 {
		t.Fatalf("after the logout: %+v, want allauth's 410", res)
	}
	if got := srv.SessionCalls(); got != 3 {
		t.Fatalf("allauth calls = %d, want 3", got)
	}
}
