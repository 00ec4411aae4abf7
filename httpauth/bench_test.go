package httpauth_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/httpauth"
	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// discard is a ResponseWriter that keeps nothing, so that the benchmarks
// measure the handlers, not a recorder.
type discard struct {
	h    http.Header
	code int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(code int)        { d.code = code }

// BenchmarkMiddleware measures what the middleware adds to a request served
// by ServeHTTP: /bare is the handler alone, /hit the same handler behind the
// middleware with a warm cache, the handler reading UserFrom.
//
//	go test -run '^$' -bench BenchmarkMiddleware -benchmem -count 6 ./httpauth/
func BenchmarkMiddleware(b *testing.B) {
	srv := allauthtest.NewServer()
	defer srv.Close()
	srv.AddUser(allauthtest.User{Username: "alice", Email: "alice@example.com", Password: "alice-pass-123"})
	token := srv.IssueToken("alice")

	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if httpauth.UserFrom(r.Context()) == nil && r.URL.Path != "/bare" {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	run := func(b *testing.B, h http.Handler, path string) {
		b.Helper()
		req := httptest.NewRequest(http.MethodGet, path, http.NoBody)
		req.Header.Set(headless.HeaderSessionToken, token)
		w := &discard{h: http.Header{}}
		h.ServeHTTP(w, req) // warm the cache
		if w.code != http.StatusOK {
			b.Fatalf("status %d", w.code)
		}
		b.ReportAllocs()
		for b.Loop() {
			h.ServeHTTP(w, req)
		}
	}
	b.Run("bare", func(b *testing.B) { run(b, ok, "/bare") })
	b.Run("hit", func(b *testing.B) {
		m, err := httpauth.NewMiddleware(httpauth.Config{BaseURL: srv.URL, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = m.Close() }()
		run(b, m.Handler(ok), "/hit")
	})
}

// BenchmarkContext compares the ways to hand the session on: what a hit
// pays beyond Authenticate.
//
//	go test -run '^$' -bench BenchmarkContext -benchmem ./httpauth/
func BenchmarkContext(b *testing.B) {
	s := &introspect.Session{User: introspect.User{ID: "1"}}
	req := httptest.NewRequest(http.MethodGet, "/", http.NoBody)
	var sink *introspect.User
	b.Run("httpauth", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sink = httpauth.UserFrom(req.WithContext(httpauth.NewContext(req.Context(), s)).Context())
		}
	})
	b.Run("headless.NewContext", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sink = headless.UserFromContext(req.WithContext(headless.NewContext(req.Context(), s)).Context())
		}
	})
	_ = sink
}
