package fiberauth_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// jwtServer is a minimal allauth under the JWT token strategy (which
// allauthtest does not serve yet): it records the Authorization header of
// every session lookup and answers 200 for "Bearer good.jwt.token", 410 for
// "Bearer ended.jwt.token" and 401 for anything else.
type jwtServer struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
}

func newJWTServer(tb testing.TB) *jwtServer {
	tb.Helper()
	js := &jwtServer{}
	js.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_allauth/app/v1/auth/session" {
			http.NotFound(w, r)
			return
		}
		auth := r.Header.Get("Authorization")
		js.mu.Lock()
		js.seen = append(js.seen, auth)
		js.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch auth {
		case "Bearer good.jwt.token":
			_, _ = w.Write([]byte(`{"status": 200, "data": {"user": {"id": 9, "display": "dave", "has_usable_password": true, "username": "dave"}, ` +
				`"methods": [{"method": "password", "at": 1700000000.5, "username": "dave"}]}, "meta": {"is_authenticated": true}}`))
		case "Bearer ended.jwt.token":
			w.WriteHeader(http.StatusGone)
			_, _ = w.Write([]byte(`{"status": 410, "data": {"flows": [{"id": "login"}]}, "meta": {"is_authenticated": null}}`))
		default:
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"status": 401, "data": {"flows": [{"id": "login"}]}, "meta": {"is_authenticated": false}}`))
		}
	}))
	tb.Cleanup(js.Close)
	return js
}

// received returns the Authorization headers seen so far.
func (js *jwtServer) received() []string {
	js.mu.Lock()
	defer js.mu.Unlock()
	return slices.Clone(js.seen)
}

// Any case of the scheme, with blanks around, is a Bearer token, sent to
// allauth as exactly "Bearer <token>".
func Test_Lookup_Bearer_SchemesAndForwarding(t *testing.T) {
	t.Parallel()
	js := newJWTServer(t)
	m := newMiddleware(t, nil, fiberauth.Config{BaseURL: js.URL, KeyLookup: "header:Authorization", NegativeTTL: -1})
	app := newApp(t, m.Handler)

	for _, auth := range []string{"Bearer good.jwt.token", "bearer good.jwt.token", "BEARER good.jwt.token", "  Bearer \t good.jwt.token  "} {
		if r := do(t, app, get("Authorization", auth)); r.Status != http.StatusOK || r.Body != "dave" {
			t.Errorf("%q: %d %q", auth, r.Status, r.Body)
		}
	}
	// One token, one lookup: the scheme's spelling does not split the cache.
	if got := js.received(); !slices.Equal(got, []string{"Bearer good.jwt.token"}) {
		t.Fatalf("allauth received %q", got)
	}

	// allauth's 401 for a Bearer token: 401 with an RFC 6750 challenge.
	r := do(t, app, get("Authorization", "Bearer garbage.jwt.token"))
	wantError(t, r, http.StatusUnauthorized, headless.CodeNotAuthenticated)
	if h := r.Header.Get("WWW-Authenticate"); h != `Bearer error="invalid_token"` {
		t.Errorf("WWW-Authenticate = %q", h)
	}
	// allauth's 410 (the session behind the JWT ended): 410, no challenge.
	r = do(t, app, get("Authorization", "Bearer ended.jwt.token"))
	wantError(t, r, http.StatusGone, headless.CodeSessionGone)
	if h := r.Header.Get("WWW-Authenticate"); h != "" {
		t.Errorf("WWW-Authenticate = %q on a 410", h)
	}
	if got := js.received(); !slices.Equal(got[1:], []string{"Bearer garbage.jwt.token", "Bearer ended.jwt.token"}) {
		t.Fatalf("allauth received %q", got)
	}
}

// Another scheme, or the scheme without a token, is no credential: 401 with
// a bare challenge, and allauth is not asked.
func Test_Lookup_Bearer_NotACredential(t *testing.T) {
	t.Parallel()
	js := newJWTServer(t)
	m := newMiddleware(t, nil, fiberauth.Config{BaseURL: js.URL, KeyLookup: "header:Authorization"})
	app := newApp(t, m.Handler)

	for _, auth := range []string{"Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "Bearerx good.jwt.token", "Token good.jwt.token", "good.jwt.token", ""} {
		r := do(t, app, get("Authorization", auth))
		wantError(t, r, http.StatusUnauthorized, headless.CodeNotAuthenticated)
		if h := r.Header.Get("WWW-Authenticate"); h != "Bearer" {
			t.Errorf("%q: WWW-Authenticate = %q, want Bearer", auth, h)
		}
	}
	// Two Authorization headers: refused (which would a proxy pass on?).
	r := do(t, app, get("Authorization", "Bearer good.jwt.token", "Authorization", "Bearer good.jwt.token"))
	wantError(t, r, http.StatusUnauthorized, headless.CodeNotAuthenticated)
	if h := r.Header.Get("WWW-Authenticate"); h != `Bearer error="invalid_token"` {
		t.Errorf("two headers: WWW-Authenticate = %q", h)
	}
	if got := js.received(); len(got) != 0 {
		t.Fatalf("allauth was asked: %q", got)
	}
}

// AuthScheme changes the scheme read; allauth is still sent "Bearer".
func Test_Lookup_Bearer_CustomScheme(t *testing.T) {
	t.Parallel()
	js := newJWTServer(t)
	m := newMiddleware(t, nil, fiberauth.Config{BaseURL: js.URL, KeyLookup: "header:Authorization", AuthScheme: "Token"})
	app := newApp(t, m.Handler)

	if r := do(t, app, get("Authorization", "token good.jwt.token")); r.Status != http.StatusOK || r.Body != "dave" {
		t.Fatalf("got %d %q", r.Status, r.Body)
	}
	wantError(t, do(t, app, get("Authorization", "Bearer good.jwt.token")), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	if got := js.received(); !slices.Equal(got, []string{"Bearer good.jwt.token"}) {
		t.Fatalf("allauth received %q", got)
	}
}

// allauthtest ignores Authorization (no JWT support), so a Bearer token
// always gets its 401: a rejected credential, answered with the challenge.
func Test_Lookup_Bearer_AllauthtestRejects(t *testing.T) {
	t.Parallel()
	srv, _, app := setup(t, fiberauth.Config{KeyLookup: "header:Authorization"})
	r := do(t, app, get("Authorization", "Bearer "+srv.IssueToken("alice")))
	wantError(t, r, http.StatusUnauthorized, headless.CodeNotAuthenticated)
	if h := r.Header.Get("WWW-Authenticate"); h != `Bearer error="invalid_token"` {
		t.Errorf("WWW-Authenticate = %q", h)
	}
	wantCalls(t, srv, 1)
}

// WWW-Authenticate is sent on a 401 only when KeyLookup reads Authorization.
func Test_Lookup_WWWAuthenticate(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	inactive := srv.IssueToken("bob")
	srv.SetActive("bob", false)

	cases := []struct {
		lookup string
		req    *http.Request
		status int
		want   string
	}{
		{"header:X-Session-Token", get(), 401, ""},
		{"header:X-Session-Token", withToken(inactive), 401, ""},
		{"header:X-Session-Token", withToken("abcdefghijklmnopqrstuvwxyz012345"), 410, ""},
		{"header:Authorization", get(), 401, "Bearer"},
		{"header:Authorization", get("Authorization", "Bearer abc"), 401, `Bearer error="invalid_token"`},
		{"header:X-Session-Token,header:Authorization", get(), 401, "Bearer"},
		{"header:Authorization,cookie:sessionid", get(), 401, "Bearer"},
		// RFC 7235: every 401 carries a challenge once Bearer is accepted,
		// also when the refused credential was another kind.
		{"header:X-Session-Token,header:Authorization", withToken(inactive), 401, "Bearer"},
		{"cookie:sessionid,header:Authorization", withCookie("sessionid", inactive), 401, "Bearer"},
		{"cookie:sessionid", get(), 401, ""},
		{"cookie:sessionid", withCookie("sessionid", inactive), 401, ""},
	}
	for _, tc := range cases {
		app := newApp(t, newMiddleware(t, srv, fiberauth.Config{KeyLookup: tc.lookup, NegativeTTL: -1}).Handler)
		r := do(t, app, tc.req)
		if r.Status != tc.status {
			t.Errorf("%s: status %d, want %d", tc.lookup, r.Status, tc.status)
		}
		if _, ok := r.Header["Www-Authenticate"]; ok != (tc.want != "") || r.Header.Get("WWW-Authenticate") != tc.want {
			t.Errorf("%s: WWW-Authenticate = %q (present %v), want %q", tc.lookup, r.Header.Get("WWW-Authenticate"), ok, tc.want)
		}
	}
}

// A cookie is checked at allauth's browser endpoint: a logged-out or unknown
// cookie is a 401 there, never a 410.
func Test_Lookup_Cookie_BrowserEndpoint(t *testing.T) {
	t.Parallel()
	srv, m, app := setup(t, fiberauth.Config{KeyLookup: "cookie:sessionid"})

	cookie := srv.IssueCookie("alice")
	wantUser(t, do(t, app, withCookie("sessionid", cookie)), "alice")

	out := srv.IssueCookie("bob")
	srv.Logout(out)
	wantError(t, do(t, app, withCookie("sessionid", out)), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	wantError(t, do(t, app, withCookie("sessionid", "abcdefghijklmnopqrstuvwxyz012345")), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	// An X-Session-Token is not read with this KeyLookup.
	wantError(t, do(t, app, withToken(cookie)), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	wantCalls(t, srv, 3)

	// Logout then Evict: the cookie is refused at once, still with a 401.
	srv.Logout(cookie)
	wantUser(t, do(t, app, withCookie("sessionid", cookie)), "alice") // cached
	if err := m.Evict(t.Context(), cookie); err != nil {
		t.Fatal(err)
	}
	wantError(t, do(t, app, withCookie("sessionid", cookie)), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	wantCalls(t, srv, 4)
}

// A custom cookie name is both read from the request and sent to allauth.
func Test_Lookup_Cookie_CustomName(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t, allauthtest.WithSessionCookieName("sid"))
	app := newApp(t, newMiddleware(t, srv, fiberauth.Config{KeyLookup: "cookie:sid"}).Handler)

	cookie := srv.IssueCookie("bob")
	wantUser(t, do(t, app, withCookie("sid", cookie)), "bob")
	wantError(t, do(t, app, withCookie("sessionid", cookie)), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	req := get()
	req.Header.Set("Cookie", "theme=dark; sid="+cookie+"; lang=en")
	wantUser(t, do(t, app, req), "bob")
	wantCalls(t, srv, 1)
}

// A custom header name is read from the request and sent to allauth as
// X-Session-Token; header names are case-insensitive.
func Test_Lookup_CustomHeader(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	app := newApp(t, newMiddleware(t, srv, fiberauth.Config{KeyLookup: "header:X-Auth-Token"}).Handler)

	tok := srv.IssueToken("alice")
	wantUser(t, do(t, app, get("X-Auth-Token", tok)), "alice")
	wantUser(t, do(t, app, get("x-auth-token", tok)), "alice")
	wantError(t, do(t, app, withToken(tok)), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	wantCalls(t, srv, 1)

	lower := newApp(t, newMiddleware(t, srv, fiberauth.Config{KeyLookup: " header : x-session-token "}).Handler)
	wantUser(t, do(t, lower, withToken(srv.IssueToken("bob"))), "bob")
}

// Blanks around a token are not part of it.
func Test_Lookup_TokenTrimmed(t *testing.T) {
	t.Parallel()
	srv, _, app := setup(t, fiberauth.Config{})
	tok := srv.IssueToken("alice")
	wantUser(t, do(t, app, withToken(" \t"+tok+"\t ")), "alice")
	wantUser(t, do(t, app, withToken(tok)), "alice")
	wantCalls(t, srv, 1)
}

// Two X-Session-Token headers: 410 (allauth sees them joined by a comma)
// without asking allauth, even when both are valid.
func Test_Lookup_DuplicateSessionToken_410(t *testing.T) {
	t.Parallel()
	srv, _, app := setup(t, fiberauth.Config{})
	tok := srv.IssueToken("alice")
	r := do(t, app, get(fiberauth.HeaderSessionToken, tok, fiberauth.HeaderSessionToken, tok))
	wantError(t, r, http.StatusGone, headless.CodeSessionGone)
	r = do(t, app, get(fiberauth.HeaderSessionToken, tok, "x-session-token", srv.IssueToken("bob")))
	wantError(t, r, http.StatusGone, headless.CodeSessionGone)
	wantCalls(t, srv, 0)
}

// The first source in KeyLookup that holds a non-blank value wins, whatever
// the others hold.
func Test_Lookup_Order(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	alice := srv.IssueToken("alice")
	bob := srv.IssueCookie("bob")
	both := func() *http.Request {
		req := withToken(alice)
		req.Header.Set("Cookie", "sessionid="+bob)
		return req
	}
	blankHeader := func() *http.Request {
		req := withToken("   ")
		req.Header.Set("Cookie", "sessionid="+bob)
		return req
	}

	headerFirst := newApp(t, newMiddleware(t, srv, fiberauth.Config{KeyLookup: "header:X-Session-Token,cookie:sessionid"}).Handler)
	wantUser(t, do(t, headerFirst, both()), "alice")
	wantUser(t, do(t, headerFirst, withCookie("sessionid", bob)), "bob")
	wantUser(t, do(t, headerFirst, blankHeader()), "bob")
	wantUser(t, do(t, headerFirst, withToken(alice)), "alice")

	cookieFirst := newApp(t, newMiddleware(t, srv, fiberauth.Config{KeyLookup: "cookie:sessionid, header:X-Session-Token"}).Handler)
	wantUser(t, do(t, cookieFirst, both()), "bob")
	wantUser(t, do(t, cookieFirst, withToken(alice)), "alice")

	// The winning source decides alone: a malformed first value is not
	// skipped in favour of a good second one.
	bad := withToken(alice)
	bad.Header.Set("Cookie", `sessionid=tök`)
	wantError(t, do(t, cookieFirst, bad), http.StatusUnauthorized, headless.CodeNotAuthenticated)

	// Bearer before a session token: the session token is used when no
	// Bearer header is there; a Basic header is skipped.
	bearerFirst := newApp(t, newMiddleware(t, srv, fiberauth.Config{KeyLookup: "header:Authorization,header:X-Session-Token"}).Handler)
	wantUser(t, do(t, bearerFirst, get("Authorization", "Basic dXNlcjpwYXNz", fiberauth.HeaderSessionToken, alice)), "alice")
	// allauthtest refuses every Bearer token, so a Bearer one that wins is a 401.
	r := do(t, bearerFirst, get("Authorization", "Bearer "+alice, fiberauth.HeaderSessionToken, alice))
	wantError(t, r, http.StatusUnauthorized, headless.CodeNotAuthenticated)
}

// LastCookie is the middleware's own rule (the last of two cookies, as
// Django), for handlers that must name the same session, and its value
// outlives the request.
func TestLastCookie(t *testing.T) {
	t.Parallel()
	var kept []string
	app := newApp(t, func(c *fiber.Ctx) error {
		kept = append(kept, fiberauth.LastCookie(c, "sessionid"))
		return c.SendString(fiberauth.LastCookie(c, "sessionid"))
	})
	for _, tc := range []struct{ cookie, want string }{
		{"sessionid=first; csrftoken=x; sessionid=second", "second"},
		{"sessionid=only", "only"},
		{"csrftoken=x; Sessionid=other", ""},
		{"", ""},
	} {
		req := get()
		if tc.cookie != "" {
			req.Header.Set("Cookie", tc.cookie)
		}
		if r := do(t, app, req); r.Status != http.StatusOK || r.Body != tc.want {
			t.Errorf("Cookie %q: %d %q, want %q", tc.cookie, r.Status, r.Body, tc.want)
		}
	}
	if want := []string{"second", "only", "", ""}; !slices.Equal(kept, want) {
		t.Errorf("values kept after the requests: %q, want %q", kept, want)
	}
}
