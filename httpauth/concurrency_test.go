package httpauth_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/httpauth"
	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// Sizes of the cross-token leak test: every token is asked twice (once
// fetched, once from the cache), by different clients at about the same
// time. The Fiber v2 door sends 200,000 requests; 20,000 keep this a few
// seconds under -race.
const (
	loadClients  = 256
	loadTokens   = 10_000
	loadRequests = 2 * loadTokens
)

// 256 concurrent clients, 10,000 tokens of 10,000 users: every answer names
// its own user, what handlers kept after their request ended still names the
// right one, and allauth is asked once per token. Requests go through the
// mux's ServeHTTP in process (net/http's server adds nothing the middleware
// could leak through, and its loopback HTTP would triple the run under
// -race); lookups go to the stand-in over real HTTP.
func TestConcurrency_EveryAnswerNamesItsOwnUser(t *testing.T) {
	if testing.Short() {
		t.Skip("20,000 requests; skipped with -short")
	}
	srv := allauthtest.NewServer()
	defer srv.Close()
	tokens := make([]string, loadTokens)
	for i := range tokens {
		name := "u" + strconv.Itoa(i)
		srv.AddUser(allauthtest.User{ID: i + 1, Username: name}) // an explicit ID keeps AddUser O(1)
		if tokens[i] = srv.IssueToken(name); tokens[i] == "" {
			t.Fatalf("no token for %s", name)
		}
	}
	m := newMiddleware(t, srv, httpauth.Config{CacheTTL: 10 * time.Minute, Timeout: time.Minute, MaxConcurrentLookups: -1})
	kept := make([]*introspect.User, loadRequests)
	mux := http.NewServeMux()
	mux.Handle("GET /r/{n}", m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.PathValue("n"))
		if err != nil || n < 0 || n >= loadRequests {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		u := httpauth.UserFrom(r.Context())
		kept[n] = u
		_, _ = io.WriteString(w, u.Username)
	})))

	var next, mismatches, failures atomic.Int64
	var first sync.Once
	var wg sync.WaitGroup
	for range loadClients {
		wg.Go(func() {
			for {
				n := int(next.Add(1) - 1)
				if n >= loadRequests {
					return
				}
				i := n % loadTokens
				req := httptest.NewRequest(http.MethodGet, "/r/"+strconv.Itoa(n), http.NoBody)
				req.Header.Set(headless.HeaderSessionToken, tokens[i])
				rec := httptest.NewRecorder()
				mux.ServeHTTP(rec, req)
				status, body := rec.Code, rec.Body.String()
				switch {
				case status != http.StatusOK:
					failures.Add(1)
					first.Do(func() { t.Errorf("request %d: %d %q", n, status, body) })
				case body != "u"+strconv.Itoa(i):
					mismatches.Add(1)
					first.Do(func() { t.Errorf("request %d for u%d answered %q", n, i, body) })
				}
			}
		})
	}
	wg.Wait()
	if mismatches.Load() != 0 || failures.Load() != 0 {
		t.Fatalf("%d answers named another user, %d requests failed", mismatches.Load(), failures.Load())
	}
	var wrong int
	for n, u := range kept {
		i := n % loadTokens
		if u == nil || u.Username != "u"+strconv.Itoa(i) || u.ID != strconv.Itoa(i+1) {
			wrong++
			if wrong <= 5 {
				t.Errorf("request %d kept %+v, want u%d", n, u, i)
			}
		}
	}
	if wrong != 0 {
		t.Fatalf("%d kept users are wrong", wrong)
	}
	if got := srv.SessionCalls(); got != loadTokens {
		t.Fatalf("allauth session calls = %d, want exactly %d (one per token)", got, loadTokens)
	}
}
