package fiberauth_test

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// Row "no credential": 401 in allauth's envelope, without asking allauth.
func Test_Contract_NoCredential_401(t *testing.T) {
	t.Parallel()
	srv, _, app := setup(t, fiberauth.Config{})

	for name, req := range map[string]*http.Request{
		"no header":          get(),
		"empty header":       withToken(""),
		"blank header":       withToken(" \t "),
		"other header":       get("X-Api-Key", "abc"),
		"cookie not in list": withCookie("sessionid", "abcdefghijklmnopqrstuvwxyz012345"),
	} {
		r := do(t, app, req)
		wantError(t, r, http.StatusUnauthorized, headless.CodeNotAuthenticated)
		if r.Body != `{"status": 401, "errors": [{"code": "not_authenticated", "message": "No credential was provided."}]}` {
			t.Errorf("%s: body = %s", name, r.Body)
		}
		if h := r.Header.Get("WWW-Authenticate"); h != "" {
			t.Errorf("%s: WWW-Authenticate = %q without header:Authorization in KeyLookup", name, h)
		}
	}
	wantCalls(t, srv, 0)
}

// Row "no credential" with Optional: the handler runs anonymously; a
// credential allauth rejects still fails.
func Test_Contract_NoCredential_Optional(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := newMiddleware(t, srv, fiberauth.Config{Optional: true})
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	t.Cleanup(func() { _ = app.Shutdown() })
	app.Use(m.Handler)
	app.Get("/", func(c *fiber.Ctx) error {
		if fiberauth.UserFrom(c) != nil || fiberauth.SessionFrom(c) != nil || c.Locals("user") != nil {
			t.Error("anonymous request has a user")
		}
		return c.SendString(anonymous)
	})

	wantUser(t, do(t, app, get()), anonymous)
	wantUser(t, do(t, app, withToken("  ")), anonymous)
	wantCalls(t, srv, 0)

	wantError(t, do(t, app, withToken("abcdefghijklmnopqrstuvwxyz012345")), http.StatusGone, headless.CodeSessionGone)
	wantError(t, do(t, app, withToken("bad token")), http.StatusGone, headless.CodeSessionGone)
	wantCalls(t, srv, 1)
}

// Row "malformed or oversized credential": answered as allauth would (410
// for a session token, 401 for Bearer and cookie), without a request.
func Test_Contract_Malformed_NoUpstreamCall(t *testing.T) {
	t.Parallel()
	srv, _, tokenApp := setup(t, fiberauth.Config{})
	bearerApp := newApp(t, newMiddleware(t, srv, fiberauth.Config{KeyLookup: "header:Authorization"}).Handler)
	cookieApp := newApp(t, newMiddleware(t, srv, fiberauth.Config{KeyLookup: "cookie:sessionid"}).Handler)

	long := strings.Repeat("a", 4096+1)
	tokenCases := map[string]string{
		"NUL inside":   "abc\x00def",
		"UTF-8":        "tökén-abcdefghijklmnopqrstuvwxyz",
		"space inside": "abcdefgh ijklmnop",
		"tab inside":   "abcdefgh\tijklmnop",
		"DEL":          "abc\x7fdef",
		"4097 bytes":   long,
	}
	for name, tok := range tokenCases {
		if strings.ContainsAny(tok, "\x00\x7f") {
			// fasthttp refuses control bytes in a header with its own 400
			// before any middleware runs; the middleware still answers
			// them as allauth would where they reach it (here: a request
			// built in process; other servers pass them on).
			a := serveDirect(tokenApp.Handler(), pair{fiberauth.HeaderSessionToken, tok})
			if a.Status != http.StatusGone || !strings.Contains(a.Body, headless.CodeSessionGone) {
				t.Errorf("%s: %d %s", name, a.Status, a.Body)
			}
			continue
		}
		r := do(t, tokenApp, withToken(tok))
		wantError(t, r, http.StatusGone, headless.CodeSessionGone)
		if r.Header.Get("WWW-Authenticate") != "" {
			t.Errorf("%s: WWW-Authenticate on a session token answer", name)
		}
	}

	bearerCases := map[string]string{
		"not b64token": "Bearer abc$def",
		"UTF-8":        "Bearer tökén",
		"space inside": "Bearer abc def",
		"4097 bytes":   "Bearer " + long,
	}
	for name, auth := range bearerCases {
		r := do(t, bearerApp, get("Authorization", auth))
		wantError(t, r, http.StatusUnauthorized, headless.CodeNotAuthenticated)
		if h := r.Header.Get("WWW-Authenticate"); h != `Bearer error="invalid_token"` {
			t.Errorf("%s: WWW-Authenticate = %q", name, h)
		}
	}

	cookieCases := map[string]string{
		"UTF-8":      "tökén",
		"backslash":  `abc\def`,
		"4097 bytes": long,
	}
	for name, v := range cookieCases {
		r := do(t, cookieApp, withCookie("sessionid", v))
		wantError(t, r, http.StatusUnauthorized, headless.CodeNotAuthenticated)
		if r.Header.Get("WWW-Authenticate") != "" {
			t.Errorf("%s: WWW-Authenticate on a cookie answer", name)
		}
	}
	wantCalls(t, srv, 0)

	// The limit is inclusive: 4096 bytes are worth asking (allauth: 410).
	wantError(t, do(t, tokenApp, withToken(long[1:])), http.StatusGone, headless.CodeSessionGone)
	wantCalls(t, srv, 1)
}

// Row "200": the user is in Locals (under "user", and via UserFrom and
// SessionFrom) and the next handler runs.
func Test_Contract_Authenticated(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	srv.AddUser(allauthtest.User{
		ID: "6f1c1b2e-8a0b-4c9e-9d51-3b1f0b1d2c3e", Username: "carol", Email: "carol@example.com",
		Password: "pw", Display: "Carol C.", Extra: map[string]any{"tenant": "acme"},
	})
	m := newMiddleware(t, srv, fiberauth.Config{})
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	t.Cleanup(func() { _ = app.Shutdown() })
	app.Use(m.Handler)
	var ran int
	app.Get("/", func(c *fiber.Ctx) error {
		ran++
		u, ok := c.Locals("user").(*introspect.User)
		if !ok || u == nil {
			t.Errorf("Locals(user) = %#v, want *introspect.User", c.Locals("user"))
			return c.SendStatus(http.StatusTeapot)
		}
		if fiberauth.UserFrom(c) != u {
			t.Error("UserFrom differs from Locals(user)")
		}
		s := fiberauth.SessionFrom(c)
		if s == nil || &s.User != u {
			t.Error("SessionFrom does not hold the user")
			return c.SendStatus(http.StatusTeapot)
		}
		if len(s.Methods) != 1 || s.Methods[0].Method != "password" || s.Methods[0].At.IsZero() {
			t.Errorf("methods = %+v, want one password login with a time", s.Methods)
		}
		var extra struct {
			Tenant string `json:"tenant"`
		}
		if err := u.Decode(&extra); err != nil || (u.Username == "carol") != (extra.Tenant == "acme") {
			t.Errorf("Decode: %v, tenant %q, raw %s", err, extra.Tenant, u.Raw)
		}
		return c.SendString(u.ID + "|" + u.Username + "|" + u.Display + "|" + u.Email)
	})

	r := do(t, app, withToken(srv.IssueToken("alice")))
	if r.Status != http.StatusOK || r.Body != "1|alice|alice|alice@example.com" {
		t.Fatalf("alice: %d %q", r.Status, r.Body)
	}
	r = do(t, app, withToken(srv.IssueToken("carol")))
	if r.Status != http.StatusOK || r.Body != "6f1c1b2e-8a0b-4c9e-9d51-3b1f0b1d2c3e|carol|Carol C.|carol@example.com" {
		t.Fatalf("carol: %d %q", r.Status, r.Body)
	}
	if ran != 2 {
		t.Fatalf("handler ran %d times, want 2", ran)
	}
	if r.Header.Get("Cache-Control") != "" {
		t.Errorf("a success carries Cache-Control %q", r.Header.Get("Cache-Control"))
	}
	wantCalls(t, srv, 2)
}

// Row "401": allauth's 401 (inactive, deleted, pending flow) is a 401.
func Test_Contract_Upstream401(t *testing.T) {
	t.Parallel()
	srv, _, app := setup(t, fiberauth.Config{NegativeTTL: -1})
	srv.AddUser(allauthtest.User{ID: 3, Username: "pending", Email: "p@example.com", Password: "pw", PendingEmailVerification: true})
	srv.AddUser(allauthtest.User{ID: 4, Username: "gone", Password: "pw"})

	alice := srv.IssueToken("alice")
	pending := srv.IssueToken("pending")
	gone := srv.IssueToken("gone")
	srv.SetActive("alice", false)
	srv.DeleteUser("gone")

	for name, tok := range map[string]string{"inactive": alice, "pending": pending, "deleted": gone} {
		r := do(t, app, withToken(tok))
		wantError(t, r, http.StatusUnauthorized, headless.CodeNotAuthenticated)
		if r.Body != `{"status": 401, "errors": [{"code": "not_authenticated", "message": "The credential is not valid."}]}` {
			t.Errorf("%s: body = %s", name, r.Body)
		}
	}
	wantCalls(t, srv, 3)

	// A 401 is not final: a reactivated user is let in again.
	srv.SetActive("alice", true)
	wantUser(t, do(t, app, withToken(alice)), "alice")
}

// Row "410": a token allauth does not know, or one logged out, is a 410.
func Test_Contract_Upstream410(t *testing.T) {
	t.Parallel()
	srv, _, app := setup(t, fiberauth.Config{NegativeTTL: -1})
	tok := srv.IssueToken("bob")
	wantUser(t, do(t, app, withToken(tok)), "bob")

	r := do(t, app, withToken("abcdefghijklmnopqrstuvwxyz012345"))
	wantError(t, r, http.StatusGone, headless.CodeSessionGone)
	if r.Body != `{"status": 410, "errors": [{"code": "session_gone", "message": "The session is gone; log in again."}]}` {
		t.Errorf("body = %s", r.Body)
	}

	// Logged out: 410 once the cached answer is gone.
	other := srv.IssueToken("bob")
	srv.Logout(other)
	wantError(t, do(t, app, withToken(other)), http.StatusGone, headless.CodeSessionGone)
	wantCalls(t, srv, 3)
}

// Row "429, 5xx, timeout, refused, not allauth's JSON": 503 with
// Retry-After, never 401 or 410, and nothing is cached.
func Test_Contract_UpstreamFailure_503(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		fault      allauthtest.Fault
		retryAfter string
	}{
		{"429 with Retry-After", allauthtest.Fault{Status: 429, RetryAfter: "7"}, "7"},
		{"429 without Retry-After", allauthtest.Fault{Status: 429}, "1"},
		{"500", allauthtest.Fault{Status: 500}, "1"},
		{"502", allauthtest.Fault{Status: 502}, "1"},
		{"503 with Retry-After", allauthtest.Fault{Status: 503, RetryAfter: "120"}, "120"},
		// What clients are told is clamped to 1..300 s, whatever allauth says.
		{"503 with Retry-After 300", allauthtest.Fault{Status: 503, RetryAfter: "300"}, "300"},
		{"503 with Retry-After 301", allauthtest.Fault{Status: 503, RetryAfter: "301"}, "300"},
		{"503 with Retry-After 2^31-1", allauthtest.Fault{Status: 503, RetryAfter: "2147483647"}, "300"},
		{"429 with Retry-After past int64", allauthtest.Fault{Status: 429, RetryAfter: "99999999999999999999999"}, "1"},
		{"503 with Retry-After 0", allauthtest.Fault{Status: 503, RetryAfter: "0"}, "1"},
		{"503 with a far HTTP-date Retry-After", allauthtest.Fault{Status: 503, RetryAfter: "Fri, 31 Dec 9999 23:59:59 GMT"}, "300"},
		{"504", allauthtest.Fault{Status: 504}, "1"},
		{"400 from a proxy", allauthtest.Fault{Status: 400}, "1"},
		{"timeout", allauthtest.Fault{Delay: 2 * time.Second}, "1"},
		{"dropped connection", allauthtest.Fault{Drop: true}, "1"},
		{"HTML body", allauthtest.Fault{Status: 200, Body: "<html><body>Login</body></html>", ContentType: "text/html"}, "1"},
		{"HTML 404", allauthtest.Fault{Status: 404, Body: "<h1>Not Found</h1>", ContentType: "text/html"}, "1"},
		{"garbage JSON", allauthtest.Fault{Status: 200, Body: `{"status": 200, "data": {"user": `}, "1"},
		{"401 that is not allauth's", allauthtest.Fault{Status: 401, Body: `{"detail": "nope"}`}, "1"},
		{"410 that is not allauth's", allauthtest.Fault{Status: 410, Body: "gone", ContentType: "text/plain"}, "1"},
		{"200 not authenticated", allauthtest.Fault{Body: `{"status": 200, "data": {}, "meta": {"is_authenticated": false}}`}, "1"},
		// Loose JSON is garbage, never a login: encoding/json alone would say
		// user 7, and user 2.
		{"200 with keys in other cases", allauthtest.Fault{Body: `{"Status": 200, "DATA": {"User": {"ID": 7}}, "Meta": {"Is_Authenticated": true}}`}, "1"},
		{"200 with id twice", allauthtest.Fault{Body: `{"status": 200, "data": {"user": {"id": 1, "id": 2}}, "meta": {"is_authenticated": true}}`}, "1"},
		{"200 with is_authenticated twice", allauthtest.Fault{Body: `{"status": 200, "data": {"user": {"id": 1}}, "meta": {"is_authenticated": false, "is_authenticated": true}}`}, "1"},
		{"200 with a blank id", allauthtest.Fault{Body: `{"status": 200, "data": {"user": {"id": " "}}, "meta": {"is_authenticated": true}}`}, "1"},
		{"200 with id -0", allauthtest.Fault{Body: `{"status": 200, "data": {"user": {"id": -0}}, "meta": {"is_authenticated": true}}`}, "1"},
		{"200 with an id of 1000 digits", allauthtest.Fault{Body: `{"status": 200, "data": {"user": {"id": ` + strings.Repeat("7", 1000) + `}}, "meta": {"is_authenticated": true}}`}, "1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Timeout is short only where the fault is the delay: under -race
			// with every case in parallel, 200 ms can pass on a good answer.
			cfg := fiberauth.Config{}
			if tc.fault.Delay > 0 {
				cfg.Timeout = 200 * time.Millisecond
			}
			srv, _, app := setup(t, cfg)
			tok := srv.IssueToken("alice")
			srv.SetFault(tc.fault)

			start := time.Now()
			r := do(t, app, withToken(tok))
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("answer took %v", took)
			}
			wantError(t, r, http.StatusServiceUnavailable, headless.CodeUpstreamUnavailable)
			if got := r.Header.Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tc.retryAfter)
			}
			if r.Header.Get("WWW-Authenticate") != "" {
				t.Error("WWW-Authenticate on a 503")
			}
			if srv.SessionCalls() < 1 {
				t.Error("allauth was not asked")
			}

			if tc.fault.Delay > 0 {
				return
			}
			// A failure is not cached: the same token works once allauth does.
			srv.SetFault(allauthtest.Fault{})
			wantUser(t, do(t, app, withToken(tok)), "alice")
		})
	}
}

// Refused connections (allauth down from the start) are a 503 too.
func Test_Contract_Refused_503(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	tok := srv.IssueToken("alice")
	srv.Close()
	m := newMiddleware(t, srv, fiberauth.Config{})
	app := newApp(t, m.Handler)
	r := do(t, app, withToken(tok))
	wantError(t, r, http.StatusServiceUnavailable, headless.CodeUpstreamUnavailable)
	if r.Header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After = %q", r.Header.Get("Retry-After"))
	}
}

// The error handed to ErrorHandler carries the cause, which names the kind of
// failure but never the token; the log line neither.
func Test_Contract_TokenNeverInErrorsOrLogs(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	var logs logBuffer
	var seen []error
	m := newMiddleware(t, srv, fiberauth.Config{
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		ErrorHandler: func(c *fiber.Ctx, err error) error {
			seen = append(seen, err)
			return fiberauth.DefaultErrorHandler(c, err)
		},
	})
	app := newApp(t, m.Handler)
	tok := srv.IssueToken("alice")
	srv.SetFault(allauthtest.Fault{Status: 502})
	do(t, app, withToken(tok))
	srv.SetFault(allauthtest.Fault{})
	do(t, app, withToken("abcdefghijklmnopqrstuvwxyz012345"))

	if len(seen) != 2 {
		t.Fatalf("ErrorHandler ran %d times, want 2", len(seen))
	}
	for _, err := range seen {
		if strings.Contains(err.Error(), tok) || strings.Contains(err.Error(), "abcdefghijklmnopqrstuvwxyz012345") {
			t.Errorf("error text holds the token: %v", err)
		}
	}
	if !strings.Contains(logs.String(), "allauth lookup failed") || !strings.Contains(logs.String(), "status=502") {
		t.Errorf("no log line for the 502: %q", logs.String())
	}
	if strings.Contains(logs.String(), tok) {
		t.Errorf("log holds the token: %q", logs.String())
	}
}
