package fiberauth_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/internal/allauth"
	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// A config that cannot work panics at New, naming the field at fault.
func Test_Config_Panics(t *testing.T) {
	t.Parallel()
	const base = "http://127.0.0.1:8000"
	cases := []struct {
		name string
		cfg  fiberauth.Config
		want []string // all in the panic message
	}{
		{"no BaseURL", fiberauth.Config{}, []string{"BaseURL"}},
		{"ftp BaseURL", fiberauth.Config{BaseURL: "ftp://x"}, []string{"BaseURL", "http or https"}},
		{"BaseURL without scheme", fiberauth.Config{BaseURL: "127.0.0.1:8000"}, []string{"BaseURL"}},
		{"BaseURL without host", fiberauth.Config{BaseURL: "http://"}, []string{"BaseURL", "no host"}},
		{"BaseURL with query", fiberauth.Config{BaseURL: base + "?x=1"}, []string{"BaseURL"}},
		{"Mount not a path", fiberauth.Config{BaseURL: base, Mount: "_allauth"}, []string{"Mount"}},
		{"query source", fiberauth.Config{BaseURL: base, KeyLookup: "query:token"}, []string{"KeyLookup", "query", "not supported"}},
		{"form source", fiberauth.Config{BaseURL: base, KeyLookup: "form:token"}, []string{"KeyLookup", "form"}},
		{"param source", fiberauth.Config{BaseURL: base, KeyLookup: "param:token"}, []string{"KeyLookup", "param"}},
		{"no colon", fiberauth.Config{BaseURL: base, KeyLookup: "bogus"}, []string{"KeyLookup", "bogus"}},
		{"unknown source", fiberauth.Config{BaseURL: base, KeyLookup: "body:token"}, []string{"KeyLookup", "body", "unknown"}},
		{"no name", fiberauth.Config{BaseURL: base, KeyLookup: "header:"}, []string{"KeyLookup", "header:"}},
		{"trailing comma", fiberauth.Config{BaseURL: base, KeyLookup: "header:X-Session-Token,"}, []string{"KeyLookup"}},
		{"duplicate", fiberauth.Config{BaseURL: base, KeyLookup: "header:X-Session-Token,header:x-session-token"}, []string{"X-Session-Token", "twice"}},
		{"duplicate Authorization", fiberauth.Config{BaseURL: base, KeyLookup: "header:Authorization,header:authorization"}, []string{"Authorization", "twice"}},
		{"two cookies", fiberauth.Config{BaseURL: base, KeyLookup: "cookie:sessionid,cookie:sid"}, []string{"2 cookies"}},
		{"bad cookie name", fiberauth.Config{BaseURL: base, KeyLookup: "cookie:a;b"}, []string{"CookieName"}},
		{"short StorageSecret", fiberauth.Config{BaseURL: base, Storage: newMemStorage(), StorageSecret: []byte("short")}, []string{"StorageSecret", "16 bytes"}},
		{"StorageSecret without Storage", fiberauth.Config{BaseURL: base, StorageSecret: make([]byte, 32)}, []string{"StorageSecret", "Storage"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			msg := panicMessage(func() { fiberauth.New(tc.cfg) })
			if msg == "" {
				t.Fatal("no panic")
			}
			if !strings.HasPrefix(msg, "fiberauth: ") {
				t.Errorf("panic %q does not name the package", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("panic %q does not mention %q", msg, w)
				}
			}
		})
	}
}

// panicMessage runs f and returns what it panicked with, as text.
func panicMessage(f func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
		}
	}()
	f()
	return ""
}

// The defaults work: New with only BaseURL reads X-Session-Token, stores the
// user under "user", answers errors with the envelope.
func Test_Config_Defaults(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := must(fiberauth.NewMiddleware(fiberauth.Config{BaseURL: srv.URL, Logger: quietLogger()}))
	defer func() { _ = m.Close() }()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	defer func() { _ = app.Shutdown() }()
	app.Use(m.Handler)
	app.Get("/", func(c *fiber.Ctx) error {
		u, ok := c.Locals("user").(*introspect.User)
		if !ok {
			return c.SendStatus(http.StatusTeapot)
		}
		return c.SendString(u.Username)
	})
	wantUser(t, do(t, app, withToken(srv.IssueToken("alice"))), "alice")
	wantError(t, do(t, app, get()), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	if allauth.Of(m.Authenticator) == nil {
		t.Error("the Authenticator has no allauth client")
	}
	if got := allauth.Of(m.Authenticator).Endpoint(introspect.SessionToken); got != srv.SessionURL("app") {
		t.Errorf("endpoint %q, want %q", got, srv.SessionURL("app"))
	}
}

// Mount reaches allauth where the Django project mounts it.
func Test_Config_Mount(t *testing.T) {
	t.Parallel()
	srv := allauthtest.NewServer(allauthtest.WithMount("/api/auth"))
	defer srv.Close()
	srv.AddUser(allauthtest.User{ID: 1, Username: "alice", Password: "pw"})
	m := newMiddleware(t, srv, fiberauth.Config{Mount: "/api/auth/"})
	wantUser(t, do(t, newApp(t, m.Handler), withToken(srv.IssueToken("alice"))), "alice")
}

// Next skips the middleware: no lookup, no user, the route runs.
func Test_Config_Next(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := newMiddleware(t, srv, fiberauth.Config{Next: func(c *fiber.Ctx) bool { return c.Path() == "/health" }})
	app := newApp(t, m.Handler)

	tok := srv.IssueToken("alice")
	wantUser(t, do(t, app, getPath("/health", fiberauth.HeaderSessionToken, tok)), anonymous)
	wantUser(t, do(t, app, getPath("/health")), anonymous)
	wantUser(t, do(t, app, getPath("/health", fiberauth.HeaderSessionToken, "bad token")), anonymous)
	wantCalls(t, srv, 0)

	wantUser(t, do(t, app, withToken(tok)), "alice")
	wantError(t, do(t, app, get()), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	wantCalls(t, srv, 1)
	// Skipped requests are counted, so that Metrics sees every request.
	if s := m.Metrics().Requests; s[headless.OutcomeSkipped] != 3 || s[headless.OutcomeAuthenticated] != 1 {
		t.Errorf("requests by outcome: %v", s)
	}
}

// SuccessHandler runs after the user is stored; it may go on or answer.
func Test_Config_SuccessHandler(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := newMiddleware(t, srv, fiberauth.Config{SuccessHandler: func(c *fiber.Ctx) error {
		u := fiberauth.UserFrom(c)
		if u == nil {
			return c.SendStatus(http.StatusTeapot)
		}
		if u.Username == "bob" {
			return c.Status(http.StatusForbidden).SendString("no bobs")
		}
		c.Set("X-User-Id", u.ID)
		return c.Next()
	}})
	app := newApp(t, m.Handler)

	r := do(t, app, withToken(srv.IssueToken("alice")))
	wantUser(t, r, "alice")
	if r.Header.Get("X-User-Id") != "1" {
		t.Errorf("X-User-Id = %q", r.Header.Get("X-User-Id"))
	}
	r = do(t, app, withToken(srv.IssueToken("bob")))
	if r.Status != http.StatusForbidden || r.Body != "no bobs" {
		t.Errorf("bob: %d %q, want the SuccessHandler's 403", r.Status, r.Body)
	}
}

// ErrorHandler gets an *Error with the status and code, and may answer in
// its own way.
func Test_Config_ErrorHandler(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	var got []*headless.Error
	m := newMiddleware(t, srv, fiberauth.Config{ErrorHandler: func(c *fiber.Ctx, err error) error {
		var e *headless.Error
		if !errors.As(err, &e) {
			return c.SendStatus(http.StatusTeapot)
		}
		got = append(got, e)
		return c.Status(e.Status).JSON(fiber.Map{"reason": e.Code})
	}})
	app := newApp(t, m.Handler)

	tok := srv.IssueToken("alice")
	inactive := srv.IssueToken("bob")
	srv.SetActive("bob", false)

	want := []struct {
		status int
		code   string
		cause  error
	}{
		{401, headless.CodeNotAuthenticated, introspect.ErrUnauthenticated},
		{410, headless.CodeSessionGone, introspect.ErrSessionGone},
		{401, headless.CodeNotAuthenticated, introspect.ErrUnauthenticated},
		{410, headless.CodeSessionGone, introspect.ErrSessionGone},
		{503, headless.CodeUpstreamUnavailable, nil},
	}
	for i, req := range []*http.Request{get(), withToken("abcdefghijklmnopqrstuvwxyz012345"), withToken(inactive), withToken("bad token")} {
		r := do(t, app, req)
		if r.Status != want[i].status || r.Body != `{"reason":"`+want[i].code+`"}` {
			t.Errorf("request %d: %d %q", i, r.Status, r.Body)
		}
	}
	srv.SetFault(allauthtest.Fault{Status: 429, RetryAfter: "9"})
	r := do(t, app, withToken(tok))
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") != "" || r.Header.Get("Cache-Control") != "" {
		t.Errorf("503: %d, Retry-After %q, Cache-Control %q (a custom ErrorHandler sets its own headers)",
			r.Status, r.Header.Get("Retry-After"), r.Header.Get("Cache-Control"))
	}

	if len(got) != len(want) {
		t.Fatalf("ErrorHandler ran %d times, want %d", len(got), len(want))
	}
	for i, e := range got {
		if e.Status != want[i].status || e.Code != want[i].code || e.Message == "" {
			t.Errorf("error %d = %+v", i, e)
		}
		if want[i].cause != nil && !errors.Is(e, want[i].cause) {
			t.Errorf("error %d does not wrap %v: %v", i, want[i].cause, e)
		}
	}
	var up *introspect.UpstreamError
	if last := got[len(got)-1]; !errors.As(last, &up) || up.Status != 429 || last.RetryAfter.Seconds() != 9 {
		t.Errorf("503 cause = %v, RetryAfter %v", last.Err, last.RetryAfter)
	}
	// A custom ErrorHandler is handed the clamped delay (1..300 s), while
	// the cause keeps what allauth said.
	srv.SetFault(allauthtest.Fault{Status: 503, RetryAfter: "2147483647"})
	_ = do(t, app, withToken(tok))
	if last := got[len(got)-1]; !errors.As(last, &up) || up.RetryAfter.Seconds() != 2147483647 || last.RetryAfter.Seconds() != 300 {
		t.Errorf("503 with Retry-After 2147483647: RetryAfter %v, cause %v", last.RetryAfter, last.Err)
	}
	if !got[0].Bearer && got[0].InvalidToken {
		t.Error("no credential marked as an invalid token")
	}
	if !got[1].InvalidToken {
		t.Error("a rejected token is not marked InvalidToken")
	}
}

// AppErrorHandler hands the failure to the app's ErrorHandler as a
// *fiber.Error carrying the status, with the protocol headers set.
func Test_Config_AppErrorHandler(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	var seen []int
	m := newMiddleware(t, srv, fiberauth.Config{ErrorHandler: fiberauth.AppErrorHandler, KeyLookup: "header:X-Session-Token,header:Authorization"})
	app := newApp(t, m.Handler, fiber.Config{ErrorHandler: func(c *fiber.Ctx, err error) error {
		var fe *fiber.Error
		if !errors.As(err, &fe) {
			return c.SendStatus(http.StatusTeapot)
		}
		seen = append(seen, fe.Code)
		return c.Status(fe.Code).SendString("app says " + fe.Message)
	}})

	r := do(t, app, get())
	if r.Status != 401 || !strings.HasPrefix(r.Body, "app says ") || r.Header.Get("WWW-Authenticate") != "Bearer" || r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("no credential: %d %q %v", r.Status, r.Body, r.Header)
	}
	r = do(t, app, get("Authorization", "Bearer garbage"))
	if r.Status != 401 || r.Header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
		t.Errorf("rejected Bearer: %d, WWW-Authenticate %q", r.Status, r.Header.Get("WWW-Authenticate"))
	}
	r = do(t, app, withToken("abcdefghijklmnopqrstuvwxyz012345"))
	if r.Status != 410 || r.Header.Get("WWW-Authenticate") != "" {
		t.Errorf("410: %d %v", r.Status, r.Header)
	}
	srv.SetFault(allauthtest.Fault{Status: 503, RetryAfter: "30"})
	r = do(t, app, withToken(srv.IssueToken("alice")))
	if r.Status != 503 || r.Header.Get("Retry-After") != "30" || r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("503: %d %v", r.Status, r.Header)
	}
	// allauth's absurd Retry-After is clamped here too.
	srv.SetFault(allauthtest.Fault{Status: 503, RetryAfter: "2147483647"})
	r = do(t, app, withToken(srv.IssueToken("alice")))
	if r.Status != 503 || r.Header.Get("Retry-After") != "300" {
		t.Errorf("503 with Retry-After 2147483647: %d, Retry-After %q, want 300", r.Status, r.Header.Get("Retry-After"))
	}
	if want := []int{401, 401, 410, 503, 503}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("app ErrorHandler saw %v, want %v", seen, want)
	}
}

// DefaultErrorHandler answers an error that is not an *Error as a 500 that
// does not show its text.
func Test_Config_DefaultErrorHandler_OtherError(t *testing.T) {
	t.Parallel()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	defer func() { _ = app.Shutdown() }()
	app.Get("/", func(c *fiber.Ctx) error {
		return fiberauth.DefaultErrorHandler(c, errors.New("secret detail"))
	})
	r := do(t, app, get())
	wantError(t, r, http.StatusInternalServerError, "internal_error")
	if strings.Contains(r.Body, "secret") {
		t.Errorf("body shows the error: %s", r.Body)
	}
}

// ContextKey changes the Locals key; UserFrom still works.
func Test_Config_ContextKey(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := newMiddleware(t, srv, fiberauth.Config{ContextKey: "principal"})
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	defer func() { _ = app.Shutdown() }()
	app.Use(m.Handler)
	app.Get("/", func(c *fiber.Ctx) error {
		u, ok := c.Locals("principal").(*introspect.User)
		if !ok || c.Locals("user") != nil || fiberauth.UserFrom(c) != u {
			return c.SendStatus(http.StatusTeapot)
		}
		return c.SendString(u.Username)
	})
	wantUser(t, do(t, app, withToken(srv.IssueToken("bob"))), "bob")
}

// UserContext puts the session in c.UserContext() too; off by default.
func Test_Config_UserContext(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	tok := srv.IssueToken("alice")
	for _, on := range []bool{true, false} {
		m := newMiddleware(t, srv, fiberauth.Config{UserContext: on})
		app := fiber.New(fiber.Config{DisableStartupMessage: true})
		app.Use(m.Handler)
		app.Get("/", func(c *fiber.Ctx) error {
			ctx := c.UserContext()
			u := fiberauth.UserFromContext(ctx)
			s := headless.SessionFromContext(ctx)
			if !on {
				if u != nil || s != nil {
					return c.SendStatus(http.StatusTeapot)
				}
				return c.SendString("none")
			}
			if u == nil || s == nil || &s.User != u || fiberauth.UserFrom(c) != u {
				return c.SendStatus(http.StatusTeapot)
			}
			return c.SendString(whoAmI(context.WithValue(ctx, traceKey{}, "trace-1")))
		})
		want := "none"
		if on {
			want = "alice"
		}
		wantUser(t, do(t, app, withToken(tok)), want)
		if err := app.Shutdown(); err != nil {
			t.Fatal(err)
		}
	}
	if fiberauth.UserFromContext(context.Background()) != nil || headless.SessionFromContext(context.Background()) != nil {
		t.Error("a bare context has a user")
	}
}

// traceKey derives a context from c.UserContext(), as app code would.
type traceKey struct{}

// whoAmI is code that only gets a context.
func whoAmI(ctx context.Context) string {
	if u := fiberauth.UserFromContext(ctx); u != nil {
		return u.Username
	}
	return anonymous
}

// One Middleware serves several routes from one cache: Handler requires a
// user, Optional lets anonymous requests through, and a login seen on one
// route is a hit on the other.
func Test_Middleware_HandlerAndOptionalShareOneCache(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := newMiddleware(t, srv, fiberauth.Config{})
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	t.Cleanup(func() { _ = app.Shutdown() })
	app.Get("/private", m.Handler, whoHandler)
	app.Get("/public", m.Optional, whoHandler)

	tok := srv.IssueToken("alice")
	for _, path := range []string{"/private", "/public"} {
		if r := do(t, app, getPath(path, fiberauth.HeaderSessionToken, tok)); r.Status != http.StatusOK || r.Body != "alice" {
			t.Errorf("%s: %d %q", path, r.Status, r.Body)
		}
	}
	wantCalls(t, srv, 1)
	if s := m.Metrics().Cache; s.Hits != 1 || s.Fetches != 1 {
		t.Errorf("stats %+v, want one fetch then one hit", s)
	}

	if r := do(t, app, getPath("/public")); r.Status != http.StatusOK || r.Body != anonymous {
		t.Errorf("anonymous on Optional: %d %q", r.Status, r.Body)
	}
	wantError(t, do(t, app, getPath("/private")), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	bad := getPath("/public", fiberauth.HeaderSessionToken, "abcdefghijklmnopqrstuvwxyz012345")
	wantError(t, do(t, app, bad), http.StatusGone, headless.CodeSessionGone)
}
