package fiberauth_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// readyBody is the readiness check's JSON.
type readyBody struct {
	Status  string   `json:"status"`
	Checked string   `json:"checked"`
	Age     *float64 `json:"age_seconds"`
	Reason  string   `json:"reason"`
}

// readyApp mounts m.Ready(cfg) at /readyz, ahead of the middleware, which
// guards every other path.
func readyApp(t *testing.T, m *fiberauth.Middleware, cfg headless.ReadyConfig) *fiber.App {
	t.Helper()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/readyz", m.Ready(cfg))
	app.Use(m.Handler)
	app.Get("/*", whoHandler)
	t.Cleanup(func() { _ = app.Shutdown() })
	return app
}

// ready asks /readyz and checks the answer's shape.
func ready(t *testing.T, app *fiber.App, status int, checked string) readyBody {
	t.Helper()
	r := do(t, app, getPath("/readyz"))
	var b readyBody
	if err := json.Unmarshal([]byte(r.Body), &b); err != nil {
		t.Fatalf("body %q is not JSON: %v", r.Body, err)
	}
	word := map[int]string{http.StatusOK: "up", http.StatusServiceUnavailable: "down"}[status]
	if r.Status != status || b.Status != word || b.Checked != checked || b.Age == nil || *b.Age < 0 {
		t.Fatalf("readyz = %d %s, want %d with status %q, checked %q", r.Status, r.Body, status, word, checked)
	}
	if (status == http.StatusOK) != (b.Reason == "") {
		t.Errorf("reason %q on a %d", b.Reason, status)
	}
	if r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("Content-Type") != fiber.MIMEApplicationJSON {
		t.Errorf("headers %v", r.Header)
	}
	return b
}

// A recent good lookup is enough: the check asks allauth nothing.
func Test_Ready_RecentLookup(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := newMiddleware(t, srv, fiberauth.Config{})
	app := readyApp(t, m, headless.ReadyConfig{})
	wantUser(t, do(t, app, withToken(srv.IssueToken("alice"))), "alice")
	for range 5 {
		ready(t, app, http.StatusOK, "recent")
	}
	// allauth's 410 is one of its own answers too.
	wantError(t, do(t, app, withToken("abcdefghijklmnopqrstuvwxyz012345")), http.StatusGone, headless.CodeSessionGone)
	ready(t, app, http.StatusOK, "recent")
	wantCalls(t, srv, 2)
}

// With nothing recent known, the check probes allauth (a GET without a
// credential), and a good probe stands for Window like a lookup.
func Test_Ready_ProbeWhenNothingKnown(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := newMiddleware(t, srv, fiberauth.Config{})
	app := readyApp(t, m, headless.ReadyConfig{Window: 300 * time.Millisecond, ProbeInterval: time.Hour})
	ready(t, app, http.StatusOK, "probe")
	wantCalls(t, srv, 1)
	for range 5 {
		ready(t, app, http.StatusOK, "recent")
	}
	wantCalls(t, srv, 1)
	if s := m.Metrics().Cache; s.Misses != 0 || s.Fetches != 0 {
		t.Errorf("the probe went through the cache: %+v", s)
	}
	if m.Metrics().LastAnswer.IsZero() {
		t.Error("the probe's answer is not recorded")
	}

	// Past Window the check falls back on the last probe, whose result
	// stands for ProbeInterval (an hour here): still no request.
	time.Sleep(350 * time.Millisecond)
	ready(t, app, http.StatusOK, "probe")
	wantCalls(t, srv, 1)
}

// allauth down: 503 with a reason that names neither an address nor a
// token, and at most one probe per ProbeInterval however often it is asked.
func Test_Ready_DownRateLimited(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	srv.SetFault(allauthtest.Fault{Status: http.StatusBadGateway})
	m := newMiddleware(t, srv, fiberauth.Config{})
	app := readyApp(t, m, headless.ReadyConfig{ProbeInterval: 200 * time.Millisecond})
	for range 20 {
		b := ready(t, app, http.StatusServiceUnavailable, "probe")
		if !strings.Contains(b.Reason, "502") || strings.Contains(b.Reason, "127.0.0.1") {
			t.Fatalf("reason %q", b.Reason)
		}
	}
	wantCalls(t, srv, 1)

	time.Sleep(250 * time.Millisecond)
	srv.SetFault(allauthtest.Fault{Drop: true})
	for range 5 {
		if b := ready(t, app, http.StatusServiceUnavailable, "probe"); b.Reason != "no answer" {
			t.Errorf("reason %q for a dropped connection", b.Reason)
		}
	}
	// One probe; Go's transport may resend a GET once on a fresh connection
	// when a reused one closes without an answer.
	if calls := srv.SessionCalls(); calls != 2 && calls != 3 {
		t.Fatalf("allauth session calls = %d, want 2 or 3", calls)
	}

	time.Sleep(250 * time.Millisecond)
	srv.SetFault(allauthtest.Fault{})
	srv.ResetCounters()
	ready(t, app, http.StatusOK, "probe")
	ready(t, app, http.StatusOK, "recent")
	wantCalls(t, srv, 1)
}

// When the latest lookup failed, a good answer before it does not count:
// the check probes, and reports what allauth answers now.
func Test_Ready_LatestLookupFailed(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := newMiddleware(t, srv, fiberauth.Config{})
	app := readyApp(t, m, headless.ReadyConfig{ProbeInterval: time.Hour})
	wantUser(t, do(t, app, withToken(srv.IssueToken("alice"))), "alice")
	srv.SetFault(allauthtest.Fault{Status: http.StatusServiceUnavailable})
	wantError(t, do(t, app, withToken(srv.IssueToken("bob"))), http.StatusServiceUnavailable, headless.CodeUpstreamUnavailable)
	ready(t, app, http.StatusServiceUnavailable, "probe")
	ready(t, app, http.StatusServiceUnavailable, "probe") // the probe's result stands
	wantCalls(t, srv, 3)

	// A good lookup after that settles it without a probe.
	srv.SetFault(allauthtest.Fault{})
	wantUser(t, do(t, app, withToken(srv.IssueToken("bob"))), "bob")
	ready(t, app, http.StatusOK, "recent")
	wantCalls(t, srv, 4)
}

// Many checks at once while allauth is slow: one probe in flight, and every
// check gets its answer.
func Test_Ready_OneProbeInFlight(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	srv.SetFault(allauthtest.Fault{Delay: 150 * time.Millisecond})
	m := newMiddleware(t, srv, fiberauth.Config{})
	app := readyApp(t, m, headless.ReadyConfig{})
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := do(t, app, getPath("/readyz"))
			if r.Status != http.StatusOK || !strings.Contains(r.Body, `"checked": "probe"`) {
				t.Errorf("readyz = %d %s", r.Status, r.Body)
			}
		}()
	}
	wg.Wait()
	wantCalls(t, srv, 1)
}

// A probe is bounded by Timeout.
func Test_Ready_Timeout(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	srv.SetFault(allauthtest.Fault{Delay: 5 * time.Second})
	m := newMiddleware(t, srv, fiberauth.Config{})
	app := readyApp(t, m, headless.ReadyConfig{Timeout: 100 * time.Millisecond})
	start := time.Now()
	b := ready(t, app, http.StatusServiceUnavailable, "probe")
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the check took %v with a 100ms Timeout", took)
	}
	if b.Reason != "no answer in time" {
		t.Errorf("reason %q", b.Reason)
	}
}

// A cookie-only middleware probes the browser endpoint (a project may
// serve only allauth's browser client).
func Test_Ready_CookieEndpoint(t *testing.T) {
	t.Parallel()
	paths := make(chan string, 4)
	srv := allauthtest.NewServer()
	t.Cleanup(srv.Close)
	front := newRecordingProxy(t, srv, paths)
	m := newMiddleware(t, srv, fiberauth.Config{BaseURL: front, KeyLookup: "cookie:sessionid"})
	app := readyApp(t, m, headless.ReadyConfig{})
	ready(t, app, http.StatusOK, "probe")
	if p := <-paths; p != srv.Mount()+"/browser/v1/auth/session" {
		t.Errorf("probed %s, want the browser endpoint", p)
	}
}

// newRecordingProxy serves srv's handler on its own loopback server,
// sending each request's path to paths first. It is closed when the test
// ends.
func newRecordingProxy(t *testing.T, srv *allauthtest.Server, paths chan<- string) string {
	t.Helper()
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case paths <- r.URL.Path:
		default:
		}
		srv.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	return front.URL
}
