package fiberauth_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// While allauth fails, cached users are still served; uncached tokens get
// 503 (never 401/410); after recovery lookups succeed again.
func Test_Outage_CachedUsersServed(t *testing.T) {
	t.Parallel()
	srv, _, app := setup(t, fiberauth.Config{})
	alice, bob := srv.IssueToken("alice"), srv.IssueToken("bob")
	wantUser(t, do(t, app, withToken(alice)), "alice")

	srv.SetFault(allauthtest.Fault{Status: http.StatusServiceUnavailable})
	wantUser(t, do(t, app, withToken(alice)), "alice")
	wantError(t, do(t, app, withToken(bob)), http.StatusServiceUnavailable, headless.CodeUpstreamUnavailable)
	wantError(t, do(t, app, withToken(bob)), http.StatusServiceUnavailable, headless.CodeUpstreamUnavailable)
	wantCalls(t, srv, 3)

	srv.SetFault(allauthtest.Fault{})
	wantUser(t, do(t, app, withToken(bob)), "bob")
	wantUser(t, do(t, app, withToken(alice)), "alice")
	wantCalls(t, srv, 4)
}

// allauth gone altogether (its port closed): the same.
func Test_Outage_ServerClosed(t *testing.T) {
	t.Parallel()
	srv, _, app := setup(t, fiberauth.Config{})
	alice, bob := srv.IssueToken("alice"), srv.IssueToken("bob")
	wantUser(t, do(t, app, withToken(alice)), "alice")
	srv.Close()
	wantUser(t, do(t, app, withToken(alice)), "alice")
	r := do(t, app, withToken(bob))
	wantError(t, r, http.StatusServiceUnavailable, headless.CodeUpstreamUnavailable)
	if r.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
}

// StaleIfError serves an expired user while allauth fails, within the
// window; after recovery the first request is a fresh lookup.
func Test_Outage_StaleIfError(t *testing.T) {
	t.Parallel()
	const ttl = 200 * time.Millisecond
	srv, m, app := setup(t, fiberauth.Config{CacheTTL: ttl, StaleIfError: 5 * time.Second})
	tok := srv.IssueToken("alice")
	wantUser(t, do(t, app, withToken(tok)), "alice")

	for _, f := range []allauthtest.Fault{{Status: 503}, {Status: 429, RetryAfter: "5"}, {Drop: true}, {Body: "<html></html>", ContentType: "text/html"}} {
		srv.SetFault(f)
		sleepPast(ttl)
		wantUser(t, do(t, app, withToken(tok)), "alice")
	}
	if s := m.Metrics().Cache; s.StaleServes != 4 {
		t.Errorf("stale serves = %d, want 4 (%+v)", s.StaleServes, s)
	}

	srv.SetFault(allauthtest.Fault{})
	srv.UpdateUser("alice", func(u *allauthtest.User) { u.Display = "fresh" })
	before := srv.SessionCalls()
	wantUser(t, do(t, app, withToken(tok)), "alice")
	wantCalls(t, srv, before+1)
	wantUser(t, do(t, app, withToken(tok)), "alice")
	wantCalls(t, srv, before+1)
}

// Without StaleIfError an expired user is not served while allauth fails.
func Test_Outage_NoStaleIfError(t *testing.T) {
	t.Parallel()
	const ttl = 200 * time.Millisecond
	srv, _, app := setup(t, fiberauth.Config{CacheTTL: ttl})
	tok := srv.IssueToken("alice")
	wantUser(t, do(t, app, withToken(tok)), "alice")
	srv.SetFault(allauthtest.Fault{Status: 503})
	sleepPast(ttl)
	wantError(t, do(t, app, withToken(tok)), http.StatusServiceUnavailable, headless.CodeUpstreamUnavailable)
	srv.SetFault(allauthtest.Fault{})
	wantUser(t, do(t, app, withToken(tok)), "alice")
}

// StaleIfError never hides allauth's own "no": a user deactivated or logged
// out while the entry was stale is refused.
func Test_Outage_StaleNeverAfterRejection(t *testing.T) {
	t.Parallel()
	const ttl = 200 * time.Millisecond
	srv, _, app := setup(t, fiberauth.Config{CacheTTL: ttl, StaleIfError: time.Minute, NegativeTTL: -1})
	alice, bob := srv.IssueToken("alice"), srv.IssueToken("bob")
	wantUser(t, do(t, app, withToken(alice)), "alice")
	wantUser(t, do(t, app, withToken(bob)), "bob")
	srv.SetActive("alice", false)
	srv.Logout(bob)
	sleepPast(ttl)
	wantError(t, do(t, app, withToken(alice)), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	wantError(t, do(t, app, withToken(bob)), http.StatusGone, headless.CodeSessionGone)

	// And a failure after the rejection does not bring the user back.
	srv.SetFault(allauthtest.Fault{Status: 502})
	wantError(t, do(t, app, withToken(bob)), http.StatusServiceUnavailable, headless.CodeUpstreamUnavailable)
}

// A slow allauth is cut at Timeout: the answer is a 503 well before the
// upstream would have answered.
func Test_Outage_Timeout(t *testing.T) {
	t.Parallel()
	srv, _, app := setup(t, fiberauth.Config{Timeout: 200 * time.Millisecond})
	srv.SetFault(allauthtest.Fault{Delay: 5 * time.Second})
	start := time.Now()
	wantError(t, do(t, app, withToken(srv.IssueToken("alice"))), http.StatusServiceUnavailable, headless.CodeUpstreamUnavailable)
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %v with Timeout 200ms", took)
	}
}
