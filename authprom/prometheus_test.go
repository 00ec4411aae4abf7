package authprom_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/authprom"
	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// fixture is a stand-in allauth, a middleware (Next skips /public), an app
// and a registry holding the middleware's Collector; all closed at the end.
type fixture struct {
	srv *allauthtest.Server
	m   *fiberauth.Middleware
	app *fiber.App
	reg *prometheus.Registry
}

func newFixture(t *testing.T, cfg fiberauth.Config, pcfg ...authprom.Config) *fixture {
	t.Helper()
	srv := allauthtest.NewServer()
	t.Cleanup(srv.Close)
	srv.AddUser(allauthtest.User{ID: 1, Username: "alice", Password: "alice-pass"})
	cfg.BaseURL = srv.URL
	cfg.Logger = slog.New(slog.DiscardHandler)
	if cfg.Next == nil {
		cfg.Next = func(c *fiber.Ctx) bool { return c.Path() == "/public" }
	}
	m, err := fiberauth.NewMiddleware(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(m.Handler)
	app.Get("/*", func(c *fiber.Ctx) error { return c.SendString("ok") })
	t.Cleanup(func() { _ = app.Shutdown() })
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(authprom.New(m.Authenticator, pcfg...))
	return &fixture{srv: srv, m: m, app: app, reg: reg}
}

// do sends GET path with header pairs and returns the status.
func (f *fixture) do(t *testing.T, path string, headers ...string) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, http.NoBody)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := f.app.Test(req, -1)
	if err != nil {
		t.Fatalf("app.Test: %v", err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func (f *fixture) token(t *testing.T, tok string, want int) {
	t.Helper()
	if got := f.do(t, "/", fiberauth.HeaderSessionToken, tok); got != want {
		t.Fatalf("GET with token: status %d, want %d", got, want)
	}
}

// gather scrapes the registry and indexes the families by name.
func gather(t *testing.T, reg prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// sample returns the metric of family name whose label has value (or the
// only one when label is ""), failing the test if there is none.
func sample(t *testing.T, mfs map[string]*dto.MetricFamily, name, label, value string) *dto.Metric {
	t.Helper()
	mf, ok := mfs[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	for _, m := range mf.GetMetric() {
		if label == "" {
			return m
		}
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label && lp.GetValue() == value {
				return m
			}
		}
	}
	t.Fatalf("no %s{%s=%q}", name, label, value)
	return nil
}

func counter(t *testing.T, mfs map[string]*dto.MetricFamily, name, label, value string) float64 {
	t.Helper()
	return sample(t, mfs, name, label, value).GetCounter().GetValue()
}

// Requests driven through a Fiber app against the stand-in show up in a
// scrape, by outcome, with the cache's counters and the upstream histogram.
func TestCollectorScrape(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fiberauth.Config{})
	alice := f.srv.IssueToken("alice")

	f.token(t, alice, http.StatusOK)                                // miss: a lookup (2xx)
	f.token(t, alice, http.StatusOK)                                // hit
	f.token(t, alice, http.StatusOK)                                // hit
	f.token(t, "abcdefghijklmnopqrstuvwxyz012345", http.StatusGone) // miss: allauth's 410 (4xx)
	f.token(t, "abcdefghijklmnopqrstuvwxyz012345", http.StatusGone) // negative hit
	if got := f.do(t, "/"); got != http.StatusUnauthorized {        // no credential
		t.Fatalf("no credential: %d", got)
	}
	if got := f.do(t, "/public"); got != http.StatusOK { // skipped by Next
		t.Fatalf("/public: %d", got)
	}
	f.srv.SetFault(allauthtest.Fault{Status: http.StatusBadGateway})
	f.token(t, f.srv.IssueToken("alice"), http.StatusServiceUnavailable) // miss: a 502 (5xx)
	f.srv.SetFault(allauthtest.Fault{Drop: true})
	f.token(t, f.srv.IssueToken("alice"), http.StatusServiceUnavailable) // miss: no answer (error)
	f.srv.SetFault(allauthtest.Fault{})

	mfs := gather(t, f.reg)
	for outcome, want := range map[string]float64{
		"authenticated": 3, "gone": 2, "unauthenticated": 1, "skipped": 1, "upstream_error": 2, "anonymous": 0,
	} {
		if got := counter(t, mfs, "allauthgo_requests_total", "outcome", outcome); got != want {
			t.Errorf("allauthgo_requests_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
	if n := len(mfs["allauthgo_requests_total"].GetMetric()); n != 6 {
		t.Errorf("%d outcome series, want 6 (all, from the start)", n)
	}
	for name, want := range map[string]float64{
		"allauthgo_cache_hits_total":          2,
		"allauthgo_cache_negative_hits_total": 1,
		"allauthgo_cache_misses_total":        4,
		"allauthgo_cache_coalesced_total":     0,
		"allauthgo_cache_stale_serves_total":  0,
		"allauthgo_cache_evictions_total":     0,
		"allauthgo_cache_store_errors_total":  0,
		"allauthgo_cache_rejected_total":      0,
		"allauthgo_upstream_errors_total":     2,
	} {
		if got := counter(t, mfs, name, "", ""); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	// The cache holds alice's session and the negative 410.
	if got := sample(t, mfs, "allauthgo_cache_entries", "", "").GetGauge().GetValue(); got != 2 {
		t.Errorf("allauthgo_cache_entries = %v, want 2", got)
	}
	for class, want := range map[string]uint64{"2xx": 1, "3xx": 0, "4xx": 1, "5xx": 1, "error": 1} {
		h := sample(t, mfs, "allauthgo_upstream_request_duration_seconds", "class", class).GetHistogram()
		if h.GetSampleCount() != want {
			t.Errorf("upstream histogram{class=%q} count = %d, want %d", class, h.GetSampleCount(), want)
		}
		if want > 0 && (h.GetSampleSum() <= 0 || h.GetSampleSum() > 10) {
			t.Errorf("upstream histogram{class=%q} sum = %v s", class, h.GetSampleSum())
		}
		if len(h.GetBucket()) != len(headless.UpstreamBuckets()) {
			t.Errorf("%d buckets, want %d", len(h.GetBucket()), len(headless.UpstreamBuckets()))
		}
		// Buckets are cumulative and never exceed the count.
		var prev uint64
		for _, b := range h.GetBucket() {
			if b.GetCumulativeCount() < prev || b.GetCumulativeCount() > h.GetSampleCount() {
				t.Errorf("class %s: bucket le=%v holds %d (previous %d, count %d)",
					class, b.GetUpperBound(), b.GetCumulativeCount(), prev, h.GetSampleCount())
			}
			prev = b.GetCumulativeCount()
		}
	}
	last := sample(t, mfs, "allauthgo_upstream_last_answer_timestamp_seconds", "", "").GetGauge().GetValue()
	if age := float64(time.Now().UnixNano())/1e9 - last; age < 0 || age > 60 {
		t.Errorf("last answer timestamp %v is %v s old", last, age)
	}
}

// The metrics pass Prometheus' own naming lint, and no label holds a token,
// a user or a path: only "outcome", "class" and "reason", with fixed values.
func TestCollectorLintAndLabels(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fiberauth.Config{})
	alice := f.srv.IssueToken("alice")
	f.token(t, alice, http.StatusOK)
	f.token(t, alice, http.StatusOK)

	problems, err := testutil.GatherAndLint(f.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	allowed := map[string]map[string]bool{
		"outcome": {"authenticated": true, "anonymous": true, "unauthenticated": true, "gone": true, "upstream_error": true, "skipped": true},
		"class":   {"2xx": true, "3xx": true, "4xx": true, "5xx": true, "error": true},
		"reason":  {"no_slot": true, "breaker_open": true},
	}
	mfs := gather(t, f.reg)
	for name, mf := range mfs {
		if !strings.HasPrefix(name, "allauthgo_") {
			t.Errorf("metric %s lacks the allauthgo_ namespace", name)
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if !allowed[lp.GetName()][lp.GetValue()] {
					t.Errorf("%s has label %s=%q", name, lp.GetName(), lp.GetValue())
				}
				if strings.Contains(lp.GetValue(), alice) || strings.Contains(lp.GetValue(), "alice") {
					t.Errorf("%s label holds the token or the user", name)
				}
			}
		}
	}
	// Before a lookup nothing is known of allauth: no timestamp yet.
	f2 := newFixture(t, fiberauth.Config{})
	if _, ok := gather(t, f2.reg)["allauthgo_upstream_last_answer_timestamp_seconds"]; ok {
		t.Error("last answer timestamp exported before any answer")
	}
}

// Optional lets a request without a credential through as anonymous; a
// shared store (Storage) still has an entries gauge (its in-process tier); Namespace and ConstLabels
// apply to every metric.
func TestCollectorConfig(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fiberauth.Config{Optional: true, Storage: newMemStorage()},
		authprom.Config{Namespace: "auth", ConstLabels: prometheus.Labels{"middleware": "api"}})
	if got := f.do(t, "/"); got != http.StatusOK {
		t.Fatalf("anonymous: %d", got)
	}
	mfs := gather(t, f.reg)
	if got := counter(t, mfs, "auth_requests_total", "outcome", "anonymous"); got != 1 {
		t.Errorf("auth_requests_total{outcome=anonymous} = %v, want 1", got)
	}
	if _, ok := mfs["auth_cache_entries"]; !ok {
		t.Error("no entries gauge for the in-process tier in front of a shared store")
	}
	if g := mfs["auth_cache_eviction_subscribed"]; g == nil || g.GetMetric()[0].GetGauge().GetValue() != 0 {
		t.Error("eviction_subscribed is not 0 for a Storage without pub/sub")
	}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			found := false
			for _, lp := range m.GetLabel() {
				found = found || (lp.GetName() == "middleware" && lp.GetValue() == "api")
			}
			if !found {
				t.Errorf("%s lacks the const label", name)
			}
		}
	}
}

// Scraping while requests run is safe (run with -race) and a scrape costs
// the handler nothing it would notice.
func TestCollectorConcurrentScrape(t *testing.T) {
	t.Parallel()
	f := newFixture(t, fiberauth.Config{})
	alice := f.srv.IssueToken("alice")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 50; i++ {
			if _, err := f.reg.Gather(); err != nil {
				t.Errorf("Gather: %v", err)
				return
			}
		}
	}()
	for i := 0; i < 50; i++ {
		f.token(t, alice, http.StatusOK)
	}
	<-done
	mfs := gather(t, f.reg)
	if got := counter(t, mfs, "allauthgo_requests_total", "outcome", "authenticated"); got != 50 {
		t.Errorf("authenticated = %v, want 50", got)
	}
	if got := counter(t, mfs, "allauthgo_cache_hits_total", "", ""); got != 49 {
		t.Errorf("hits = %v, want 49", got)
	}
}

// memStorage is a minimal fiber.Storage, standing in for Redis.
type memStorage struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemStorage() *memStorage { return &memStorage{m: map[string][]byte{}} }

func (s *memStorage) Get(key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[key], nil
}

func (s *memStorage) Set(key string, val []byte, _ time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = append([]byte(nil), val...)
	return nil
}

func (s *memStorage) Delete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

func (s *memStorage) Reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m = map[string][]byte{}
	return nil
}

func (*memStorage) Close() error { return nil }
