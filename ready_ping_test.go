package headless_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/internal/allauth"
	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// handClock is a clock the test moves by hand.
type handClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *handClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// readyz asks h and returns the status and the verdict's "checked" and
// "reason".
func readyz(t *testing.T, h http.Handler) (status int, checked, reason string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", http.NoBody))
	var b struct {
		Checked string `json:"checked"`
		Reason  string `json:"reason"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatalf("readyz body %q: %v", rec.Body, err)
	}
	return rec.Code, b.Checked, b.Reason
}

// Readiness says whether allauth answers its ping, whatever the breaker's
// state: the breaker may have opened on lookups that failed while allauth
// answers now (and, before, on one client's failing tokens). While the
// breaker is still open, the check pings allauth and says up, rather than
// pulling the instance out of its load balancer.
func TestReadyFollowsThePingNotTheBreaker(t *testing.T) {
	t.Parallel()
	srv := allauthtest.NewServer()
	t.Cleanup(srv.Close)
	srv.AddUser(allauthtest.User{Username: "alice"})
	clock := &handClock{t: time.Unix(1_800_000_000, 0)} // the cool-down never ends
	t.Cleanup(allauth.SetTestClock(srv.URL, clock.Now))
	a, err := headless.New(headless.Config{
		BaseURL: srv.URL,
		Breaker: introspect.BreakerConfig{Failures: 2, CoolDown: time.Hour},
		Logger:  quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, a)
	ready := a.Ready(headless.ReadyConfig{ProbeInterval: time.Nanosecond}) // every check probes

	srv.SetFault(allauthtest.Fault{Status: http.StatusBadGateway})
	for range 3 { // two failures, then a lookup whose ping fails too
		if got := whoIs(a, srv.IssueToken("alice")); got != "503" {
			t.Fatalf("with allauth failing: %s, want 503", got)
		}
	}
	if p := allauth.Of(a).Protection(); p.Breaker != introspect.BreakerOpen {
		t.Fatalf("breaker %s, want open: %+v", p.Breaker, p)
	}
	if status, checked, reason := readyz(t, ready); status != http.StatusServiceUnavailable || checked != "probe" {
		t.Errorf("allauth down: %d %s %q, want 503 from a probe", status, checked, reason)
	}

	srv.SetFault(allauthtest.Fault{})
	if status, checked, reason := readyz(t, ready); status != http.StatusOK || checked != "probe" {
		t.Errorf("allauth back, the breaker still open: %d %s %q, want 200 from a probe", status, checked, reason)
	}
	if p := allauth.Of(a).Protection(); p.Breaker != introspect.BreakerOpen {
		t.Fatalf("breaker %s, want still open", p.Breaker)
	}
}
