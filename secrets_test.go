package headless

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/cache"
	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// capture collects everything the core says about requests: log lines (at
// every level), the text of every error a door's ErrorHandler is handed,
// and every answer a door renders (headers and body).
type capture struct {
	logs    logBuffer
	mu      sync.Mutex
	texts   []string
	answers []string
}

func (c *capture) add(dst *[]string, s ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	*dst = append(*dst, s...)
}

// config returns cfg with its Logger capturing.
func (c *capture) config(cfg Config) Config {
	cfg.Logger = slog.New(slog.NewJSONHandler(&c.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return cfg
}

// serve authenticates r and keeps what a door would make of the result.
func (c *capture) serve(a *Authenticator, r *req) int {
	res := auth(a, r)
	if res.Session != nil {
		c.add(&c.answers, fmt.Sprintf("%+v", *res.Session))
		return http.StatusOK
	}
	e := res.Err
	texts := []string{e.Error(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e), fmt.Sprintf("%+v", *e)}
	for u := errors.Unwrap(error(e)); u != nil; u = errors.Unwrap(u) {
		texts = append(texts, u.Error(), fmt.Sprintf("%+v", u))
	}
	c.add(&c.texts, texts...)
	c.add(&c.answers, fmt.Sprint(headers(e))+string(e.Body()))
	return e.Status
}

// leak reports the first secret that appears in text, whole or as any 16
// consecutive characters of it (a prefix or a fragment is a leak too).
func leak(text string, secrets []string) (string, bool) {
	for _, s := range secrets {
		if strings.Contains(text, s) {
			return s, true
		}
		for i := 0; i+16 <= len(s); i++ {
			if strings.Contains(text, s[i:i+16]) {
				return s, true
			}
		}
	}
	return "", false
}

// The core never writes a credential anywhere: not in a log line (at any
// level), an error's text, a rendered answer, the cache's Stats, Metrics,
// nor in any key or value written to Redis; across a representative mix of
// requests: success by session token, cookie and Bearer; allauth's 401
// (inactive, pending) and 410 (unknown, logged out); malformed credentials
// that embed a valid token; faults (502, 429, a dropped connection, an HTML
// page, a timeout); a stale session served during a fault; an upstream that
// echoes the request (credential included) in its error page; evictions.
// (Prometheus labels are checked in authprom.)
func TestSecrets_NeverLeak(t *testing.T) {
	t.Parallel()
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		secretScenarios(t, nil, "", func() {})
	})
	t.Run("Redis", func(t *testing.T) {
		t.Parallel()
		prefix := redisPrefix(t)
		st := newRedis(t, prefix)
		written := map[string][]byte{}
		snapshot := func() {
			for k, v := range scanAll(t, st, prefix) {
				written[k] = v
			}
		}
		secrets := secretScenarios(t, st, prefix, snapshot)
		snapshot()
		if len(written) == 0 {
			t.Fatal("nothing was written to Redis")
		}
		for k, v := range written {
			if s, bad := leak(k, secrets); bad {
				t.Errorf("Redis key %q holds credential %.8s…", k, s)
			}
			if s, bad := leak(string(v), secrets); bad {
				t.Errorf("Redis value under %q holds credential %.8s…", k, s)
			}
		}
		t.Logf("%d keys and values in Redis checked", len(written))
	})
}

// secretScenarios runs the mix against an Authenticator on storage (nil: in
// process), calling beforeEvict before the evictions, checks everything it
// captured and returns the credentials it used, for the caller's own checks.
func secretScenarios(t *testing.T, storage cache.Storage, prefix string, beforeEvict func()) []string {
	t.Helper()
	srv := newAllauth(t, allauthtest.WithJWT(allauthtest.JWTConfig{Algorithm: "HS256"}))
	srv.AddUser(allauthtest.User{ID: 3, Username: "carol", Password: "pw"})
	srv.AddUser(allauthtest.User{ID: 4, Username: "pending", Email: "p@example.com", Password: "pw", PendingEmailVerification: true})

	var capt capture
	const ttl = 150 * time.Millisecond
	clock := newTestClock()
	// MaxEntries 4: in process, the tables fill and entries are declined.
	a := newCore(t, srv, capt.config(Config{
		Sources:      []Source{FromHeader(HeaderSessionToken), FromAuthHeader("Bearer"), FromCookie("sessionid")},
		Timeout:      300 * time.Millisecond,
		CacheTTL:     ttl,
		RefreshAhead: -1,
		StaleIfError: time.Minute,
		MaxEntries:   4,
		Storage:      storage,
		Prefix:       prefix,
		// Six faults in a row would open the breaker, and the lookups after
		// them must reach allauth.
		Breaker: introspect.BreakerConfig{Disabled: true},
		now:     clock.Now,
	}))
	want := func(r *req, status int) {
		t.Helper()
		if got := capt.serve(a, r); got != status {
			t.Errorf("status %d, want %d", got, status)
		}
	}

	alice, bob, carol := srv.IssueToken("alice"), srv.IssueToken("bob"), srv.IssueToken("carol")
	pending := srv.IssueToken("pending")
	cookie := srv.IssueCookie("alice")
	jwt, refresh := srv.IssueJWT("bob")
	out := srv.IssueToken("alice")
	srv.Logout(out)
	unknown := "q7w3e9r1t5y8u2i4o6p0a3s5d7f9g1h2"
	var secrets []string
	secrets = append(secrets, alice, bob, carol, pending, cookie, jwt, refresh, out, unknown)
	fresh := func() string { // a new token for each fault
		tok := srv.IssueToken("carol")
		secrets = append(secrets, tok)
		return tok
	}

	// Successes, by each kind, and a cache hit.
	for range 2 {
		want(withToken(alice), 200)
	}
	want(get("Cookie", "theme=dark; sessionid="+cookie), 200)
	want(bearer(jwt), 200)
	// allauth's own no: 410 unknown, 410 logged out, 401 inactive, 401
	// pending, 401 for a bad Bearer, 401 for an unknown cookie; then cached.
	want(withToken(unknown), 410)
	want(withToken(out), 410)
	want(withToken(pending), 401)
	want(bearer(refresh), 401)
	want(withCookie("sessionid", unknown), 401)
	want(withToken(unknown), 410)
	srv.SetActive("bob", false)
	want(withToken(bob), 401)
	srv.SetActive("bob", true)
	// Malformed credentials that embed valid ones.
	want(withToken(alice+"\x00"), 410)
	want(withToken(alice+"\x7f"+alice), 410)
	want(withToken("é"+alice), 410)
	want(withToken(strings.Repeat(alice, 130)), 410)
	want(get(HeaderSessionToken, alice, HeaderSessionToken, bob), 410)
	want(bearer(jwt+" "+jwt), 401)
	want(withCookie("sessionid", cookie+"\\"), 401)
	// Faults, each on a fresh token.
	for _, f := range []allauthtest.Fault{
		{Status: 502},
		{Status: 429, RetryAfter: "3"},
		{Drop: true},
		{Status: 500, Body: "<html>Server Error</html>", ContentType: "text/html"},
		{Body: `{"status": 200, "data": {"user": `},
		{Delay: time.Second},
	} {
		srv.SetFault(f)
		want(withToken(fresh()), 503)
	}
	// A stale session served while allauth fails.
	clock.Add(ttl + time.Millisecond)
	srv.SetFault(allauthtest.Fault{Status: 503})
	want(withToken(alice), 200)
	srv.SetFault(allauthtest.Fault{})
	// Evictions, then a lookup again; eviction of a token nobody cached.
	beforeEvict()
	for _, tok := range []string{alice, cookie, jwt, unknown, fresh()} {
		if err := a.Evict(t.Context(), tok); err != nil {
			t.Errorf("Evict: %v", err)
		}
	}
	want(withToken(alice), 200)
	// An upstream whose error pages repeat the request, credential included.
	for _, status := range []int{502, 200} {
		echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			dump, _ := httputil.DumpRequest(r, false)
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(status)
			_, _ = fmt.Fprintf(w, "<html><pre>Bad request:\n%s</pre></html>", dump) //nolint:gosec // the echo is the fault under test
		}))
		t.Cleanup(echo.Close)
		em := newCore(t, nil, capt.config(Config{BaseURL: echo.URL, Timeout: 300 * time.Millisecond}))
		t.Cleanup(em.client.CloseIdleConnections)
		if got := capt.serve(em, withToken(fresh())); got != 503 {
			t.Errorf("echoing upstream %d: status %d, want 503", status, got)
		}
		capt.add(&capt.texts, fmt.Sprintf("%+v", em.Metrics().Cache), fmt.Sprintf("%+v", em.Metrics()))
	}
	capt.add(&capt.texts, fmt.Sprintf("%+v", a.Metrics().Cache), fmt.Sprintf("%+v", a.Metrics()))

	logs := capt.logs.String()
	if !strings.Contains(logs, "allauth lookup failed") {
		t.Errorf("no failure was logged: %q", logs)
	}
	check := func(what string, texts ...string) {
		for _, text := range texts {
			if s, bad := leak(text, secrets); bad {
				t.Errorf("%s holds credential %.8s…: %q", what, s, text)
			}
		}
	}
	check("a log line", strings.Split(logs, "\n")...)
	check("an error text, Stats or metric", capt.texts...)
	check("an answer or session", capt.answers...)
	t.Logf("checked %d log bytes, %d error texts and stats, %d answers against %d credentials",
		len(logs), len(capt.texts), len(capt.answers), len(secrets))
	return secrets
}
