package fiberauth_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// How the middleware reads a Fiber request: header names in any case, the
// Cookie header parsed by fasthttp (the last of two cookies counts), and
// KeyLookup's spelling. What the core then does with a credential is tested
// in the root package (source_test.go).
func Test_Lookup_FiberRequest(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t, allauthtest.WithSessionCookieName("sid"))
	tok := srv.IssueToken("alice")
	cookie := srv.IssueCookie("bob")

	header := newApp(t, newMiddleware(t, srv, fiberauth.Config{KeyLookup: " header : x-auth-token "}).Handler)
	wantUser(t, do(t, header, get("X-Auth-Token", tok)), "alice")
	wantUser(t, do(t, header, get("x-auth-token", tok)), "alice")
	wantError(t, do(t, header, get("X-Auth-Token", tok, "x-auth-token", tok)), http.StatusGone, headless.CodeSessionGone)

	cookies := newApp(t, newMiddleware(t, srv, fiberauth.Config{KeyLookup: "cookie:sid"}).Handler)
	req := get()
	req.Header.Set("Cookie", "theme=dark; sid="+cookie+"; lang=en")
	wantUser(t, do(t, cookies, req), "bob")
	req = get()
	req.Header.Set("Cookie", "sid=abcdefghijklmnopqrstuvwxyz012345; sid="+cookie)
	wantUser(t, do(t, cookies, req), "bob")

	bearer := newApp(t, newMiddleware(t, srv, fiberauth.Config{KeyLookup: "header:authorization", AuthScheme: "Token"}).Handler)
	r := do(t, bearer, get("authorization", "Bearer "+tok))
	wantError(t, r, http.StatusUnauthorized, headless.CodeNotAuthenticated)
	if h := r.Header.Get("WWW-Authenticate"); h != "Bearer" {
		t.Errorf("WWW-Authenticate = %q", h)
	}
	wantCalls(t, srv, 2)
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
