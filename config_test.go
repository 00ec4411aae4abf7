package headless_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/httpauth"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// A BaseURL mistake is refused at New with what to write instead.
func TestNew_BaseURLMistakes(t *testing.T) {
	for _, tc := range []struct {
		base, mount string
		want        []string // all in the error
	}{
		{base: "127.0.0.1:8000", want: []string{"no scheme", `"http://127.0.0.1:8000"`, "https://"}},
		{base: "localhost:8000", want: []string{"no scheme", `"http://localhost:8000"`}},
		{base: "django.internal", want: []string{"no scheme", `"http://django.internal"`}},
		{base: "user:secret@django:8000", want: []string{"no scheme", "http://"}},
		{base: "http://127.0.0.1:8000/_allauth", want: []string{"Config.Mount", `"http://127.0.0.1:8000"`, `"/_allauth"`}},
		{base: "http://127.0.0.1:8000/_allauth/", want: []string{"Config.Mount", `"http://127.0.0.1:8000"`}},
		{base: "http://127.0.0.1:8000/_allauth/app/v1/auth/session", want: []string{"Config.Mount", `"http://127.0.0.1:8000"`}},
		{base: "https://example.com/site/_allauth/browser/v1", want: []string{"Config.Mount", `"https://example.com/site"`}},
		{base: "https://example.com/app/v1/auth/session", want: []string{"Config.Mount", `"https://example.com"`}},
		{base: "http://django:8000/accounts/api", mount: "/accounts/api", want: []string{"Config.Mount", `"http://django:8000"`, `"/accounts/api"`}},
	} {
		t.Run(tc.base, func(t *testing.T) {
			a, err := headless.New(headless.Config{BaseURL: tc.base, Mount: tc.mount, Logger: slog.New(slog.DiscardHandler)})
			if err == nil {
				_ = a.Close()
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %s", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q echoes the user info", err)
			}
		})
	}
}

// A BaseURL with a path of its own (Django behind a prefix) is no mistake,
// and its lookups reach allauth under that prefix.
func TestNew_BaseURLWithPrefix(t *testing.T) {
	for _, base := range []string{"http://127.0.0.1:8000", "http://127.0.0.1:8000/", "https://example.com/django", "http://h/app"} {
		a, err := headless.New(headless.Config{BaseURL: base, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Errorf("%s: %v", base, err)
			continue
		}
		_ = a.Close()
	}
}

// memStorage is a Storage that keeps values in a map.
type memStorage struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memStorage) Get(k string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[k], nil
}

func (s *memStorage) Set(k string, v []byte, _ time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[k] = bytes.Clone(v)
	return nil
}

func (s *memStorage) Delete(k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
	return nil
}

func (s *memStorage) Reset() error { return nil }
func (s *memStorage) Close() error { return nil }

// A Storage without a StorageSecret (say, an unset STORAGE_SECRET) works but
// is logged once, at New, at level Warn; with a secret, or without a
// Storage, nothing is logged.
func TestNew_StorageWithoutSecretWarns(t *testing.T) {
	srv := allauthtest.NewServer()
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		name   string
		cfg    headless.Config
		warned bool
	}{
		{"storage, no secret", headless.Config{Storage: &memStorage{}, StorageSecret: []byte("")}, true},
		{"storage and secret", headless.Config{Storage: &memStorage{}, StorageSecret: bytes.Repeat([]byte("k"), 32)}, false},
		{"no storage", headless.Config{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			tc.cfg.BaseURL = srv.URL
			tc.cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			a, err := headless.New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = a.Close() })
			out := logs.String()
			if !tc.warned {
				if out != "" {
					t.Errorf("logged %q", out)
				}
				return
			}
			if strings.Count(out, "\n") != 1 || !strings.Contains(out, "level=WARN") {
				t.Fatalf("want one WARN line, got %q", out)
			}
			for _, w := range []string{"StorageSecret", "not authenticated", "as any user"} {
				if !strings.Contains(out, w) {
					t.Errorf("warning %q does not say %q", out, w)
				}
			}
		})
	}
}

// A wrong Mount makes allauth answer 404: the request gets a 503 and the
// log line names the URL that was asked, never the token.
func TestUnexpectedStatusLogNamesTheURL(t *testing.T) {
	srv := allauthtest.NewServer()
	t.Cleanup(srv.Close)
	srv.AddUser(allauthtest.User{Username: "alice", Password: "alice-pass"})
	token := srv.IssueToken("alice")
	var logs syncBuffer
	m, err := httpauth.NewMiddleware(httpauth.Config{BaseURL: srv.URL, Mount: "/accounts", Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, m)
	rec := httptest.NewRecorder()
	m.Handler(http.NotFoundHandler()).ServeHTTP(rec, req("X-Session-Token", token))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", rec.Code)
	}
	out := logs.String()
	if want := "status 404 from " + srv.URL + "/accounts/app/v1/auth/session"; !strings.Contains(out, want) || strings.Contains(out, token) {
		t.Errorf("log %q, want it to say %q and not the token", out, want)
	}
}

// syncBuffer is a bytes.Buffer a logger may write while a test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
