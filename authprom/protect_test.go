package authprom_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// The overload protections are exported: lookups in flight and waiting,
// refusals by reason, the breaker's state and how often it opened.
func TestCollectorProtection(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fiberauth.Config{
		MaxConcurrentLookups: 8,
		Breaker:              introspect.BreakerConfig{Failures: 2, CoolDown: time.Hour},
	})
	gauge := func(name string) float64 { return sample(t, gather(t, f.reg), name, "", "").GetGauge().GetValue() }
	if g := gauge("allauthgo_upstream_breaker_state"); g != 0 {
		t.Fatalf("breaker_state = %v before any failure, want 0 (closed)", g)
	}

	f.srv.SetFault(allauthtest.Fault{Status: http.StatusBadGateway})
	for range 2 { // two failures trip it
		f.token(t, f.srv.IssueToken("alice"), http.StatusServiceUnavailable)
	}
	// The next lookup makes the breaker ping allauth, which fails too: it
	// opens, and that lookup is refused.
	f.token(t, f.srv.IssueToken("alice"), http.StatusServiceUnavailable)
	calls := f.srv.SessionCalls()
	for range 3 { // refused at once, without a request
		f.token(t, f.srv.IssueToken("alice"), http.StatusServiceUnavailable)
	}
	if got := f.srv.SessionCalls(); got != calls {
		t.Errorf("allauth saw %d lookups while the breaker was open", got-calls)
	}

	mfs := gather(t, f.reg)
	for name, want := range map[string]float64{
		"allauthgo_upstream_breaker_state": 2, // open
		"allauthgo_upstream_in_flight":     0,
		"allauthgo_upstream_waiting":       0,
	} {
		if got := sample(t, mfs, name, "", "").GetGauge().GetValue(); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := counter(t, mfs, "allauthgo_upstream_breaker_opens_total", "", ""); got != 1 {
		t.Errorf("breaker_opens_total = %v, want 1", got)
	}
	if got := counter(t, mfs, "allauthgo_upstream_rejected_total", "reason", "breaker_open"); got != 4 {
		t.Errorf("rejected_total{breaker_open} = %v, want 4", got)
	}
	if got := counter(t, mfs, "allauthgo_upstream_rejected_total", "reason", "no_slot"); got != 0 {
		t.Errorf("rejected_total{no_slot} = %v, want 0", got)
	}
	// Refusals made no request: they are not upstream errors.
	if got := counter(t, mfs, "allauthgo_upstream_errors_total", "", ""); got != 2 {
		t.Errorf("upstream_errors_total = %v, want 2", got)
	}
}
