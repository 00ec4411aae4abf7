package gateway_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/internal/gateway"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

const (
	bodyNoCredential = `{"status": 401, "errors": [{"code": "not_authenticated", "message": "No credential was provided."}]}`
	bodyInvalid      = `{"status": 401, "errors": [{"code": "not_authenticated", "message": "The credential is not valid."}]}`
	bodyGone         = `{"status": 410, "errors": [{"code": "session_gone", "message": "The session is gone; log in again."}]}`
	bodyUnavailable  = `{"status": 503, "errors": [{"code": "upstream_unavailable", "message": "Authentication is unavailable; try again shortly."}]}`

	evictSecret = "0123456789abcdef0123456789abcdef-evict"
)

// newAllauth starts a stand-in allauth with alice (ID 1, every field) and
// nomail (ID 2, no email), closed when the test ends.
func newAllauth(tb testing.TB) *allauthtest.Server {
	tb.Helper()
	srv := allauthtest.NewServer()
	tb.Cleanup(srv.Close)
	srv.AddUser(allauthtest.User{ID: 1, Username: "alice", Email: "alice@example.com", Display: "Alice Liddell", Password: "alice-pass-123"})
	srv.AddUser(allauthtest.User{ID: 2, Username: "nomail", Password: "nomail-pass-123"})
	return srv
}

// testConfig is the gateway's configuration for a test: every source, the
// webhook on, quiet breaker.
func testConfig(allauthURL string) gateway.Config {
	return gateway.Config{
		AllauthURL:           allauthURL,
		AllauthMount:         "/_allauth",
		Addr:                 "127.0.0.1:0",
		KeyLookup:            "header:X-Session-Token,header:Authorization,cookie:sessionid",
		AuthScheme:           "Bearer",
		CacheTTL:             time.Minute,
		NegativeTTL:          5 * time.Second,
		Timeout:              2 * time.Second,
		MaxConcurrentLookups: 64,
		MaxEntries:           1000,
		RedisPrefix:          "allauthgo:",
		RedisTimeout:         50 * time.Millisecond,
		EvictSecret:          evictSecret,
		ShutdownTimeout:      5 * time.Second,
	}
}

// startGateway serves a gateway for cfg on a free loopback port until the
// test ends, and returns it with its address.
func startGateway(t *testing.T, cfg gateway.Config) (*gateway.Gateway, string) {
	t.Helper()
	g, err := gateway.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway: %v", err)
		}
		if err := g.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return g, ln.Addr().String()
}

// seen is what the app received.
type seen struct {
	path   string
	header http.Header
}

// app is an upstream that records every request it receives and answers
// 200 "app".
type app struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func newApp(t *testing.T) *app {
	t.Helper()
	a := &app{}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.reqs = append(a.reqs, seen{path: r.URL.RequestURI(), header: r.Header.Clone()})
		a.mu.Unlock()
		// /status/<code> answers that status, to show the proxies pass
		// the app's own refusals and errors untouched.
		if code, ok := strings.CutPrefix(r.URL.Path, "/status/"); ok {
			n, _ := strconv.Atoi(code)
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(n)
			_, _ = io.WriteString(w, "app says "+strconv.Itoa(n))
			return
		}
		_, _ = io.WriteString(w, "app")
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *app) addr() string { return a.srv.Listener.Addr().String() }

// take returns the requests received since the last call.
func (a *app) take() []seen {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.reqs
	a.reqs = nil
	return out
}

// answer is a response as the client got it.
type answer struct {
	status int
	header http.Header
	body   string
}

// client sends requests with its own connections, closed when the test
// ends.
func client(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func do(t *testing.T, c *http.Client, method, url string, headers ...string) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// evict posts a signed eviction of the session keys to the gateway at
// addr, as Django's allauthgo_evict does.
func evict(t *testing.T, c *http.Client, addr string, keys ...string) answer {
	t.Helper()
	body := []byte(`{"nonce": "` + strconv.FormatInt(time.Now().UnixNano(), 10) + `", "session_keys": [`)
	for i, k := range keys {
		if i > 0 {
			body = append(body, ',')
		}
		body = strconv.AppendQuote(body, k)
	}
	body = append(body, "]}"...)
	ts := time.Now().Unix()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://"+addr+gateway.PathEvict, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(headless.HeaderEvictTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(headless.HeaderEvictSignature, headless.SignEvict([]byte(evictSecret), ts, body))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func itoa(n int) string { return strconv.Itoa(n) }
