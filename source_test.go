package headless

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/allauthgo/headless/introspect/allauthtest"
)

// Where a credential is read (Sources), how it is sent to allauth, and the
// answer's challenge: the core's part of every front door.

// jwtServer is a minimal allauth under the JWT token strategy: it records
// the Authorization header of every session lookup and answers 200 for
// "Bearer good.jwt.token", 410 for "Bearer ended.jwt.token" and 401 for
// anything else.
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

var bearerSource = []Source{FromAuthHeader("")}

// Any case of the scheme, with blanks around, is a Bearer token, sent to
// allauth as exactly "Bearer <token>".
func TestSources_Bearer_SchemesAndForwarding(t *testing.T) {
	t.Parallel()
	js := newJWTServer(t)
	a := newCore(t, nil, Config{BaseURL: js.URL, Sources: bearerSource, NegativeTTL: -1})

	for _, h := range []string{"Bearer good.jwt.token", "bearer good.jwt.token", "BEARER good.jwt.token", "  Bearer \t good.jwt.token  "} {
		if res := auth(a, get("Authorization", h)); res.Session == nil || res.Session.User.Username != "dave" {
			t.Errorf("%q: %s", h, describe(res))
		}
	}
	// One token, one lookup: the scheme's spelling does not split the cache.
	if got := js.received(); !slices.Equal(got, []string{"Bearer good.jwt.token"}) {
		t.Fatalf("allauth received %q", got)
	}

	// allauth's 401 for a Bearer token: 401 with an RFC 6750 challenge.
	h := wantError(t, auth(a, bearer("garbage.jwt.token")), http.StatusUnauthorized, CodeNotAuthenticated)
	if got := h.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
		t.Errorf("WWW-Authenticate = %q", got)
	}
	// allauth's 410 (the session behind the JWT ended): 410, no challenge.
	h = wantError(t, auth(a, bearer("ended.jwt.token")), http.StatusGone, CodeSessionGone)
	if got := h.Get("WWW-Authenticate"); got != "" {
		t.Errorf("WWW-Authenticate = %q on a 410", got)
	}
	if got := js.received(); !slices.Equal(got[1:], []string{"Bearer garbage.jwt.token", "Bearer ended.jwt.token"}) {
		t.Fatalf("allauth received %q", got)
	}
}

// Another scheme, or the scheme without a token, is no credential: 401 with
// a bare challenge, and allauth is not asked.
func TestSources_Bearer_NotACredential(t *testing.T) {
	t.Parallel()
	js := newJWTServer(t)
	a := newCore(t, nil, Config{BaseURL: js.URL, Sources: bearerSource})

	for _, v := range []string{"Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "Bearerx good.jwt.token", "Token good.jwt.token", "good.jwt.token", ""} {
		h := wantError(t, auth(a, get("Authorization", v)), http.StatusUnauthorized, CodeNotAuthenticated)
		if got := h.Get("WWW-Authenticate"); got != "Bearer" {
			t.Errorf("%q: WWW-Authenticate = %q, want Bearer", v, got)
		}
	}
	// Two Authorization headers: refused (which would a proxy pass on?).
	h := wantError(t, auth(a, get("Authorization", "Bearer good.jwt.token", "Authorization", "Bearer good.jwt.token")), http.StatusUnauthorized, CodeNotAuthenticated)
	if got := h.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
		t.Errorf("two headers: WWW-Authenticate = %q", got)
	}
	if got := js.received(); len(got) != 0 {
		t.Fatalf("allauth was asked: %q", got)
	}
}

// FromAuthHeader's scheme is the one read; allauth is still sent "Bearer".
func TestSources_Bearer_CustomScheme(t *testing.T) {
	t.Parallel()
	js := newJWTServer(t)
	a := newCore(t, nil, Config{BaseURL: js.URL, Sources: []Source{FromAuthHeader("Token")}})

	if res := auth(a, get("Authorization", "token good.jwt.token")); res.Session == nil || res.Session.User.Username != "dave" {
		t.Fatalf("got %s", describe(res))
	}
	wantError(t, auth(a, bearer("good.jwt.token")), http.StatusUnauthorized, CodeNotAuthenticated)
	if got := js.received(); !slices.Equal(got, []string{"Bearer good.jwt.token"}) {
		t.Fatalf("allauth received %q", got)
	}
	// FromHeader("authorization") is FromAuthHeader("Bearer").
	if s := FromHeader(" authorization "); s.String() != "header:Authorization (Bearer)" {
		t.Errorf("FromHeader(authorization) = %s", s)
	}
}

// allauthtest answers a session token sent as Bearer with its 401: a
// rejected credential, answered with the challenge.
func TestSources_Bearer_AllauthtestRejects(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{Sources: bearerSource})
	h := wantError(t, auth(a, bearer(srv.IssueToken("alice"))), http.StatusUnauthorized, CodeNotAuthenticated)
	if got := h.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
		t.Errorf("WWW-Authenticate = %q", got)
	}
	wantCalls(t, srv, 1)
}

// WWW-Authenticate is sent on a 401 only when a source reads Authorization.
func TestSources_WWWAuthenticate(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	inactive := srv.IssueToken("bob")
	srv.SetActive("bob", false)
	token, authz, cookie := FromHeader(HeaderSessionToken), FromAuthHeader("Bearer"), FromCookie("sessionid")

	cases := []struct {
		sources []Source
		req     *req
		status  int
		want    string
	}{
		{[]Source{token}, get(), 401, ""},
		{[]Source{token}, withToken(inactive), 401, ""},
		{[]Source{token}, withToken("abcdefghijklmnopqrstuvwxyz012345"), 410, ""},
		{[]Source{authz}, get(), 401, "Bearer"},
		{[]Source{authz}, bearer("abc"), 401, `Bearer error="invalid_token"`},
		{[]Source{token, authz}, get(), 401, "Bearer"},
		{[]Source{authz, cookie}, get(), 401, "Bearer"},
		// RFC 7235: every 401 carries a challenge once Bearer is accepted,
		// also when the refused credential was another kind.
		{[]Source{token, authz}, withToken(inactive), 401, "Bearer"},
		{[]Source{cookie, authz}, withCookie("sessionid", inactive), 401, "Bearer"},
		{[]Source{cookie}, get(), 401, ""},
		{[]Source{cookie}, withCookie("sessionid", inactive), 401, ""},
	}
	for _, tc := range cases {
		a := newCore(t, srv, Config{Sources: tc.sources, NegativeTTL: -1})
		res := auth(a, tc.req)
		if res.Err == nil || res.Err.Status != tc.status {
			t.Errorf("%v: %s, want %d", tc.sources, describe(res), tc.status)
			continue
		}
		h := headers(res.Err)
		if _, ok := h["Www-Authenticate"]; ok != (tc.want != "") || h.Get("WWW-Authenticate") != tc.want {
			t.Errorf("%v: WWW-Authenticate = %q (present %v), want %q", tc.sources, h.Get("WWW-Authenticate"), ok, tc.want)
		}
	}
}

// A cookie is checked at allauth's browser endpoint: a logged-out or unknown
// cookie is a 401 there, never a 410.
func TestSources_Cookie_BrowserEndpoint(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{Sources: []Source{FromCookie("sessionid")}})

	cookie := srv.IssueCookie("alice")
	wantUser(t, auth(a, withCookie("sessionid", cookie)), "alice")

	out := srv.IssueCookie("bob")
	srv.Logout(out)
	wantError(t, auth(a, withCookie("sessionid", out)), http.StatusUnauthorized, CodeNotAuthenticated)
	wantError(t, auth(a, withCookie("sessionid", "abcdefghijklmnopqrstuvwxyz012345")), http.StatusUnauthorized, CodeNotAuthenticated)
	// An X-Session-Token is not read with these sources.
	wantError(t, auth(a, withToken(cookie)), http.StatusUnauthorized, CodeNotAuthenticated)
	wantCalls(t, srv, 3)

	// Logout then Evict: the cookie is refused at once, still with a 401.
	srv.Logout(cookie)
	wantUser(t, auth(a, withCookie("sessionid", cookie)), "alice") // cached
	if err := a.Evict(t.Context(), cookie); err != nil {
		t.Fatal(err)
	}
	wantError(t, auth(a, withCookie("sessionid", cookie)), http.StatusUnauthorized, CodeNotAuthenticated)
	wantCalls(t, srv, 4)
}

// A custom cookie name is both read from the request and sent to allauth;
// of two cookies of that name, the last counts (as in Django).
func TestSources_Cookie_CustomName(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t, allauthtest.WithSessionCookieName("sid"))
	a := newCore(t, srv, Config{Sources: []Source{FromCookie("sid")}})

	cookie := srv.IssueCookie("bob")
	wantUser(t, auth(a, withCookie("sid", cookie)), "bob")
	wantError(t, auth(a, withCookie("sessionid", cookie)), http.StatusUnauthorized, CodeNotAuthenticated)
	wantUser(t, auth(a, get("Cookie", "theme=dark; sid="+cookie+"; lang=en")), "bob")
	wantUser(t, auth(a, get("Cookie", "sid=abcdefghijklmnopqrstuvwxyz012345; sid="+cookie)), "bob")
	wantCalls(t, srv, 1)
}

// A custom header name is read and sent to allauth as X-Session-Token; the
// name given to FromHeader is canonicalised and trimmed.
func TestSources_CustomHeader(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	a := newCore(t, srv, Config{Sources: []Source{FromHeader("x-auth-token")}})

	tok := srv.IssueToken("alice")
	wantUser(t, auth(a, get("X-Auth-Token", tok)), "alice")
	wantError(t, auth(a, withToken(tok)), http.StatusUnauthorized, CodeNotAuthenticated)
	wantCalls(t, srv, 1)

	lower := newCore(t, srv, Config{Sources: []Source{FromHeader(" x-session-token ")}})
	wantUser(t, auth(lower, withToken(srv.IssueToken("bob"))), "bob")
}

// Blanks around a token are not part of it.
func TestSources_TokenTrimmed(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{})
	tok := srv.IssueToken("alice")
	wantUser(t, auth(a, withToken(" \t"+tok+"\t ")), "alice")
	wantUser(t, auth(a, withToken(tok)), "alice")
	wantCalls(t, srv, 1)
}

// Two X-Session-Token headers: 410 (allauth sees them joined by a comma)
// without asking allauth, even when both are valid.
func TestSources_DuplicateSessionToken_410(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{})
	tok := srv.IssueToken("alice")
	wantError(t, auth(a, get(HeaderSessionToken, tok, HeaderSessionToken, tok)), http.StatusGone, CodeSessionGone)
	wantError(t, auth(a, get(HeaderSessionToken, tok, "x-session-token", srv.IssueToken("bob"))), http.StatusGone, CodeSessionGone)
	wantCalls(t, srv, 0)
}

// The first source that holds a non-blank value wins, whatever the others
// hold.
func TestSources_Order(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	alice := srv.IssueToken("alice")
	bob := srv.IssueCookie("bob")
	both := func() *req { return get(HeaderSessionToken, alice, "Cookie", "sessionid="+bob) }
	blankHeader := func() *req { return get(HeaderSessionToken, "   ", "Cookie", "sessionid="+bob) }
	token, cookie := FromHeader(HeaderSessionToken), FromCookie("sessionid")

	headerFirst := newCore(t, srv, Config{Sources: []Source{token, cookie}})
	wantUser(t, auth(headerFirst, both()), "alice")
	wantUser(t, auth(headerFirst, withCookie("sessionid", bob)), "bob")
	wantUser(t, auth(headerFirst, blankHeader()), "bob")
	wantUser(t, auth(headerFirst, withToken(alice)), "alice")

	cookieFirst := newCore(t, srv, Config{Sources: []Source{cookie, token}})
	wantUser(t, auth(cookieFirst, both()), "bob")
	wantUser(t, auth(cookieFirst, withToken(alice)), "alice")

	// The winning source decides alone: a malformed first value is not
	// skipped in favour of a good second one.
	wantError(t, auth(cookieFirst, get(HeaderSessionToken, alice, "Cookie", "sessionid=tök")), http.StatusUnauthorized, CodeNotAuthenticated)

	// Bearer before a session token: the session token is used when no
	// Bearer header is there; a Basic header is skipped.
	bearerFirst := newCore(t, srv, Config{Sources: []Source{FromAuthHeader("Bearer"), token}})
	wantUser(t, auth(bearerFirst, get("Authorization", "Basic dXNlcjpwYXNz", HeaderSessionToken, alice)), "alice")
	// allauthtest refuses a session token as Bearer, so a Bearer one that
	// wins is a 401.
	wantError(t, auth(bearerFirst, get("Authorization", "Bearer "+alice, HeaderSessionToken, alice)), http.StatusUnauthorized, CodeNotAuthenticated)
}

// What New refuses in Sources, and how a source describes itself.
func TestSources_Checked(t *testing.T) {
	t.Parallel()
	for name, sources := range map[string][]Source{
		"no name":         {FromHeader(" ")},
		"no cookie name":  {FromCookie("")},
		"a header twice":  {FromHeader("X-A"), FromHeader("x-a")},
		"two Bearers":     {FromAuthHeader("Bearer"), FromAuthHeader("Token")},
		"two cookies":     {FromCookie("a"), FromCookie("b")},
		"a cookie twice":  {FromCookie("a"), FromCookie("a")},
		"Bearer, header":  {FromAuthHeader(""), FromHeader("Authorization")},
		"blank in a list": {FromHeader(HeaderSessionToken), {}},
	} {
		if _, err := New(Config{BaseURL: "http://127.0.0.1:1", Sources: sources}); err == nil {
			t.Errorf("%s: New accepted %v", name, sources)
		}
	}
	for _, tc := range []struct {
		s    Source
		want string
	}{
		{FromHeader("x-session-token"), "header:X-Session-Token"},
		{FromAuthHeader(""), "header:Authorization (Bearer)"},
		{FromAuthHeader(" Token "), "header:Authorization (Token)"},
		{FromCookie(" sid "), "cookie:sid"},
	} {
		if tc.s.String() != tc.want {
			t.Errorf("String() = %q, want %q", tc.s.String(), tc.want)
		}
	}
}
