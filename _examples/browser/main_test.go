package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/exampletest"

	"go.uber.org/goleak"
)

// fasthttpGoroutines are fasthttp's, not the example's: one refreshes the
// Date header for the whole process once a server has answered (it never
// stops), the other is a stopped server's worker-pool cleaner, which sleeps
// up to 10 s (MaxIdleWorkerDuration) before it notices the stop.
var fasthttpGoroutines = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
}

const demoUser = `{"id":"1","display":"demo","email":"demo@example.com","username":"demo","has_usable_password":true}`

// TestBrowserFlow does what the page's script does, with a cookie jar for
// the browser: config (csrftoken) -> login with X-CSRFToken (sessionid) ->
// /api/me -> logout -> /api/me. It also checks that the proxy passes
// allauth's CSRF check through and that a logout is evicted from the cache.
func TestBrowserFlow(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr exampletest.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, func(k string) string { return map[string]string{"ADDR": "127.0.0.1:0"}[k] }, &stdout, &stderr)
	}()
	base := exampletest.WaitFor(t, &stdout, regexp.MustCompile(`Open (http://\S+) and log in \(allauth on http://\S+: stand-in, user demo / demo-password\)`), done)[1]

	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	b := &browser{t: t, base: base, client: &http.Client{Transport: tr, Jar: jar, Timeout: 5 * time.Second}}

	// The page.
	status, header, body := b.do(http.MethodGet, "/", "", nil)
	if status != http.StatusOK || header.Get("Content-Type") != "text/html; charset=utf-8" ||
		!strings.Contains(body, "fetch('/_allauth/browser/v1/config')") {
		t.Fatalf("GET / = %d %q, want the page", status, header.Get("Content-Type"))
	}
	b.expect(http.MethodGet, "/api/me", "", nil, http.StatusUnauthorized, `"code": "not_authenticated"`)

	// config sets csrftoken.
	b.expect(http.MethodGet, "/_allauth/browser/v1/config", "", nil, http.StatusOK, `"status": 200`)
	csrf := b.cookie("csrftoken")
	if csrf == "" {
		t.Fatal("no csrftoken cookie after GET /_allauth/browser/v1/config")
	}

	// Login: without the CSRF header allauth refuses, through the proxy too.
	login := `{"username": "demo", "password": "demo-password"}`
	b.expect(http.MethodPost, "/_allauth/browser/v1/auth/login", login, nil, http.StatusForbidden, "CSRF")
	b.expect(http.MethodPost, "/_allauth/browser/v1/auth/login", login, b.csrfHeader(), http.StatusOK, `"username": "demo"`)
	session := b.cookie("sessionid")
	if session == "" {
		t.Fatal("no sessionid cookie after the login")
	}

	// The API reads the cookie.
	b.expect(http.MethodGet, "/api/me", "", nil, http.StatusOK, demoUser)

	// Logout (allauth answers 401) clears the cookie...
	b.expect(http.MethodDelete, "/_allauth/browser/v1/auth/session", "", b.csrfHeader(), http.StatusUnauthorized, `"is_authenticated": false`)
	if c := b.cookie("sessionid"); c != "" {
		t.Errorf("sessionid is still set after the logout")
	}
	b.expect(http.MethodGet, "/api/me", "", nil, http.StatusUnauthorized, "No credential was provided.")
	// ...and the old value no longer works at once: the proxy evicted it
	// (the cache would otherwise serve it for CacheTTL).
	b.expect(http.MethodGet, "/api/me", "", http.Header{"Cookie": {"sessionid=" + session}}, http.StatusUnauthorized, "The credential is not valid.")

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run = %v, want nil after the context ended", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10s of the context ending")
	}
	for _, secret := range []string{session, csrf} {
		if strings.Contains(stderr.String(), secret) {
			t.Errorf("a log line holds a cookie value:\n%s", stderr.String())
		}
	}
	tr.CloseIdleConnections()
	goleak.VerifyNone(t, append(fasthttpGoroutines, ignore)...)
}

// TestLogoutEvictsTheLastCookie: a browser may send two sessionid cookies
// (one for a parent domain, say). Django, allauth and the middleware use the
// last one, so the logout ends that session: the proxy must evict that one
// too, not the first (Fiber's c.Cookies), or the logged-out cookie keeps
// working from the cache for CacheTTL.
func TestLogoutEvictsTheLastCookie(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr exampletest.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, func(k string) string { return map[string]string{"ADDR": "127.0.0.1:0"}[k] }, &stdout, &stderr)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run = %v", err)
		}
	}()
	base := exampletest.WaitFor(t, &stdout, regexp.MustCompile(`Open (http://\S+) and log in`), done)[1]

	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	b := &browser{t: t, base: base, client: &http.Client{Transport: tr, Jar: jar, Timeout: 5 * time.Second}}
	b.expect(http.MethodGet, "/_allauth/browser/v1/config", "", nil, http.StatusOK, `"status": 200`)
	csrf := b.cookie("csrftoken")
	b.expect(http.MethodPost, "/_allauth/browser/v1/auth/login", `{"username": "demo", "password": "demo-password"}`, b.csrfHeader(), http.StatusOK, `"username": "demo"`)
	session := b.cookie("sessionid")
	if session == "" || csrf == "" {
		t.Fatal("no sessionid or csrftoken cookie after the login")
	}
	const decoy = "decoydecoydecoydecoydecoydecoy00"

	// From here on the browser sends its cookies by hand: two sessionid.
	b.client.Jar = nil
	two := http.Header{"Cookie": {"sessionid=" + decoy + "; csrftoken=" + csrf + "; sessionid=" + session}}
	b.expect(http.MethodGet, "/api/me", "", two, http.StatusOK, demoUser) // the last one: now cached
	logout := http.Header{"Cookie": two["Cookie"], "X-Csrftoken": {csrf}}
	b.expect(http.MethodDelete, "/_allauth/browser/v1/auth/session", "", logout, http.StatusUnauthorized, `"is_authenticated": false`)
	// The session allauth ended is the one evicted: refused at once.
	b.expect(http.MethodGet, "/api/me", "", http.Header{"Cookie": {"sessionid=" + session}}, http.StatusUnauthorized, "The credential is not valid.")
	if strings.Contains(stderr.String(), session) {
		t.Errorf("a log line holds a cookie value:\n%s", stderr.String())
	}
}

func TestBadEnv(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{"ADDR", "3000", `ADDR="3000": want host:port`},
		{"ALLAUTH_URL", "localhost:8000", `ALLAUTH_URL="localhost:8000": want the Django origin`},
	} {
		var stdout, stderr exampletest.SyncBuffer
		err := run(context.Background(), func(k string) string { return map[string]string{tc.name: tc.value}[k] }, &stdout, &stderr)
		var bad *envError
		if !errors.As(err, &bad) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%q: run = %v, want an *envError saying %q", tc.name, tc.value, err, tc.want)
		}
	}
}

// browser is an HTTP client with a cookie jar, as the page's fetch calls.
type browser struct {
	t      *testing.T
	base   string
	client *http.Client
}

func (b *browser) do(method, path, body string, header http.Header) (status int, respHeader http.Header, respBody string) {
	b.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, b.base+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, string(got)
}

func (b *browser) expect(method, path, body string, header http.Header, status int, contains string) {
	b.t.Helper()
	got, _, body := b.do(method, path, body, header)
	if got != status || !strings.Contains(body, contains) {
		b.t.Fatalf("%s %s = %d %s\nwant %d with %s", method, path, got, body, status, contains)
	}
}

func (b *browser) cookie(name string) string {
	u, err := url.Parse(b.base)
	if err != nil {
		b.t.Fatal(err)
	}
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// csrfHeader is what the page sends: X-CSRFToken from the csrftoken cookie.
func (b *browser) csrfHeader() http.Header {
	return http.Header{"X-Csrftoken": {b.cookie("csrftoken")}}
}
