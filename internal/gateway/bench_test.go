package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// discard is a ResponseWriter that keeps nothing but a fresh header map per
// request, as net/http gives.
type discard struct {
	h    http.Header
	code int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(code int)        { d.code = code }

// BenchmarkHandler measures the gateway's handler alone: /healthz, and a
// warm /auth.
//
//	go test -run '^$' -bench BenchmarkHandler -benchmem ./internal/gateway/
func BenchmarkHandler(b *testing.B) {
	srv := newAllauth(b)
	g := newGateway(b, testConfig(srv.URL))
	tok := srv.IssueToken("alice")
	run := func(b *testing.B, path string) {
		b.Helper()
		req := httptest.NewRequest(http.MethodGet, path, http.NoBody)
		req.Header.Set("X-Session-Token", tok)
		w := &discard{}
		b.ReportAllocs()
		for b.Loop() {
			w.h = make(http.Header, 4)
			g.ServeHTTP(w, req)
		}
		if w.code != 0 && w.code != 200 {
			b.Fatalf("status %d", w.code)
		}
	}
	b.Run("healthz", func(b *testing.B) { run(b, "/healthz") })
	b.Run("auth", func(b *testing.B) { run(b, "/auth") })
}
