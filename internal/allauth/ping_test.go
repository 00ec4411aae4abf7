package allauth_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/allauth"

	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// Ping against the stand-in: allauth's JSON 401 for no credential is "up",
// on both endpoints; it costs one session-endpoint call and no session.
func TestPingStandIn(t *testing.T) {
	t.Parallel()
	srv, c := newStandIn(t, allauth.Config{})
	for _, k := range []introspect.Kind{introspect.SessionToken, introspect.Bearer, introspect.Cookie} {
		if err := c.Ping(context.Background(), k); err != nil {
			t.Errorf("Ping(%v) = %v, want nil", k, err)
		}
	}
	if got := srv.SessionCalls(); got != 3 {
		t.Errorf("allauth saw %d session calls, want 3", got)
	}

	srv.SetFault(allauthtest.Fault{Status: http.StatusBadGateway, RetryAfter: "7"})
	err := c.Ping(context.Background(), introspect.SessionToken)
	up := upstreamOf(t, err)
	if up.Status != http.StatusBadGateway || up.RetryAfter != 7*time.Second {
		t.Errorf("Ping on a 502 = %+v, want status 502 and Retry-After 7s", up)
	}

	srv.SetFault(allauthtest.Fault{Drop: true})
	if up := upstreamOf(t, c.Ping(context.Background(), introspect.SessionToken)); up.Status != 0 {
		t.Errorf("Ping on a dropped connection: status %d, want 0", up.Status)
	}
}

// Ping sends no credential and nothing but allauth's JSON 401 is "up".
func TestPingAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		up          bool
	}{
		{"allauth 401", 401, "application/json", rec401, true},
		{"allauth 401 pending", 401, "application/json", rec401Pending, true},
		{"401 not JSON", 401, "text/html", "<html>Unauthorized</html>", false},
		{"401 with another body status", 401, "application/json", `{"status": 403}`, false},
		{"410", 410, "application/json", rec410, false},
		{"200 with a session", 200, "application/json", recAlice200, false},
		{"429", 429, "application/json", rec429, false},
		{"502", 502, "text/html", "bad gateway", false},
		{"404 (client disabled)", 404, "text/html", recDjango404, false},
		{"302 to a login page", 302, "text/html", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, mock := newMockClient(t, allauth.Config{})
			mock.RegisterResponder(http.MethodGet, testAppURL, func(req *http.Request) (*http.Response, error) {
				for _, h := range []string{"X-Session-Token", "Authorization", "Cookie"} {
					if v := req.Header.Get(h); v != "" {
						t.Errorf("Ping sent %s: %q", h, v)
					}
				}
				return reply(tt.status, tt.contentType, tt.body)(req)
			})
			err := c.Ping(context.Background(), introspect.SessionToken)
			if tt.up {
				if err != nil {
					t.Fatalf("Ping = %v, want nil", err)
				}
				return
			}
			up := upstreamOf(t, err)
			if up.Status != tt.status {
				t.Errorf("UpstreamError.Status = %d, want %d", up.Status, tt.status)
			}
			if mock.GetTotalCallCount() != 1 {
				t.Errorf("%d requests, want 1", mock.GetTotalCallCount())
			}
		})
	}
}

// The cookie kind pings the browser endpoint.
func TestPingBrowserEndpoint(t *testing.T) {
	t.Parallel()
	c, mock := newMockClient(t, allauth.Config{})
	mock.RegisterResponder(http.MethodGet, testBrowserURL, reply(401, "application/json", rec401))
	if err := c.Ping(context.Background(), introspect.Cookie); err != nil {
		t.Fatalf("Ping(Cookie) = %v", err)
	}
	if n := mock.GetCallCountInfo()["GET "+testBrowserURL]; n != 1 {
		t.Errorf("browser endpoint called %d times, want 1", n)
	}
}

// Ping is bounded by the client's Timeout and by ctx, and an unknown kind
// fails without a request.
func TestPingLimits(t *testing.T) {
	t.Parallel()
	c, mock := newMockClient(t, allauth.Config{Timeout: 50 * time.Millisecond})
	mock.RegisterResponder(http.MethodGet, testAppURL, func(req *http.Request) (*http.Response, error) {
		<-req.Context().Done()
		return nil, req.Context().Err()
	})
	start := time.Now()
	up := upstreamOf(t, c.Ping(context.Background(), introspect.SessionToken))
	if took := time.Since(start); took > time.Second {
		t.Errorf("Ping took %v with a 50ms Timeout", took)
	}
	if up.Status != 0 {
		t.Errorf("status %d, want 0", up.Status)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := mock.GetTotalCallCount()
	if up := upstreamOf(t, c.Ping(ctx, introspect.SessionToken)); !strings.Contains(up.Error(), "caller gave up") {
		t.Errorf("Ping with a cancelled ctx = %v", up)
	}
	_ = upstreamOf(t, c.Ping(context.Background(), introspect.Kind(0)))
	if mock.GetTotalCallCount() != calls {
		t.Errorf("a request was sent for a cancelled ctx or an unknown kind")
	}
}
