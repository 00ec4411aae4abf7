package fiberauth_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/authprom"
	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/internal/redistest"
	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// capture collects everything the middleware says about requests: log lines
// (at every level), the text of every error handed to ErrorHandler, and
// every answer (headers and body).
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

// config returns cfg with its Logger and ErrorHandler capturing.
func (c *capture) config(cfg fiberauth.Config) fiberauth.Config {
	cfg.Logger = slog.New(slog.NewJSONHandler(&c.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.ErrorHandler = func(ctx *fiber.Ctx, err error) error {
		texts := []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)}
		var e *headless.Error
		if errors.As(err, &e) {
			texts = append(texts, fmt.Sprintf("%+v", *e))
		}
		for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(u) {
			texts = append(texts, u.Error(), fmt.Sprintf("%+v", u))
		}
		c.add(&c.texts, texts...)
		return fiberauth.DefaultErrorHandler(ctx, err)
	}
	return cfg
}

// serve runs a request and keeps its answer.
func (c *capture) serve(h func(...pair) answer, headers ...pair) answer {
	a := h(headers...)
	c.add(&c.answers, a.Raw)
	return a
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

// The core's own check is the root package's secrets_test.go; this one
// adds what only a door shows: the text of the error its ErrorHandler is
// handed, the raw answer Fiber writes, and every Prometheus series.
//
// The middleware never writes a credential anywhere: not in a log line (at
// any level), an error's text, a response, the cache's Stats, the metrics
// (Metrics and every Prometheus label and value), nor in any key or value
// written to Redis; across a representative mix of requests: success by
// session token, cookie and Bearer; allauth's 401 (inactive, pending) and
// 410 (unknown, logged out); malformed credentials that embed a valid
// token; faults (502, 429, a dropped connection, an HTML page, a timeout);
// a stale session served during a fault; an upstream that echoes the
// request (credential included) in its error page; evictions.
func Test_Secrets_NeverLeak(t *testing.T) {
	t.Parallel()
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		secretScenarios(t, nil, "", func() {})
	})
	t.Run("Redis", func(t *testing.T) {
		t.Parallel()
		st := redisStorage(t, redistest.Addr(t), 4)
		prefix := redisPrefix(t)
		t.Cleanup(func() {
			for k := range scanAll(t, st, prefix) {
				_ = st.Delete(k)
			}
		})
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

// secretScenarios runs the mix against a middleware on storage (nil: in
// process), calling beforeEvict before the evictions, checks everything it
// captured and returns the credentials it used, for the caller's own checks.
func secretScenarios(t *testing.T, storage fiber.Storage, prefix string, beforeEvict func()) []string {
	t.Helper()
	srv := newAllauth(t, allauthtest.WithJWT(allauthtest.JWTConfig{Algorithm: "HS256"}))
	srv.AddUser(allauthtest.User{ID: 3, Username: "carol", Password: "pw"})
	srv.AddUser(allauthtest.User{ID: 4, Username: "pending", Email: "p@example.com", Password: "pw", PendingEmailVerification: true})

	var capt capture
	const ttl = 150 * time.Millisecond
	// MaxEntries 4: in process, the tables fill and entries are declined.
	m := newMiddleware(t, srv, capt.config(fiberauth.Config{
		KeyLookup:    "header:X-Session-Token,header:Authorization,cookie:sessionid",
		Timeout:      300 * time.Millisecond,
		CacheTTL:     ttl,
		StaleIfError: time.Minute,
		MaxEntries:   4,
		Storage:      storage,
		Prefix:       prefix,
		// Six faults in a row would open the breaker, and the lookups after
		// them must reach allauth; its refusals are in protect_test.go.
		Breaker: introspect.BreakerConfig{Disabled: true},
	}))
	app := handlerApp(t, m.Handler)
	h := func(p ...pair) answer { return serveDirect(app, p...) }
	xst := func(v string) pair { return pair{fiberauth.HeaderSessionToken, v} }

	alice, bob, carol := srv.IssueToken("alice"), srv.IssueToken("bob"), srv.IssueToken("carol")
	pending := srv.IssueToken("pending")
	cookie := srv.IssueCookie("alice")
	jwt, refresh := srv.IssueJWT("bob")
	out := srv.IssueToken("alice")
	srv.Logout(out)
	unknown := randomToken(rand.New(rand.NewPCG(1, 1)))
	var secrets []string
	secrets = append(secrets, alice, bob, carol, pending, cookie, jwt, refresh, out, unknown)
	fresh := func() string { // a new token for each fault
		tok := srv.IssueToken("carol")
		secrets = append(secrets, tok)
		return tok
	}

	// Successes, by each kind, and a cache hit.
	for range 2 {
		wantAnswer(t, capt.serve(h, xst(alice)), 200)
	}
	wantAnswer(t, capt.serve(h, pair{"Cookie", "theme=dark; sessionid=" + cookie}), 200)
	wantAnswer(t, capt.serve(h, pair{"Authorization", "Bearer " + jwt}), 200)
	// allauth's own no: 410 unknown, 410 logged out, 401 inactive, 401
	// pending, 401 for a bad Bearer, 401 for an unknown cookie; then cached.
	wantAnswer(t, capt.serve(h, xst(unknown)), 410)
	wantAnswer(t, capt.serve(h, xst(out)), 410)
	wantAnswer(t, capt.serve(h, xst(pending)), 401)
	wantAnswer(t, capt.serve(h, pair{"Authorization", "Bearer " + refresh}), 401)
	wantAnswer(t, capt.serve(h, pair{"Cookie", "sessionid=" + unknown}), 401)
	wantAnswer(t, capt.serve(h, xst(unknown)), 410)
	srv.SetActive("bob", false)
	wantAnswer(t, capt.serve(h, xst(bob)), 401)
	srv.SetActive("bob", true)
	// Malformed credentials that embed valid ones.
	wantAnswer(t, capt.serve(h, xst(alice+"\x00")), 410)
	wantAnswer(t, capt.serve(h, xst(alice+"\x7f"+alice)), 410)
	wantAnswer(t, capt.serve(h, xst("é"+alice)), 410)
	wantAnswer(t, capt.serve(h, xst(strings.Repeat(alice, 130))), 410)
	wantAnswer(t, capt.serve(h, xst(alice), xst(bob)), 410)
	wantAnswer(t, capt.serve(h, pair{"Authorization", "Bearer " + jwt + " " + jwt}), 401)
	wantAnswer(t, capt.serve(h, pair{"Cookie", "sessionid=" + cookie + "\\"}), 401)
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
		wantAnswer(t, capt.serve(h, xst(fresh())), 503)
	}
	// (A stale session served during a fault is checked in the core's
	// secrets_test.go, on its clock.)
	srv.SetFault(allauthtest.Fault{})
	// Evictions, then a lookup again; eviction of a token nobody cached.
	beforeEvict()
	for _, tok := range []string{alice, cookie, jwt, unknown, fresh()} {
		if err := m.Evict(t.Context(), tok); err != nil {
			t.Errorf("Evict: %v", err)
		}
	}
	wantAnswer(t, capt.serve(h, xst(alice)), 200)
	// An upstream whose error pages repeat the request, credential included.
	for _, status := range []int{502, 200} {
		echo := echoingUpstream(t, status)
		em := newMiddleware(t, nil, capt.config(fiberauth.Config{BaseURL: echo.URL, Timeout: 300 * time.Millisecond}))
		eh := handlerApp(t, em.Handler)
		wantAnswer(t, capt.serve(func(p ...pair) answer { return serveDirect(eh, p...) }, xst(fresh())), 503)
		capt.add(&capt.texts, fmt.Sprintf("%+v", em.Metrics().Cache), fmt.Sprintf("%+v", em.Metrics()))
	}

	// Metrics and every Prometheus series (names, labels, values).
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(authprom.New(m.Authenticator))
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var prom strings.Builder
	for _, mf := range families {
		prom.WriteString(mf.String()) // names, help, every label pair and value
		prom.WriteByte('\n')
	}
	capt.add(&capt.texts, fmt.Sprintf("%+v", m.Metrics().Cache), fmt.Sprintf("%+v", m.Metrics()), prom.String())

	logs := capt.logs.String()
	if !strings.Contains(logs, "allauth lookup failed") {
		t.Errorf("no failure was logged: %q", logs)
	}
	if !strings.Contains(prom.String(), "requests_total") {
		t.Errorf("no request metrics: %s", prom.String())
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
	check("an answer", capt.answers...)
	t.Logf("checked %d log bytes, %d error texts and stats, %d answers against %d credentials",
		len(logs), len(capt.texts), len(capt.answers), len(secrets))
	return secrets
}

// wantAnswer checks a status.
func wantAnswer(tb testing.TB, a answer, status int) {
	tb.Helper()
	if a.Status != status {
		tb.Errorf("status %d, want %d (%q)", a.Status, status, a.Body)
	}
}

// echoingUpstream answers every lookup with status and a body that repeats
// the request head it got, credential included, as a broken proxy's error
// page might.
func echoingUpstream(tb testing.TB, status int) *rawUpstream {
	tb.Helper()
	return newRawUpstream(tb, func(_ *rawUpstream, c net.Conn, head string) {
		body := "<html><pre>Bad request:\n" + head + "</pre></html>"
		_, _ = io.WriteString(c, fmt.Sprintf("HTTP/1.1 %d Echo\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s", status, len(body), body))
	})
}
