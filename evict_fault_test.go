package headless_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

const evictTestSecret = "allauthgo-root-test-secret-0123456789abcdef"

// stubStorage is a shared store in memory (a cache.Storage with the
// context methods gofiber/storage drivers have) whose Delete can be made to
// block or fail, as a Redis that answers late or errs would.
type stubStorage struct {
	mu   sync.Mutex
	data map[string][]byte

	blockNext bool          // the next Delete blocks until release is closed
	entered   chan struct{} // closed when the blocked Delete started
	release   chan struct{}
	failNext  bool // the next Delete fails
}

func newStubStorage() *stubStorage {
	return &stubStorage{data: make(map[string][]byte), entered: make(chan struct{}), release: make(chan struct{})}
}

var errStubDown = errors.New("stub storage: delete failed")

// gone is what a driver returns when it notices its context was cancelled.
// Deadlines are ignored: the store's own short timeout is not what these
// tests are about, and a slow machine must not make them flaky.
func gone(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	return nil
}

func (s *stubStorage) GetWithContext(ctx context.Context, key string) ([]byte, error) {
	if err := gone(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.data[key]), nil
}

func (s *stubStorage) SetWithContext(ctx context.Context, key string, val []byte, _ time.Duration) error {
	if err := gone(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[key] = bytes.Clone(val)
	return nil
}

func (s *stubStorage) DeleteWithContext(ctx context.Context, key string) error {
	if err := gone(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	block, fail := s.blockNext, s.failNext
	s.blockNext, s.failNext = false, false
	s.mu.Unlock()
	if fail {
		return errStubDown
	}
	if block {
		close(s.entered)
		<-s.release
		// The answer arrives after the caller may have gone: a driver
		// then reports the context's error, not the delete.
		if err := gone(ctx); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.data, key)
	return nil
}

func (s *stubStorage) Get(key string) ([]byte, error) {
	return s.GetWithContext(context.Background(), key)
}

func (s *stubStorage) Set(key string, val []byte, exp time.Duration) error {
	return s.SetWithContext(context.Background(), key, val, exp)
}

func (s *stubStorage) Delete(key string) error {
	return s.DeleteWithContext(context.Background(), key)
}

func (s *stubStorage) Reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.data)
	return nil
}

func (*stubStorage) Close() error { return nil }

func (s *stubStorage) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.data)
}

// tokenReq is a headless.Request carrying an X-Session-Token.
type tokenReq struct{ token string }

func (r tokenReq) Header(name string) ([]byte, int) {
	if name == headless.HeaderSessionToken {
		return []byte(r.token), 1
	}
	return nil, 0
}
func (tokenReq) Cookie(string) []byte     { return nil }
func (tokenReq) Context() context.Context { return context.Background() }
func quiet() *slog.Logger                 { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
func newEvictStandin(t *testing.T) *allauthtest.Server {
	t.Helper()
	srv := allauthtest.NewServer()
	t.Cleanup(srv.Close)
	srv.AddUser(allauthtest.User{Username: "alice"})
	return srv
}

// newSharing returns an Authenticator over st, closed when the test ends.
func newSharing(t *testing.T, srv *allauthtest.Server, st *stubStorage) *headless.Authenticator {
	t.Helper()
	a, err := headless.New(headless.Config{BaseURL: srv.URL, Storage: st, CacheTTL: time.Hour, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, a)
	return a
}

// whoIs authenticates token with a and returns the username, or the
// refusal's status.
func whoIs(a *headless.Authenticator, token string) string {
	res := a.Authenticate(tokenReq{token}, false)
	if res.Err != nil {
		return strconv.Itoa(res.Err.Status)
	}
	return res.Session.User.Username
}

// signedEvict is a signed webhook request evicting keys at ts.
func signedEvict(ctx context.Context, ts int64, keys ...string) *http.Request {
	body, err := json.Marshal(struct { //nolint:gosec // session keys are the payload of an eviction
		Nonce       string   `json:"nonce"`
		SessionKeys []string `json:"session_keys"`
	}{"n", keys})
	if err != nil {
		panic(err)
	}
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/_allauthgo/evict", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(headless.HeaderEvictTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(headless.HeaderEvictSignature, headless.SignEvict([]byte(evictTestSecret), ts, body))
	return req
}

func evictAnswer(t *testing.T, h http.Handler, req *http.Request) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// Django's client gives up after 2 s. An eviction that started when it did
// is finished all the same: the entry is deleted from the shared store, so
// the other instance asks allauth (and gets its 410) instead of serving the
// logged-out user until the TTL.
func TestEvictFinishesAfterTheCallerLeaves(t *testing.T) {
	t.Parallel()
	srv := newEvictStandin(t)
	st := newStubStorage()
	a := newSharing(t, srv, st)
	tok := srv.IssueToken("alice")
	if got := whoIs(a, tok); got != "alice" {
		t.Fatalf("before: %s", got)
	}
	if st.len() != 1 {
		t.Fatalf("shared store holds %d entries, want alice's", st.len())
	}
	srv.Logout(tok)

	h, err := headless.EvictHandler(headless.EvictConfig{Secret: []byte(evictTestSecret)}, a)
	if err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	st.blockNext = true
	st.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type answer struct {
		code int
		body string
	}
	done := make(chan answer, 1)
	go func() {
		code, body := evictAnswer(t, h, signedEvict(ctx, time.Now().Unix(), tok))
		done <- answer{code, body}
	}()
	<-st.entered // the eviction is deleting from the store...
	cancel()     // ...when the caller gives up
	close(st.release)
	got := <-done
	if got.code != http.StatusOK || got.body != `{"status": 200, "data": {"evicted": 1}}` {
		t.Errorf("eviction answered %d %s, want 200 with 1 evicted", got.code, got.body)
	}
	if st.len() != 0 {
		t.Errorf("shared store still holds %d entries after the eviction", st.len())
	}
	// Another instance, with no in-process copy: it reads the shared store.
	if got := whoIs(newSharing(t, srv, st), tok); got != "410" {
		t.Errorf("another instance after the eviction: %s, want allauth's 410", got)
	}
}

// A store failure answers 503 with Retry-After: 1, and the identical
// request, retried, is applied: a signature is remembered only once its
// eviction was applied. After that, a replay is refused.
func TestEvictRetryAfterStoreFailure(t *testing.T) {
	t.Parallel()
	srv := newEvictStandin(t)
	st := newStubStorage()
	a := newSharing(t, srv, st)
	tok := srv.IssueToken("alice")
	if got := whoIs(a, tok); got != "alice" {
		t.Fatalf("before: %s", got)
	}
	srv.Logout(tok)
	now := time.Unix(1_800_000_000, 0)
	h, err := headless.EvictHandler(headless.EvictConfig{
		Secret: []byte(evictTestSecret),
		Now:    func() time.Time { return now },
	}, a)
	if err != nil {
		t.Fatal(err)
	}
	ts := now.Unix()

	st.mu.Lock()
	st.failNext = true
	st.mu.Unlock()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, signedEvict(context.Background(), ts, tok))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("store failing: %d %s (Retry-After %q), want 503 with Retry-After: 1", rec.Code, rec.Body, rec.Header().Get("Retry-After"))
	}
	// Each check is by a new instance, with no in-process copy: it reads
	// the shared store.
	if got := whoIs(newSharing(t, srv, st), tok); got != "alice" {
		t.Fatalf("another instance after the failed eviction: %s (the shared entry survived)", got)
	}

	now = now.Add(time.Second) // as Retry-After says; within MaxSkew
	if code, body := evictAnswer(t, h, signedEvict(context.Background(), ts, tok)); code != http.StatusOK {
		t.Fatalf("the identical request retried: %d %s, want 200", code, body)
	}
	if got := whoIs(newSharing(t, srv, st), tok); got != "410" {
		t.Errorf("another instance after the retried eviction: %s, want allauth's 410", got)
	}
	code, body := evictAnswer(t, h, signedEvict(context.Background(), ts, tok))
	if code != http.StatusUnauthorized || !bytes.Contains([]byte(body), []byte(`"code": "replayed"`)) {
		t.Errorf("a replay after success: %d %s, want 401 replayed", code, body)
	}
}
