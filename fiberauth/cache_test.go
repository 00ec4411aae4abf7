package fiberauth_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// A token seen once is served from the cache: no second lookup.
func Test_Cache_Hit(t *testing.T) {
	t.Parallel()
	srv, m, app := setup(t, fiberauth.Config{})
	alice, bob := srv.IssueToken("alice"), srv.IssueToken("bob")
	for range 5 {
		wantUser(t, do(t, app, withToken(alice)), "alice")
		wantUser(t, do(t, app, withToken(bob)), "bob")
	}
	wantCalls(t, srv, 2)
	if s := m.Metrics().Cache; s.Fetches != 2 || s.Hits != 8 || s.Entries != 2 {
		t.Errorf("stats %+v", s)
	}
}

// Concurrent requests for one uncached token share one lookup.
func Test_Cache_Coalesces(t *testing.T) {
	t.Parallel()
	srv, _, app := setup(t, fiberauth.Config{})
	tok := srv.IssueToken("alice")
	srv.SetFault(allauthtest.Fault{Delay: 200 * time.Millisecond})
	var wg sync.WaitGroup
	codes := make([]result, 20)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := app.Test(withToken(tok), -1)
			if err != nil {
				t.Error(err)
				return
			}
			_ = resp.Body.Close()
			codes[i].Status = resp.StatusCode
		}()
	}
	wg.Wait()
	for i, r := range codes {
		if r.Status != http.StatusOK {
			t.Errorf("request %d: %d", i, r.Status)
		}
	}
	wantCalls(t, srv, 1)
}

// allauth's 410 is cached for NegativeTTL.
func Test_Cache_Negative(t *testing.T) {
	t.Parallel()
	srv, m, app := setup(t, fiberauth.Config{})
	srv.AddUser(allauthtest.User{ID: 5, Username: "eve", Password: "pw"})
	inactive := srv.IssueToken("eve")
	srv.SetActive("eve", false)
	for range 3 {
		wantError(t, do(t, app, withToken("abcdefghijklmnopqrstuvwxyz012345")), http.StatusGone, headless.CodeSessionGone)
		wantError(t, do(t, app, withToken(inactive)), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	}
	wantCalls(t, srv, 2)
	if s := m.Metrics().Cache; s.NegativeHits != 4 {
		t.Errorf("stats %+v", s)
	}
}

// A cached 401 or 410 expires after NegativeTTL: a reactivated user gets in.
// Not parallel: other tests must not stretch the window it checks within.
func Test_Cache_NegativeExpires(t *testing.T) {
	srv, _, app := setup(t, fiberauth.Config{NegativeTTL: 200 * time.Millisecond})
	tok := srv.IssueToken("alice")
	srv.SetActive("alice", false)
	wantError(t, do(t, app, withToken(tok)), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	srv.SetActive("alice", true)
	wantError(t, do(t, app, withToken(tok)), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	wantCalls(t, srv, 1)
	sleepPast(200 * time.Millisecond)
	wantUser(t, do(t, app, withToken(tok)), "alice")
	wantCalls(t, srv, 2)
}

// NegativeTTL < 0: every rejected request asks allauth.
func Test_Cache_NegativeOff(t *testing.T) {
	t.Parallel()
	srv, _, app := setup(t, fiberauth.Config{NegativeTTL: -1})
	for range 3 {
		wantError(t, do(t, app, withToken("abcdefghijklmnopqrstuvwxyz012345")), http.StatusGone, headless.CodeSessionGone)
	}
	wantCalls(t, srv, 3)
}

// A change of the user at allauth shows after CacheTTL, not before. Not
// parallel: other tests must not stretch the window it checks within.
func Test_Cache_UserChangeAfterTTL(t *testing.T) {
	const ttl = 300 * time.Millisecond
	srv := newAllauth(t)
	m := newMiddleware(t, srv, fiberauth.Config{CacheTTL: ttl})
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	defer func() { _ = app.Shutdown() }()
	app.Use(m.Handler)
	app.Get("/profile", func(c *fiber.Ctx) error {
		u := fiberauth.UserFrom(c)
		return c.SendString(u.Display + " " + u.Email)
	})
	tok := srv.IssueToken("alice")
	profile := func() string {
		return do(t, app, getPath("/profile", fiberauth.HeaderSessionToken, tok)).Body
	}

	if got := profile(); got != "alice alice@example.com" {
		t.Fatalf("before: %q", got)
	}
	srv.UpdateUser("alice", func(u *allauthtest.User) {
		u.Display = "Alice A."
		u.Email = "alice@new.example"
	})
	if got := profile(); got != "alice alice@example.com" {
		t.Fatalf("within CacheTTL: %q, want the cached user", got)
	}
	wantCalls(t, srv, 1)
	sleepPast(ttl)
	if got := profile(); got != "Alice A. alice@new.example" {
		t.Fatalf("after CacheTTL: %q, want the new user", got)
	}
	wantCalls(t, srv, 2)
}

// Evict makes the next request ask allauth; unknown tokens are fine.
func Test_Cache_Evict(t *testing.T) {
	t.Parallel()
	srv, m, app := setup(t, fiberauth.Config{})
	tok := srv.IssueToken("alice")
	wantUser(t, do(t, app, withToken(tok)), "alice")
	wantUser(t, do(t, app, withToken(tok)), "alice")
	wantCalls(t, srv, 1)

	if err := m.Evict(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	wantUser(t, do(t, app, withToken(tok)), "alice")
	wantCalls(t, srv, 2)

	if err := m.Evict(t.Context(), "never-seen-token"); err != nil {
		t.Fatalf("Evict of an unknown token: %v", err)
	}
	if err := m.Evict(t.Context(), ""); err != nil {
		t.Fatalf("Evict of an empty token: %v", err)
	}
}

// The logout recipe: log out at allauth, Evict, and the token is refused at
// once with 410 (before, the cache still serves it).
func Test_Cache_LogoutThenEvict(t *testing.T) {
	t.Parallel()
	srv, m, app := setup(t, fiberauth.Config{})
	tok := srv.IssueToken("bob")
	wantUser(t, do(t, app, withToken(tok)), "bob")
	srv.Logout(tok)
	wantUser(t, do(t, app, withToken(tok)), "bob")
	if err := m.Evict(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	wantError(t, do(t, app, withToken(tok)), http.StatusGone, headless.CodeSessionGone)
	wantError(t, do(t, app, withToken(tok)), http.StatusGone, headless.CodeSessionGone)
	wantCalls(t, srv, 2)
}

// Evict drops a Django session key whether it was used as a token or as a
// cookie, and a cached 410 too.
func Test_Cache_EvictAllKinds(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := newMiddleware(t, srv, fiberauth.Config{KeyLookup: "header:X-Session-Token,cookie:sessionid"})
	app := newApp(t, m.Handler)
	key := srv.IssueToken("alice")
	wantUser(t, do(t, app, withToken(key)), "alice")
	wantUser(t, do(t, app, withCookie("sessionid", key)), "alice")
	wantError(t, do(t, app, withToken("abcdefghijklmnopqrstuvwxyz012345")), http.StatusGone, headless.CodeSessionGone)
	wantCalls(t, srv, 3)

	if err := m.Evict(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	if err := m.Evict(t.Context(), "abcdefghijklmnopqrstuvwxyz012345"); err != nil {
		t.Fatal(err)
	}
	wantUser(t, do(t, app, withToken(key)), "alice")
	wantUser(t, do(t, app, withCookie("sessionid", key)), "alice")
	wantError(t, do(t, app, withToken("abcdefghijklmnopqrstuvwxyz012345")), http.StatusGone, headless.CodeSessionGone)
	wantCalls(t, srv, 6)
}

// Answers of different allauth servers never mix in one shared cache, nor
// do a key's answers as a token and as a cookie.
func Test_Cache_ScopedByServerAndKind(t *testing.T) {
	t.Parallel()
	shared := newMemStorage()
	a := newAllauth(t)
	b := newAllauth(t)
	tok := a.IssueToken("alice")

	ma := newMiddleware(t, a, fiberauth.Config{Storage: shared})
	mb := newMiddleware(t, b, fiberauth.Config{Storage: shared})
	wantUser(t, do(t, newApp(t, ma.Handler), withToken(tok)), "alice")
	wantError(t, do(t, newApp(t, mb.Handler), withToken(tok)), http.StatusGone, headless.CodeSessionGone)
	wantCalls(t, b, 1)

	// The same key as a cookie is asked at the browser endpoint, which
	// answers 401 for it after a logout, not the cached app answer.
	mc := newMiddleware(t, a, fiberauth.Config{Storage: shared, KeyLookup: "cookie:sessionid"})
	a.Logout(tok)
	wantError(t, do(t, newApp(t, mc.Handler), withCookie("sessionid", tok)), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	wantCalls(t, a, 2)
}
