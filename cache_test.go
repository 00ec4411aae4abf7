package headless

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/allauthgo/headless/introspect/allauthtest"
)

// The cache in front of allauth, as Authenticate uses it: hits, coalesced
// misses, negative answers, expiry on the cache's clock, and Evict.

// A token seen once is served from the cache: no second lookup.
func TestCache_Hit(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{})
	alice, bob := srv.IssueToken("alice"), srv.IssueToken("bob")
	for range 5 {
		wantUser(t, auth(a, withToken(alice)), "alice")
		wantUser(t, auth(a, withToken(bob)), "bob")
	}
	wantCalls(t, srv, 2)
	if s := a.Metrics().Cache; s.Fetches != 2 || s.Hits != 8 || s.Entries != 2 {
		t.Errorf("stats %+v", s)
	}
}

// Concurrent requests for one uncached token share one lookup.
func TestCache_Coalesces(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{})
	tok := srv.IssueToken("alice")
	srv.SetFault(allauthtest.Fault{Delay: 200 * time.Millisecond})
	var wg sync.WaitGroup
	results := make([]Result, 20)
	for i := range results {
		wg.Go(func() { results[i] = auth(a, withToken(tok)) })
	}
	wg.Wait()
	for _, res := range results {
		wantUser(t, res, "alice")
	}
	wantCalls(t, srv, 1)
}

// allauth's 401 and 410 are cached for NegativeTTL.
func TestCache_Negative(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{})
	srv.AddUser(allauthtest.User{ID: 5, Username: "eve", Password: "pw"})
	inactive := srv.IssueToken("eve")
	srv.SetActive("eve", false)
	for range 3 {
		wantError(t, auth(a, withToken("abcdefghijklmnopqrstuvwxyz012345")), http.StatusGone, CodeSessionGone)
		wantError(t, auth(a, withToken(inactive)), http.StatusUnauthorized, CodeNotAuthenticated)
	}
	wantCalls(t, srv, 2)
	if s := a.Metrics().Cache; s.NegativeHits != 4 {
		t.Errorf("stats %+v", s)
	}
}

// A cached 401 or 410 expires after NegativeTTL: a reactivated user gets in.
func TestCache_NegativeExpires(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	srv, a := setup(t, Config{NegativeTTL: 200 * time.Millisecond, now: clock.Now})
	tok := srv.IssueToken("alice")
	srv.SetActive("alice", false)
	wantError(t, auth(a, withToken(tok)), http.StatusUnauthorized, CodeNotAuthenticated)
	srv.SetActive("alice", true)
	clock.Add(190 * time.Millisecond)
	wantError(t, auth(a, withToken(tok)), http.StatusUnauthorized, CodeNotAuthenticated)
	wantCalls(t, srv, 1)
	clock.Add(20 * time.Millisecond)
	wantUser(t, auth(a, withToken(tok)), "alice")
	wantCalls(t, srv, 2)
}

// NegativeTTL < 0: every rejected request asks allauth.
func TestCache_NegativeOff(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{NegativeTTL: -1})
	for range 3 {
		wantError(t, auth(a, withToken("abcdefghijklmnopqrstuvwxyz012345")), http.StatusGone, CodeSessionGone)
	}
	wantCalls(t, srv, 3)
}

// A change of the user at allauth shows after CacheTTL, not before.
func TestCache_UserChangeAfterTTL(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	srv, a := setup(t, Config{CacheTTL: 300 * time.Millisecond, RefreshAhead: -1, now: clock.Now})
	tok := srv.IssueToken("alice")
	profile := func() string {
		t.Helper()
		res := auth(a, withToken(tok))
		if res.Session == nil {
			t.Fatalf("got %s", describe(res))
		}
		return res.Session.User.Display + " " + res.Session.User.Email
	}

	if got := profile(); got != "alice alice@example.com" {
		t.Fatalf("before: %q", got)
	}
	srv.UpdateUser("alice", func(u *allauthtest.User) {
		u.Display = "Alice A."
		u.Email = "alice@new.example"
	})
	clock.Add(290 * time.Millisecond)
	if got := profile(); got != "alice alice@example.com" {
		t.Fatalf("within CacheTTL: %q, want the cached user", got)
	}
	wantCalls(t, srv, 1)
	clock.Add(20 * time.Millisecond)
	if got := profile(); got != "Alice A. alice@new.example" {
		t.Fatalf("after CacheTTL: %q, want the new user", got)
	}
	wantCalls(t, srv, 2)
}

// Evict makes the next request ask allauth; unknown tokens are fine.
func TestCache_Evict(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{})
	tok := srv.IssueToken("alice")
	wantUser(t, auth(a, withToken(tok)), "alice")
	wantUser(t, auth(a, withToken(tok)), "alice")
	wantCalls(t, srv, 1)

	if err := a.Evict(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	wantUser(t, auth(a, withToken(tok)), "alice")
	wantCalls(t, srv, 2)

	if err := a.Evict(t.Context(), "never-seen-token"); err != nil {
		t.Fatalf("Evict of an unknown token: %v", err)
	}
	if err := a.Evict(t.Context(), ""); err != nil {
		t.Fatalf("Evict of an empty token: %v", err)
	}
}

// The logout recipe: log out at allauth, Evict, and the token is refused at
// once with 410 (before, the cache still serves it).
func TestCache_LogoutThenEvict(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{})
	tok := srv.IssueToken("bob")
	wantUser(t, auth(a, withToken(tok)), "bob")
	srv.Logout(tok)
	wantUser(t, auth(a, withToken(tok)), "bob")
	if err := a.Evict(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	wantError(t, auth(a, withToken(tok)), http.StatusGone, CodeSessionGone)
	wantError(t, auth(a, withToken(tok)), http.StatusGone, CodeSessionGone)
	wantCalls(t, srv, 2)
}

// Evict drops a Django session key whether it was used as a token or as a
// cookie, and a cached 410 too.
func TestCache_EvictAllKinds(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{Sources: []Source{FromHeader(HeaderSessionToken), FromCookie("sessionid")}})
	key := srv.IssueToken("alice")
	wantUser(t, auth(a, withToken(key)), "alice")
	wantUser(t, auth(a, withCookie("sessionid", key)), "alice")
	wantError(t, auth(a, withToken("abcdefghijklmnopqrstuvwxyz012345")), http.StatusGone, CodeSessionGone)
	wantCalls(t, srv, 3)

	if err := a.Evict(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	if err := a.Evict(t.Context(), "abcdefghijklmnopqrstuvwxyz012345"); err != nil {
		t.Fatal(err)
	}
	wantUser(t, auth(a, withToken(key)), "alice")
	wantUser(t, auth(a, withCookie("sessionid", key)), "alice")
	wantError(t, auth(a, withToken("abcdefghijklmnopqrstuvwxyz012345")), http.StatusGone, CodeSessionGone)
	wantCalls(t, srv, 6)
}

// Answers of different allauth servers never mix in one shared cache, nor
// do a key's answers as a token and as a cookie.
func TestCache_ScopedByServerAndKind(t *testing.T) {
	t.Parallel()
	shared := newMemStorage()
	sa, sb := newAllauth(t), newAllauth(t)
	tok := sa.IssueToken("alice")

	wantUser(t, auth(newCore(t, sa, Config{Storage: shared}), withToken(tok)), "alice")
	wantError(t, auth(newCore(t, sb, Config{Storage: shared}), withToken(tok)), http.StatusGone, CodeSessionGone)
	wantCalls(t, sb, 1)

	// The same key as a cookie is asked at the browser endpoint, which
	// answers 401 for it after a logout, not the cached app answer.
	c := newCore(t, sa, Config{Storage: shared, Sources: []Source{FromCookie("sessionid")}})
	sa.Logout(tok)
	wantError(t, auth(c, withCookie("sessionid", tok)), http.StatusUnauthorized, CodeNotAuthenticated)
	wantCalls(t, sa, 2)
}

// What Authenticate keeps outlives the request's buffers: a framework that
// reuses them right after the call changes no cached answer.
func TestCache_RequestBuffersReused(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{})
	alice, bob := srv.IssueToken("alice"), srv.IssueToken("bob")
	r := withToken(alice)
	wantUser(t, auth(a, r), "alice")
	r.scribble()
	copy(r.headers[HeaderSessionToken][0], bob)
	wantUser(t, auth(a, r), "bob")
	wantUser(t, auth(a, withToken(alice)), "alice")
	wantUser(t, auth(a, withToken(bob)), "bob")
	wantCalls(t, srv, 2)
}
