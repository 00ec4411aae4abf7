package allauthtest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/testwait"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

func TestFaultStatus(t *testing.T) {
	srv := newServer(t)
	hc := newClient(t)
	tok := srv.IssueToken("alice")
	srv.SetFault(allauthtest.Fault{Status: http.StatusServiceUnavailable, RetryAfter: "7"})
	if got := srv.CurrentFault(); got.Status != 503 {
		t.Errorf("CurrentFault %+v", got)
	}
	for _, client := range []string{"app", "browser"} {
		r := do(t, hc, http.MethodGet, srv.SessionURL(client), "", "X-Session-Token", tok)
		expect(t, r, 503, `{"status": 503}`)
		if r.header.Get("Retry-After") != "7" || r.header.Get("Content-Type") != "application/json" || r.header.Get("Cache-Control") != jsonCache {
			t.Errorf("%s headers %v", client, r.header)
		}
	}
	// Login and logout are not affected.
	r := do(t, hc, http.MethodPost, srv.URL+"/_allauth/app/v1/auth/login", `{"username": "alice", "password": "alice-pass-123"}`)
	expect(t, r, 200, aliceLogin)
	// HEAD: headers only.
	h := do(t, hc, http.MethodHead, srv.SessionURL("app"), "")
	if h.status != 503 || h.body != "" {
		t.Errorf("HEAD: %d %q", h.status, h.body)
	}
	srv.SetFault(allauthtest.Fault{})
	expect(t, do(t, hc, http.MethodGet, srv.SessionURL("app"), "", "X-Session-Token", tok), 200, aliceSession)
	if got := srv.SessionCalls(); got != 4 {
		t.Errorf("SessionCalls %d, want 4", got)
	}
	srv.ResetCounters()
	if got := srv.SessionCalls(); got != 0 {
		t.Errorf("SessionCalls after reset %d", got)
	}
}

func TestFaultBody(t *testing.T) {
	srv := newServer(t)
	hc := newClient(t)
	srv.SetFault(allauthtest.Fault{Body: `{"status": 200, "data": {"us`})
	r := do(t, hc, http.MethodGet, srv.SessionURL("app"), "")
	if r.status != 200 || r.body != `{"status": 200, "data": {"us` || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("truncated body: %d %q %v", r.status, r.body, r.header)
	}
	srv.SetFault(allauthtest.Fault{Status: 502, Body: "<html>Bad Gateway</html>", ContentType: "text/html", RetryAfter: "1"})
	r = do(t, hc, http.MethodGet, srv.SessionURL("app"), "")
	if r.status != 502 || r.body != "<html>Bad Gateway</html>" || r.header.Get("Content-Type") != "text/html" || r.header.Get("Retry-After") != "1" {
		t.Errorf("HTML body: %d %q %v", r.status, r.body, r.header)
	}
}

func TestFaultDelay(t *testing.T) {
	srv := newServer(t)
	hc := newClient(t)
	tok := srv.IssueToken("alice")

	// A delay longer than the client's patience: the client gives up, and the
	// server's handler ends with the request.
	srv.SetFault(allauthtest.Fault{Delay: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.SessionURL("app"), nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := hc.Do(req)
	if err == nil {
		_ = resp.Body.Close()
		t.Fatal("expected a timeout")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}

	// A short delay, then the normal answer.
	srv.SetFault(allauthtest.Fault{Delay: 50 * time.Millisecond})
	start = time.Now()
	expect(t, do(t, hc, http.MethodGet, srv.SessionURL("app"), "", "X-Session-Token", tok), 200, aliceSession)
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("answered after %v, before the delay", d)
	}
}

// TestCloseDuringDelay checks that Close ends a delayed request at once.
func TestCloseDuringDelay(t *testing.T) {
	srv := allauthtest.NewServer()
	hc := newClient(t)
	srv.SetFault(allauthtest.Fault{Delay: time.Hour})
	errc := make(chan error, 1)
	go func() {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.SessionURL("app"), nil)
		if err != nil {
			errc <- err
			return
		}
		resp, err := hc.Do(req)
		if err == nil {
			_ = resp.Body.Close()
		}
		errc <- err
	}()
	testwait.Until(t, 10*time.Second, "the lookup to arrive", func() bool { return srv.SessionCalls() > 0 })
	done := make(chan struct{})
	go func() { srv.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs on a delayed request")
	}
	if err := <-errc; err == nil {
		t.Error("request answered although the server closed")
	}
	srv.Close() // twice is fine
}

func TestFaultDrop(t *testing.T) {
	srv := newServer(t)
	hc := newClient(t)
	srv.SetFault(allauthtest.Fault{Drop: true})
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.SessionURL("app"), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		t.Fatal("dropped connection gave an answer")
	}
	if srv.SessionCalls() < 1 {
		t.Error("dropped request not counted")
	}
	// Other endpoints still answer.
	expect(t, do(t, hc, http.MethodGet, srv.URL+"/_allauth/app/v1/config", ""), 200, bodyConfig)
}

// TestConcurrent hammers every endpoint while users, sessions and faults
// change; run with -race.
func TestConcurrent(t *testing.T) {
	srv := newServer(t)
	hc := newClient(t)
	const workers, rounds = 32, 40
	var wg sync.WaitGroup
	errc := make(chan error, workers*rounds)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				var tok string
				switch w % 4 {
				case 0:
					tok = srv.IssueToken("alice")
				case 1:
					tok = srv.IssueCookie("bob")
				case 2:
					srv.UpdateUser("dave", func(u *allauthtest.User) { u.Display = "dave" })
					tok = srv.IssueToken("dave")
				default:
					if i%10 == 0 {
						srv.SetFault(allauthtest.Fault{Status: 503})
					} else {
						srv.SetFault(allauthtest.Fault{})
					}
					srv.SetActive("carol", i%2 == 0)
					tok = srv.IssueToken("carol")
				}
				for _, client := range []string{"app", "browser"} {
					req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.SessionURL(client), nil)
					if err != nil {
						errc <- err
						return
					}
					req.Header.Set("X-Session-Token", tok)
					req.Header.Set("Cookie", "sessionid="+tok)
					resp, err := hc.Do(req)
					if err != nil {
						errc <- err
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					switch resp.StatusCode {
					case http.StatusOK, http.StatusUnauthorized, http.StatusServiceUnavailable:
					default:
						errc <- errors.New("unexpected status " + resp.Status)
					}
				}
				srv.Logout(tok)
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if got, want := srv.SessionCalls(), int64(workers*rounds*2); got != want {
		t.Errorf("SessionCalls %d, want %d", got, want)
	}
}

func TestUnstartedServer(t *testing.T) {
	srv := allauthtest.NewUnstartedServer()
	if srv.URL != "" {
		t.Errorf("URL before Start: %q", srv.URL)
	}
	srv.Start()
	hc := newClient(t)
	expect(t, do(t, hc, http.MethodGet, srv.URL+"/_allauth/app/v1/config", ""), 200, bodyConfig)
	srv.Close()

	never := allauthtest.NewUnstartedServer()
	never.Close()
}

// SetCredentialFault hits only the chosen credentials, as a token, a Bearer
// token or a browser cookie; requests without a credential (a ping) and
// other credentials are answered, and it comes before SetFault's fault.
func TestCredentialFault(t *testing.T) {
	srv := newServer(t)
	hc := newClient(t)
	tok := srv.IssueToken("alice")
	srv.SetCredentialFault(func(c string) bool { return c == "evil-token" }, allauthtest.Fault{Status: http.StatusInternalServerError})
	expect(t, do(t, hc, http.MethodGet, srv.SessionURL("app"), "", "X-Session-Token", "evil-token"), 500, `{"status": 500}`)
	expect(t, do(t, hc, http.MethodGet, srv.SessionURL("app"), "", "Authorization", "Bearer evil-token"), 500, `{"status": 500}`)
	expect(t, do(t, hc, http.MethodGet, srv.SessionURL("browser"), "", "Cookie", "sessionid=evil-token"), 500, `{"status": 500}`)
	expect(t, do(t, hc, http.MethodGet, srv.SessionURL("app"), "", "X-Session-Token", tok), 200, aliceSession)
	if r := do(t, hc, http.MethodGet, srv.SessionURL("app"), ""); r.status != http.StatusUnauthorized {
		t.Errorf("no credential: %d, want allauth's 401", r.status)
	}
	// Before SetFault's fault; and off again.
	srv.SetFault(allauthtest.Fault{Status: http.StatusBadGateway})
	expect(t, do(t, hc, http.MethodGet, srv.SessionURL("app"), "", "X-Session-Token", "evil-token"), 500, `{"status": 500}`)
	srv.SetFault(allauthtest.Fault{})
	srv.SetCredentialFault(nil, allauthtest.Fault{})
	if r := do(t, hc, http.MethodGet, srv.SessionURL("app"), "", "X-Session-Token", "evil-token"); r.status != http.StatusGone {
		t.Errorf("fault off: %d, want allauth's 410", r.status)
	}
}
