package headless

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allauthgo/headless/introspect/allauthtest"
)

// The readiness check (Authenticator.Ready) as any router mounts it.

// readyBody is the readiness check's JSON.
type readyBody struct {
	Status  string   `json:"status"`
	Checked string   `json:"checked"`
	Age     *float64 `json:"age_seconds"`
	Reason  string   `json:"reason"`
}

// askReady asks h once and returns the status and body.
func askReady(t *testing.T, h http.Handler) (int, readyBody, http.Header) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", http.NoBody))
	var b readyBody
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatalf("body %q is not JSON: %v", rec.Body, err)
	}
	return rec.Code, b, rec.Header()
}

// ready asks h and checks the answer's shape.
func ready(t *testing.T, h http.Handler, status int, checked string) readyBody {
	t.Helper()
	code, b, hdr := askReady(t, h)
	word := map[int]string{http.StatusOK: "up", http.StatusServiceUnavailable: "down"}[status]
	if code != status || b.Status != word || b.Checked != checked || b.Age == nil || *b.Age < 0 {
		t.Fatalf("readyz = %d %+v, want %d with status %q, checked %q", code, b, status, word, checked)
	}
	if (status == http.StatusOK) != (b.Reason == "") {
		t.Errorf("reason %q on a %d", b.Reason, status)
	}
	if hdr.Get("Cache-Control") != "no-store" || hdr.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", hdr)
	}
	return b
}

// A recent good lookup is enough: the check asks allauth nothing.
func TestReady_RecentLookup(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{})
	h := a.Ready()
	wantUser(t, auth(a, withToken(srv.IssueToken("alice"))), "alice")
	for range 5 {
		ready(t, h, http.StatusOK, "recent")
	}
	// allauth's 410 is one of its own answers too.
	wantError(t, auth(a, withToken("abcdefghijklmnopqrstuvwxyz012345")), http.StatusGone, CodeSessionGone)
	ready(t, h, http.StatusOK, "recent")
	wantCalls(t, srv, 2)
}

// With nothing recent known, the check probes allauth (a GET without a
// credential), and a good probe stands for Window like a lookup; past
// Window, the last probe stands for ProbeInterval.
func TestReady_ProbeWhenNothingKnown(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{})
	h := a.Ready(ReadyConfig{Window: 300 * time.Millisecond, ProbeInterval: time.Hour})
	ready(t, h, http.StatusOK, "probe")
	wantCalls(t, srv, 1)
	ready(t, h, http.StatusOK, "recent")
	wantCalls(t, srv, 1)
	if s := a.Metrics().Cache; s.Misses != 0 || s.Fetches != 0 {
		t.Errorf("the probe went through the cache: %+v", s)
	}
	if a.Metrics().LastAnswer.IsZero() {
		t.Error("the probe's answer is not recorded")
	}
	// Past Window (readiness reads the wall clock) the check falls back on
	// the last probe, whose result stands for an hour: still no request.
	waitUntil(t, "Window to pass", func() bool {
		_, b, _ := askReady(t, h)
		return b.Checked == "probe"
	})
	ready(t, h, http.StatusOK, "probe")
	wantCalls(t, srv, 1)
}

// allauth down: 503 with a reason that names neither an address nor a
// token, and at most one probe per ProbeInterval however often it is asked.
func TestReady_DownRateLimited(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{})
	srv.SetFault(allauthtest.Fault{Status: http.StatusBadGateway})
	h := a.Ready(ReadyConfig{ProbeInterval: 200 * time.Millisecond})
	for range 20 {
		b := ready(t, h, http.StatusServiceUnavailable, "probe")
		if !strings.Contains(b.Reason, "502") || strings.Contains(b.Reason, "127.0.0.1") {
			t.Fatalf("reason %q", b.Reason)
		}
	}
	wantCalls(t, srv, 1)

	// The next probe, once ProbeInterval (wall clock) has passed, sees the
	// new fault; until then the last result stands.
	srv.SetFault(allauthtest.Fault{Drop: true})
	waitUntil(t, "the next probe", func() bool {
		_, b, _ := askReady(t, h)
		return b.Reason == "no answer"
	})
	for range 5 {
		if b := ready(t, h, http.StatusServiceUnavailable, "probe"); b.Reason != "no answer" {
			t.Errorf("reason %q for a dropped connection", b.Reason)
		}
	}
	// One probe; Go's transport may resend a GET once on a fresh connection
	// when a reused one closes without an answer.
	if calls := srv.SessionCalls(); calls != 2 && calls != 3 {
		t.Fatalf("allauth session calls = %d, want 2 or 3", calls)
	}

	srv.SetFault(allauthtest.Fault{})
	waitUntil(t, "a good probe", func() bool {
		code, _, _ := askReady(t, h)
		return code == http.StatusOK
	})
	srv.ResetCounters()
	ready(t, h, http.StatusOK, "recent")
	wantCalls(t, srv, 0)
}

// When the latest lookup failed, a good answer before it does not count:
// the check probes, and reports what allauth answers now.
func TestReady_LatestLookupFailed(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{})
	h := a.Ready(ReadyConfig{ProbeInterval: time.Hour})
	wantUser(t, auth(a, withToken(srv.IssueToken("alice"))), "alice")
	srv.SetFault(allauthtest.Fault{Status: http.StatusServiceUnavailable})
	wantError(t, auth(a, withToken(srv.IssueToken("bob"))), http.StatusServiceUnavailable, CodeUpstreamUnavailable)
	ready(t, h, http.StatusServiceUnavailable, "probe")
	ready(t, h, http.StatusServiceUnavailable, "probe") // the probe's result stands
	wantCalls(t, srv, 3)

	// A good lookup after that settles it without a probe.
	srv.SetFault(allauthtest.Fault{})
	wantUser(t, auth(a, withToken(srv.IssueToken("bob"))), "bob")
	ready(t, h, http.StatusOK, "recent")
	wantCalls(t, srv, 4)
}

// Many checks at once while allauth is slow: one probe in flight, and every
// check gets its answer.
func TestReady_OneProbeInFlight(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{})
	srv.SetFault(allauthtest.Fault{Delay: 150 * time.Millisecond})
	h := a.Ready()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			code, b, _ := askReady(t, h)
			if code != http.StatusOK || b.Checked != "probe" {
				t.Errorf("readyz = %d %+v", code, b)
			}
		})
	}
	wg.Wait()
	wantCalls(t, srv, 1)
}

// A probe is bounded by Timeout.
func TestReady_Timeout(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{})
	srv.SetFault(allauthtest.Fault{Delay: 5 * time.Second})
	h := a.Ready(ReadyConfig{Timeout: 100 * time.Millisecond})
	start := time.Now()
	b := ready(t, h, http.StatusServiceUnavailable, "probe")
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the check took %v with a 100ms Timeout", took)
	}
	if b.Reason != "no answer in time" {
		t.Errorf("reason %q", b.Reason)
	}
}

// A cookie-only Authenticator probes the browser endpoint (a project may
// serve only allauth's browser client).
func TestReady_CookieEndpoint(t *testing.T) {
	t.Parallel()
	paths := make(chan string, 4)
	srv := allauthtest.NewServer()
	t.Cleanup(srv.Close)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case paths <- r.URL.Path:
		default:
		}
		srv.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	a := newCore(t, srv, Config{BaseURL: front.URL, Sources: []Source{FromCookie("sessionid")}})
	t.Cleanup(a.client.CloseIdleConnections)
	ready(t, a.Ready(), http.StatusOK, "probe")
	if p := <-paths; p != srv.Mount()+"/browser/v1/auth/session" {
		t.Errorf("probed %s, want the browser endpoint", p)
	}
}
