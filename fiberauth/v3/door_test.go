package fiberauth_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace/noop"

	fiberv2 "github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v3"
	"github.com/gofiber/fiber/v3/extractors"

	"github.com/allauthgo/headless"
	fiberauthv2 "github.com/allauthgo/headless/fiberauth"
	fiberauth "github.com/allauthgo/headless/fiberauth/v3"
	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// TestContract checks the statuses, bodies, headers and upstream calls of
// the contract through this door (the full conformance table runs against
// every door elsewhere).
func TestContract(t *testing.T) {
	srv, _, app := setup(t, fiberauth.Config{})
	alice := srv.IssueToken("alice")

	r := do(t, app, get())
	wantStatus(t, r, http.StatusUnauthorized, body401)
	if h := r.Header.Get("WWW-Authenticate"); h != "" {
		t.Errorf("WWW-Authenticate = %q without an Authorization source", h)
	}
	wantStatus(t, do(t, app, withToken(alice)), http.StatusOK, "alice")
	wantStatus(t, do(t, app, withToken(alice)), http.StatusOK, "alice")
	wantCalls(t, srv, 1) // the second from the cache

	wantStatus(t, do(t, app, withToken("nosuchtoken0000000000000000000000")), http.StatusGone, body410)
	wantStatus(t, do(t, app, get(headless.HeaderSessionToken, alice, headless.HeaderSessionToken, alice)), http.StatusGone, body410)
	wantCalls(t, srv, 2) // a repeated header is refused without asking

	srv.SetFault(allauthtest.Fault{Status: http.StatusBadGateway})
	r = do(t, app, withToken(srv.IssueToken("bob")))
	wantStatus(t, r, http.StatusServiceUnavailable, body503)
	if r.Header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After = %q, want 1", r.Header.Get("Retry-After"))
	}
}

// TestExtractors checks that each v3 extractor reads what the core's source
// reads, as allauth would.
func TestExtractors(t *testing.T) {
	srv := newAllauth(t, allauthtest.WithJWT(allauthtest.JWTConfig{}))
	alice, bob := srv.IssueToken("alice"), srv.IssueToken("bob")
	cookie := srv.SessionCookieName()
	aliceCookie, bobCookie := srv.IssueCookie("alice"), srv.IssueCookie("bob")
	access, _ := srv.IssueJWT("alice")
	jwt := &introspect.JWTConfig{PublicKey: srv.JWTPublicKeyPEM()}

	type req struct {
		headers []string
		status  int
		body    string
		www     string // WWW-Authenticate
	}
	for _, tc := range []struct {
		name string
		cfg  fiberauth.Config
		reqs []req
	}{
		{"header", fiberauth.Config{Extractor: extractors.FromHeader("X-Api-Token")}, []req{
			{[]string{"x-api-token", alice}, 200, "alice", ""},
			{[]string{headless.HeaderSessionToken, alice}, 401, body401, ""},
			{[]string{"X-Api-Token", "  "}, 401, body401, ""},
		}},
		{"auth header", fiberauth.Config{Extractor: extractors.FromAuthHeader("Bearer"), JWT: jwt}, []req{
			{[]string{"Authorization", "bearer " + access}, 200, "sub:1", ""},
			{nil, 401, body401, "Bearer"},
			{[]string{"Authorization", "Basic YWxpY2U6cGFzcw=="}, 401, body401, "Bearer"},
			{[]string{"Authorization", "Bearer not.a.jwt"}, 401, body401Invalid, `Bearer error="invalid_token"`},
		}},
		{"FromHeader(Authorization) is Bearer", fiberauth.Config{Extractor: extractors.FromHeader("Authorization"), JWT: jwt}, []req{
			{[]string{"Authorization", "Bearer " + access}, 200, "sub:1", ""},
		}},
		{"cookie, the last of two", fiberauth.Config{Extractor: extractors.FromCookie(cookie)}, []req{
			{[]string{"Cookie", cookie + "=" + aliceCookie}, 200, "alice", ""},
			{[]string{"Cookie", cookie + "=" + bobCookie + "; " + cookie + "=" + aliceCookie}, 200, "alice", ""},
			{[]string{"Cookie", cookie + "=nosuchcookie"}, 401, body401Invalid, ""},
		}},
		{"chain, in order", fiberauth.Config{Extractor: extractors.Chain(extractors.FromHeader(headless.HeaderSessionToken), extractors.FromCookie(cookie))}, []req{
			{[]string{headless.HeaderSessionToken, bob, "Cookie", cookie + "=" + aliceCookie}, 200, "bob", ""},
			{[]string{"Cookie", cookie + "=" + aliceCookie}, 200, "alice", ""},
			{nil, 401, body401, ""},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := newApp(t, newMiddleware(t, srv, tc.cfg).Handler)
			for _, rq := range tc.reqs {
				r := do(t, app, get(rq.headers...))
				wantStatus(t, r, rq.status, rq.body)
				if got := r.Header.Get("WWW-Authenticate"); got != rq.www {
					t.Errorf("%v: WWW-Authenticate = %q, want %q", rq.headers, got, rq.www)
				}
			}
		})
	}
}

// TestRefusedConfigs checks that NewMiddleware refuses what cannot work,
// saying why under this package's own name, and that New panics with the
// same message, in Fiber's style.
func TestRefusedConfigs(t *testing.T) {
	const url = "http://127.0.0.1:1"
	custom := extractors.FromCustom("mine", func(fiber.Ctx) (string, error) { return "", nil })
	for _, tc := range []struct {
		name string
		cfg  fiberauth.Config
		want string
	}{
		{"query", fiberauth.Config{BaseURL: url, Extractor: extractors.FromQuery("token")}, "query string, which is not supported: a token in a URL or form ends up in logs"},
		{"form", fiberauth.Config{BaseURL: url, Extractor: extractors.FromForm("token")}, "form, which is not supported"},
		{"param", fiberauth.Config{BaseURL: url, Extractor: extractors.FromParam("token")}, "route parameters, which is not supported"},
		{"custom", fiberauth.Config{BaseURL: url, Extractor: custom}, `"mine" is a custom extractor, which is not supported`},
		{"custom in a chain", fiberauth.Config{BaseURL: url, Extractor: extractors.Chain(extractors.FromHeader("X-Session-Token"), custom)}, "custom extractor"},
		{"query in a chain", fiberauth.Config{BaseURL: url, Extractor: extractors.Chain(extractors.FromCookie("sessionid"), extractors.FromQuery("t"))}, "query string"},
		{"empty chain", fiberauth.Config{BaseURL: url, Extractor: extractors.Chain()}, "empty extractors.Chain"},
		{"raw auth header", fiberauth.Config{BaseURL: url, Extractor: extractors.FromAuthHeader("")}, `FromAuthHeader("") reads the raw Authorization header`},
		{"no header name", fiberauth.Config{BaseURL: url, Extractor: extractors.FromHeader(" ")}, "a source has no header or cookie name"},
		{"two cookies", fiberauth.Config{BaseURL: url, Extractor: extractors.Chain(extractors.FromCookie("a"), extractors.FromCookie("b"))}, "allauth reads one session cookie"},
		{"no BaseURL", fiberauth.Config{}, "Config.BaseURL"},
		{"JWT without Bearer", fiberauth.Config{BaseURL: url, JWT: &introspect.JWTConfig{}}, "Config.JWT needs a source reading the Authorization header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := fiberauth.NewMiddleware(tc.cfg)
			if err == nil {
				_ = m.Close()
				t.Fatal("NewMiddleware accepted it")
			}
			if !strings.HasPrefix(err.Error(), "fiberauth/v3: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want one starting with \"fiberauth/v3: \" that says %q", err, tc.want)
			}
			if msg := panicOf(func() { fiberauth.New(tc.cfg) }); msg != err.Error() {
				t.Errorf("New panicked with %q, want NewMiddleware's error", msg)
			}
		})
	}
}

func panicOf(f func()) (msg string) {
	defer func() {
		if p := recover(); p != nil {
			msg, _ = p.(string)
			if msg == "" {
				msg = "a panic that is not a string"
			}
		}
	}()
	f()
	return "no panic"
}

// nopStorage is a Fiber v3 Storage that keeps nothing.
type nopStorage struct{}

func (nopStorage) GetWithContext(context.Context, string) ([]byte, error) { return nil, nil }

func (nopStorage) Get(string) ([]byte, error) { return nil, nil }

func (nopStorage) SetWithContext(context.Context, string, []byte, time.Duration) error { return nil }

func (nopStorage) Set(string, []byte, time.Duration) error { return nil }

func (nopStorage) DeleteWithContext(context.Context, string) error { return nil }

func (nopStorage) Delete(string) error { return nil }

func (nopStorage) ResetWithContext(context.Context) error { return nil }

func (nopStorage) Reset() error { return nil }

func (nopStorage) Close() error { return nil }

// TestEveryFieldConverts sets every field of Config and builds a working
// middleware: the core's fields are copied by the generated core(), and a
// field added later without a value here fails the test.
func TestEveryFieldConverts(t *testing.T) {
	srv := newAllauth(t, allauthtest.WithJWT(allauthtest.JWTConfig{}))
	var succeeded atomic.Int64
	cfg := fiberauth.Config{
		Next:                 func(c fiber.Ctx) bool { return c.Path() == "/skip" },
		SuccessHandler:       func(c fiber.Ctx) error { succeeded.Add(1); return c.Next() },
		ErrorHandler:         fiberauth.DefaultErrorHandler,
		Extractor:            extractors.Chain(extractors.FromHeader(headless.HeaderSessionToken), extractors.FromAuthHeader("Bearer")),
		BaseURL:              srv.URL,
		Mount:                "/_allauth",
		Timeout:              3 * time.Second,
		MaxConcurrentLookups: 8,
		Breaker:              introspect.BreakerConfig{Failures: 3},
		CacheTTL:             time.Minute,
		NegativeTTL:          time.Second,
		MaxEntries:           1000,
		Storage:              nopStorage{},
		Prefix:               "v3test:",
		StorageSecret:        []byte("0123456789abcdef0123456789abcdef"),
		StoreTimeout:         time.Second,
		Recheck:              time.Second,
		StaleIfError:         time.Minute,
		RefreshAhead:         time.Second,
		UserIndex:            true,
		JWT:                  &introspect.JWTConfig{PublicKey: srv.JWTPublicKeyPEM()},
		JWTStateful:          true,
		Logger:               slog.New(slog.DiscardHandler),
		TracerProvider:       noop.NewTracerProvider(),
		Optional:             true,
		ContextKey:           "who",
	}
	v := reflect.ValueOf(cfg)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("Config.%s is not set: set it here, so that its conversion is tested", v.Type().Field(i).Name)
		}
	}
	m := newMiddleware(t, srv, cfg)
	app := newApp(t, m.Optional)
	wantStatus(t, do(t, app, withToken(srv.IssueToken("alice"))), http.StatusOK, "alice")
	access, _ := srv.IssueJWT("bob")
	wantStatus(t, do(t, app, get("Authorization", "Bearer "+access)), http.StatusOK, "bob")
	wantStatus(t, do(t, app, get()), http.StatusOK, anonymous) // Optional
	wantStatus(t, do(t, app, getPath("/skip", headless.HeaderSessionToken, "x")), http.StatusOK, anonymous)
	if succeeded.Load() != 2 {
		t.Errorf("SuccessHandler ran %d times, want 2", succeeded.Load())
	}
}

// TestNextOptionalHandlers checks Next, Optional on one cache with Handler,
// and custom SuccessHandler and ErrorHandler.
func TestNextOptionalHandlers(t *testing.T) {
	srv := newAllauth(t)
	alice := srv.IssueToken("alice")
	var seen error
	m := newMiddleware(t, srv, fiberauth.Config{
		Next:           func(c fiber.Ctx) bool { return c.Path() == "/health" },
		SuccessHandler: func(c fiber.Ctx) error { c.Set("X-Authenticated", "yes"); return c.Next() },
		ErrorHandler: func(c fiber.Ctx, err error) error {
			seen = err
			e := headless.ErrorFrom(err)
			e.Header(c.Set)
			return fiber.NewError(e.Status, e.Message) // to the app's own ErrorHandler
		},
	})
	app := fiber.New()
	t.Cleanup(func() { _ = app.Shutdown() })
	app.Get("/health", m.Handler, whoHandler)
	app.Get("/private", m.Handler, whoHandler)
	app.Get("/public", m.Optional, whoHandler)

	wantStatus(t, do(t, app, getPath("/health")), http.StatusOK, anonymous)
	wantStatus(t, do(t, app, getPath("/public")), http.StatusOK, anonymous)
	r := do(t, app, getPath("/public", headless.HeaderSessionToken, alice))
	wantStatus(t, r, http.StatusOK, "alice")
	if r.Header.Get("X-Authenticated") != "yes" {
		t.Error("SuccessHandler did not run")
	}
	wantStatus(t, do(t, app, getPath("/private", headless.HeaderSessionToken, alice)), http.StatusOK, "alice")
	wantCalls(t, srv, 1) // Handler and Optional share one cache

	r = do(t, app, getPath("/private"))
	if r.Status != http.StatusUnauthorized || r.Body != "No credential was provided." || r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("custom ErrorHandler: got %d %q %v", r.Status, r.Body, r.Header)
	}
	var he *headless.Error
	if !errors.As(seen, &he) || he.Status != http.StatusUnauthorized {
		t.Errorf("ErrorHandler got %v, want a *headless.Error with 401", seen)
	}
	r = do(t, app, getPath("/public", headless.HeaderSessionToken, "nosuchtoken"))
	if r.Status != http.StatusGone {
		t.Errorf("Optional with a bad token: %d, want 410", r.Status)
	}
}

// TestErrorsMatchV2 renders every kind of refusal through both doors'
// DefaultErrorHandler: same status, headers and bytes.
func TestErrorsMatchV2(t *testing.T) {
	errs := []error{
		&headless.Error{Status: 401, Code: headless.CodeNotAuthenticated, Message: "No credential was provided."},
		&headless.Error{Status: 401, Code: headless.CodeNotAuthenticated, Message: "No credential was provided.", Bearer: true},
		&headless.Error{Status: 401, Code: headless.CodeNotAuthenticated, Message: "The credential is not valid.", Bearer: true, InvalidToken: true, Kind: introspect.Bearer},
		&headless.Error{Status: 410, Code: headless.CodeSessionGone, Message: "The session is gone; log in again.", InvalidToken: true},
		&headless.Error{Status: 503, Code: headless.CodeUpstreamUnavailable, Message: "Authentication is unavailable; try again shortly.", RetryAfter: 42 * time.Second},
		errors.New("some other failure, whose text must not show"),
	}
	var which atomic.Int64
	v2 := fiberv2.New(fiberv2.Config{DisableStartupMessage: true})
	v2.Get("/", func(c *fiberv2.Ctx) error { return fiberauthv2.DefaultErrorHandler(c, errs[which.Load()]) })
	v3 := fiber.New()
	v3.Get("/", func(c fiber.Ctx) error { return fiberauth.DefaultErrorHandler(c, errs[which.Load()]) })
	t.Cleanup(func() { _ = v2.Shutdown(); _ = v3.Shutdown() })
	for i := range errs {
		which.Store(int64(i))
		want := doV2(t, v2)
		got := do(t, v3, get())
		if got.Status != want.Status || got.Body != want.Body {
			t.Errorf("%v: v3 %d %q, v2 %d %q", errs[i], got.Status, got.Body, want.Status, want.Body)
		}
		for _, h := range []string{"Content-Type", "Cache-Control", "Retry-After", "WWW-Authenticate"} {
			if got.Header.Get(h) != want.Header.Get(h) {
				t.Errorf("%v: %s = %q, v2 says %q", errs[i], h, got.Header.Get(h), want.Header.Get(h))
			}
		}
	}
}

// doV2 is do for the v2 app.
func doV2(t *testing.T, app *fiberv2.App) result {
	t.Helper()
	resp, err := app.Test(get(), -1)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{Status: resp.StatusCode, Body: string(b), Header: resp.Header}
}

// TestUserLocalsAndContext checks where a handler finds the user: Locals
// under ContextKey, UserFrom, SessionFrom, and UserFromContext with c, a
// context derived from c, and c.Context() (with PassLocalsToContext only).
func TestUserLocalsAndContext(t *testing.T) {
	for _, pass := range []bool{false, true} {
		srv := newAllauth(t)
		m := newMiddleware(t, srv, fiberauth.Config{ContextKey: "who"})
		app := fiber.New(fiber.Config{PassLocalsToContext: pass})
		t.Cleanup(func() { _ = app.Shutdown() })
		type key struct{}
		app.Get("/", m.Handler, func(c fiber.Ctx) error {
			u := fiberauth.UserFrom(c)
			local, _ := c.Locals("who").(*introspect.User)
			derived, cancel := context.WithTimeout(context.WithValue(c, key{}, 1), time.Minute)
			defer cancel()
			switch {
			case u == nil || u.Username != "alice" || local != u || &fiberauth.SessionFrom(c).User != u:
				return c.SendString("UserFrom, Locals and SessionFrom disagree")
			case fiberauth.UserFromContext(c) != u:
				return c.SendString("UserFromContext(c) is not the user")
			case fiberauth.UserFromContext(derived) != u:
				return c.SendString("UserFromContext(derived from c) is not the user")
			case pass && fiberauth.UserFromContext(c.Context()) != u:
				return c.SendString("UserFromContext(c.Context()) is not the user with PassLocalsToContext")
			case !pass && fiberauth.UserFromContext(c.Context()) != nil:
				return c.SendString("UserFromContext(c.Context()) has a user without PassLocalsToContext")
			}
			return c.SendString("ok")
		})
		app.Get("/anon", m.Optional, func(c fiber.Ctx) error {
			if fiberauth.UserFrom(c) != nil || fiberauth.SessionFrom(c) != nil || c.Locals("who") != nil ||
				fiberauth.UserFromContext(c) != nil || fiberauth.UserFromContext(c.Context()) != nil {
				return c.SendString("a user for an anonymous request")
			}
			return c.SendString("ok")
		})
		wantStatus(t, do(t, app, withToken(srv.IssueToken("alice"))), http.StatusOK, "ok")
		wantStatus(t, do(t, app, getPath("/anon")), http.StatusOK, "ok")
	}
	if fiberauth.UserFromContext(context.Background()) != nil {
		t.Error("a user in context.Background()")
	}
	s := &introspect.Session{User: introspect.User{ID: "7"}}
	if u := fiberauth.UserFromContext(headless.NewContext(context.Background(), s)); u != &s.User {
		t.Error("UserFromContext does not read headless.NewContext's session")
	}
}

// TestLookupContextIsCtxContext checks that the lookup at allauth runs under
// c.Context() (what a tracer sets with c.SetContext), not under c, which
// Fiber recycles once the handler returns.
func TestLookupContextIsCtxContext(t *testing.T) {
	srv := newAllauth(t)
	m := newMiddleware(t, srv, fiberauth.Config{})
	var traced atomic.Int64
	app := fiber.New()
	t.Cleanup(func() { _ = app.Shutdown() })
	app.Use(func(c fiber.Ctx) error {
		c.SetContext(httptrace.WithClientTrace(c.Context(), &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { traced.Add(1) },
		}))
		return c.Next()
	})
	app.Use(m.Handler)
	app.Get("/", whoHandler)
	wantStatus(t, do(t, app, withToken(srv.IssueToken("alice"))), http.StatusOK, "alice")
	if traced.Load() != 1 {
		t.Errorf("the lookup's request was traced %d times, want 1: it does not run under c.Context()", traced.Load())
	}
}

// TestEvictAndReady mounts the webhook and the readiness check.
func TestEvictAndReady(t *testing.T) {
	const secret = "allauthgo-test-secret-0123456789abcdef"
	srv := newAllauth(t)
	m := newMiddleware(t, srv, fiberauth.Config{})
	other := newMiddleware(t, srv, fiberauth.Config{})
	app := fiber.New()
	t.Cleanup(func() { _ = app.Shutdown() })
	webhook, err := fiberauth.EvictHandler(headless.EvictConfig{Secret: []byte(secret)}, m, other)
	if err != nil {
		t.Fatal(err)
	}
	app.Post("/_allauthgo/evict", webhook)
	app.Get("/readyz", m.Ready())
	app.Use(m.Handler)
	app.Get("/*", whoHandler)

	alice := srv.IssueToken("alice")
	wantStatus(t, do(t, app, withToken(alice)), http.StatusOK, "alice")
	r := do(t, app, getPath("/readyz"))
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Body, `{"status": "up", "checked": "recent"`) || r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("readyz: %d %q", r.Status, r.Body)
	}

	body := []byte(`{"nonce": "n1", "session_keys": ["` + alice + `"]}`)
	evict := func(sig string) result {
		req := httptest.NewRequest(http.MethodPost, "/_allauthgo/evict", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		ts := time.Now().Unix()
		req.Header.Set(headless.HeaderEvictTimestamp, strconv.FormatInt(ts, 10))
		if sig == "" {
			sig = headless.SignEvict([]byte(secret), ts, body)
		}
		req.Header.Set(headless.HeaderEvictSignature, sig)
		return do(t, app, req)
	}
	r = evict("v1=00")
	if r.Status != http.StatusUnauthorized || !strings.Contains(r.Body, "bad_signature") {
		t.Errorf("mis-signed eviction: %d %q", r.Status, r.Body)
	}
	r = evict("")
	if r.Status != http.StatusOK || r.Body != `{"status": 200, "data": {"evicted": 1}}` {
		t.Errorf("eviction: %d %q", r.Status, r.Body)
	}
	wantStatus(t, do(t, app, withToken(alice)), http.StatusOK, "alice")
	wantCalls(t, srv, 2) // evicted: asked again

	if h, err := fiberauth.EvictHandler(headless.EvictConfig{Secret: []byte("short")}, m); h != nil || err == nil || !strings.HasPrefix(err.Error(), "fiberauth/v3: EvictConfig.Secret") {
		t.Errorf("a short secret: %v", err)
	}
}
