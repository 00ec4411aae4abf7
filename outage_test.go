package headless

import (
	"net/http"
	"testing"
	"time"

	"github.com/allauthgo/headless/introspect/allauthtest"
)

// While allauth fails, cached users are still served; uncached tokens get
// 503 (never 401/410); after recovery lookups succeed again.
func TestOutage_CachedUsersServed(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{})
	alice, bob := srv.IssueToken("alice"), srv.IssueToken("bob")
	wantUser(t, auth(a, withToken(alice)), "alice")

	srv.SetFault(allauthtest.Fault{Status: http.StatusServiceUnavailable})
	wantUser(t, auth(a, withToken(alice)), "alice")
	wantError(t, auth(a, withToken(bob)), http.StatusServiceUnavailable, CodeUpstreamUnavailable)
	wantError(t, auth(a, withToken(bob)), http.StatusServiceUnavailable, CodeUpstreamUnavailable)
	wantCalls(t, srv, 3)

	srv.SetFault(allauthtest.Fault{})
	wantUser(t, auth(a, withToken(bob)), "bob")
	wantUser(t, auth(a, withToken(alice)), "alice")
	wantCalls(t, srv, 4)
}

// allauth gone altogether (its port closed): the same.
func TestOutage_ServerClosed(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{})
	alice, bob := srv.IssueToken("alice"), srv.IssueToken("bob")
	wantUser(t, auth(a, withToken(alice)), "alice")
	srv.Close()
	wantUser(t, auth(a, withToken(alice)), "alice")
	h := wantError(t, auth(a, withToken(bob)), http.StatusServiceUnavailable, CodeUpstreamUnavailable)
	if h.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
}

// StaleIfError serves an expired user while allauth fails, within the
// window; after recovery the first request is a fresh lookup.
func TestOutage_StaleIfError(t *testing.T) {
	t.Parallel()
	const ttl = 200 * time.Millisecond
	clock := newTestClock()
	srv, a := setup(t, Config{CacheTTL: ttl, StaleIfError: 5 * time.Second, RefreshAhead: -1, now: clock.Now})
	tok := srv.IssueToken("alice")
	wantUser(t, auth(a, withToken(tok)), "alice")

	for _, f := range []allauthtest.Fault{{Status: 503}, {Status: 429, RetryAfter: "5"}, {Drop: true}, {Body: "<html></html>", ContentType: "text/html"}} {
		srv.SetFault(f)
		clock.Add(ttl + time.Millisecond)
		wantUser(t, auth(a, withToken(tok)), "alice")
	}
	if s := a.Metrics().Cache; s.StaleServes != 4 {
		t.Errorf("stale serves = %d, want 4 (%+v)", s.StaleServes, s)
	}

	srv.SetFault(allauthtest.Fault{})
	srv.UpdateUser("alice", func(u *allauthtest.User) { u.Display = "fresh" })
	before := srv.SessionCalls()
	wantUser(t, auth(a, withToken(tok)), "alice")
	wantCalls(t, srv, before+1)
	wantUser(t, auth(a, withToken(tok)), "alice")
	wantCalls(t, srv, before+1)
}

// Without StaleIfError an expired user is not served while allauth fails.
func TestOutage_NoStaleIfError(t *testing.T) {
	t.Parallel()
	const ttl = 200 * time.Millisecond
	clock := newTestClock()
	srv, a := setup(t, Config{CacheTTL: ttl, RefreshAhead: -1, now: clock.Now})
	tok := srv.IssueToken("alice")
	wantUser(t, auth(a, withToken(tok)), "alice")
	srv.SetFault(allauthtest.Fault{Status: 503})
	clock.Add(ttl + time.Millisecond)
	wantError(t, auth(a, withToken(tok)), http.StatusServiceUnavailable, CodeUpstreamUnavailable)
	srv.SetFault(allauthtest.Fault{})
	wantUser(t, auth(a, withToken(tok)), "alice")
}

// StaleIfError never hides allauth's own "no": a user deactivated or logged
// out while the entry was stale is refused.
func TestOutage_StaleNeverAfterRejection(t *testing.T) {
	t.Parallel()
	const ttl = 200 * time.Millisecond
	clock := newTestClock()
	srv, a := setup(t, Config{CacheTTL: ttl, StaleIfError: time.Minute, NegativeTTL: -1, RefreshAhead: -1, now: clock.Now})
	alice, bob := srv.IssueToken("alice"), srv.IssueToken("bob")
	wantUser(t, auth(a, withToken(alice)), "alice")
	wantUser(t, auth(a, withToken(bob)), "bob")
	srv.SetActive("alice", false)
	srv.Logout(bob)
	clock.Add(ttl + time.Millisecond)
	wantError(t, auth(a, withToken(alice)), http.StatusUnauthorized, CodeNotAuthenticated)
	wantError(t, auth(a, withToken(bob)), http.StatusGone, CodeSessionGone)

	// And a failure after the rejection does not bring the user back.
	srv.SetFault(allauthtest.Fault{Status: 502})
	wantError(t, auth(a, withToken(bob)), http.StatusServiceUnavailable, CodeUpstreamUnavailable)
}

// A slow allauth is cut at Timeout: the answer is a 503 well before the
// upstream would have answered.
func TestOutage_Timeout(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{Timeout: 200 * time.Millisecond})
	srv.SetFault(allauthtest.Fault{Delay: 5 * time.Second})
	start := time.Now()
	wantError(t, auth(a, withToken(srv.IssueToken("alice"))), http.StatusServiceUnavailable, CodeUpstreamUnavailable)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %v with Timeout 200ms", took)
	}
}
