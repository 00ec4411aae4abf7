package headless

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/cache"
	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// Every request is counted under exactly one outcome, and every lookup at
// allauth under the class of its status, with its duration.
func TestObserve_Metrics(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{})
	alice := srv.IssueToken("alice")

	if s := a.Metrics(); !s.LastAnswer.IsZero() || !s.LastError.IsZero() {
		t.Fatalf("a new Authenticator knows allauth's last answer: %+v", s)
	}
	before := time.Now()
	wantUser(t, auth(a, withToken(alice)), "alice") // lookup, 200
	wantUser(t, auth(a, withToken(alice)), "alice") // hit
	wantError(t, auth(a, withToken("abcdefghijklmnopqrstuvwxyz012345")), http.StatusGone, CodeSessionGone)
	wantError(t, auth(a, get()), http.StatusUnauthorized, CodeNotAuthenticated)
	wantError(t, auth(a, withCookie("sessionid", "x")), http.StatusUnauthorized, CodeNotAuthenticated) // not a source: no credential
	a.Skip()                                                                                           // a door's Next let one through
	srv.SetFault(allauthtest.Fault{Status: http.StatusTooManyRequests})
	wantError(t, auth(a, withToken(srv.IssueToken("bob"))), http.StatusServiceUnavailable, CodeUpstreamUnavailable)
	srv.SetFault(allauthtest.Fault{})

	s := a.Metrics()
	want := map[Outcome]uint64{
		OutcomeAuthenticated:   2,
		OutcomeGone:            1,
		OutcomeUnauthenticated: 2,
		OutcomeSkipped:         1,
		OutcomeUpstreamError:   1,
		OutcomeAnonymous:       0,
	}
	for o, n := range want {
		if s.Requests[o] != n {
			t.Errorf("Requests[%v] = %d, want %d", o, s.Requests[o], n)
		}
	}
	// 200 and 410 are allauth's own answers; the 429 is a 4xx too, but a
	// failure.
	if c := s.Upstream[Class2xx].Count; c != 1 {
		t.Errorf("2xx lookups = %d, want 1", c)
	}
	if c := s.Upstream[Class4xx].Count; c != 2 {
		t.Errorf("4xx lookups = %d, want 2 (410, 429)", c)
	}
	if c := s.Upstream[Class5xx].Count + s.Upstream[ClassError].Count + s.Upstream[Class3xx].Count; c != 0 {
		t.Errorf("other lookups = %d, want 0", c)
	}
	if s.UpstreamErrors != 1 {
		t.Errorf("UpstreamErrors = %d, want 1", s.UpstreamErrors)
	}
	h := s.Upstream[Class2xx]
	if h.Sum <= 0 || h.Sum > 2*time.Second || h.Buckets[len(h.Buckets)-1] != h.Count {
		t.Errorf("2xx histogram = %+v", h)
	}
	if s.LastAnswer.Before(before) || s.LastError.Before(s.LastAnswer) || time.Since(s.LastError) > time.Minute {
		t.Errorf("LastAnswer %v, LastError %v (test began %v)", s.LastAnswer, s.LastError, before)
	}
}

func TestObserve_Names(t *testing.T) {
	t.Parallel()
	outcomes := map[Outcome]string{
		OutcomeAuthenticated: "authenticated", OutcomeAnonymous: "anonymous",
		OutcomeUnauthenticated: "unauthenticated", OutcomeGone: "gone",
		OutcomeUpstreamError: "upstream_error", OutcomeSkipped: "skipped",
	}
	var s Metrics
	if len(s.Requests) != len(outcomes) {
		t.Errorf("Metrics.Requests has %d outcomes, want %d", len(s.Requests), len(outcomes))
	}
	for o, name := range outcomes {
		if o.String() != name {
			t.Errorf("Outcome(%d) = %q, want %q", o, o.String(), name)
		}
	}
	if got := Outcome(200).String(); got == "" || got == "authenticated" {
		t.Errorf("an unknown outcome is named %q", got)
	}
	for status, class := range map[int]string{0: "error", 200: "2xx", 302: "3xx", 401: "4xx", 410: "4xx", 429: "4xx", 502: "5xx", 999: "error"} {
		if got := ClassOf(status).String(); got != class {
			t.Errorf("ClassOf(%d) = %q, want %q", status, got, class)
		}
	}
	if got := StatusClass(200).String(); got == "" || got == "2xx" {
		t.Errorf("an unknown class is named %q", got)
	}
	b := UpstreamBuckets()
	for i := 1; i < len(b); i++ {
		if b[i] <= b[i-1] {
			t.Errorf("buckets not increasing: %v", b)
		}
	}
	b[0] = time.Hour // a copy: the Authenticator's buckets stay put
	if UpstreamBuckets()[0] == time.Hour {
		t.Error("UpstreamBuckets returns the Authenticator's own array")
	}
}

// The histogram puts a duration in the first bucket that holds it; past the
// last, only in Count.
func TestObserve_Histogram(t *testing.T) {
	t.Parallel()
	_, a := setup(t, Config{})
	b := UpstreamBuckets()
	a.obs.upstream[Class2xx].observe(b[0])
	a.obs.upstream[Class2xx].observe(b[0] + 1)
	a.obs.upstream[Class2xx].observe(b[len(b)-1] + time.Second)
	h := a.Metrics().Upstream[Class2xx]
	if h.Count != 3 || h.Buckets[0] != 1 || h.Buckets[1] != 2 || h.Buckets[len(b)-1] != 2 {
		t.Errorf("histogram = %+v", h)
	}
}

// logLine is one line of slog's JSON handler.
type logLine struct {
	Level    string `json:"level"`
	Msg      string `json:"msg"`
	Kind     string `json:"kind"`
	Key      string `json:"key"`
	Status   *int   `json:"status"`
	Class    string `json:"class"`
	Duration *int64 `json:"duration"` // ns
	Error    string `json:"error"`
	From     string `json:"from"`
	To       string `json:"to"`
}

func parseLogs(t *testing.T, raw string) []logLine {
	t.Helper()
	var out []logLine
	sc := bufio.NewScanner(strings.NewReader(raw))
	for sc.Scan() {
		var l logLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

// The log: one WARN line per failed lookup at allauth (not per request:
// coalesced requests share one), with the status, its class and the
// duration, and the key's hash prefix for correlation; no line for hits,
// successful lookups or allauth's own 401/410; never a token.
func TestObserve_Logs(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	var logs logBuffer
	clock := newTestClock()
	a := newCore(t, srv, Config{
		Logger:       slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Sources:      []Source{FromHeader(HeaderSessionToken), FromAuthHeader("Bearer")},
		StaleIfError: time.Minute,
		CacheTTL:     50 * time.Millisecond,
		RefreshAhead: -1,
		now:          clock.Now,
	})
	alice, bob := srv.IssueToken("alice"), srv.IssueToken("bob")
	var tokens []string

	// Quiet: lookups that succeed, hits, allauth's 401 and 410, no credential.
	for range 3 {
		wantUser(t, auth(a, withToken(alice)), "alice")
		wantUser(t, auth(a, withToken(bob)), "bob")
		wantError(t, auth(a, withToken("abcdefghijklmnopqrstuvwxyz012345")), http.StatusGone, CodeSessionGone)
		wantError(t, auth(a, bearer("not-a-session")), http.StatusUnauthorized, CodeNotAuthenticated)
		wantError(t, auth(a, get()), http.StatusUnauthorized, CodeNotAuthenticated)
	}
	tokens = append(tokens, alice, bob, "abcdefghijklmnopqrstuvwxyz012345", "not-a-session")
	if s := logs.String(); s != "" {
		t.Fatalf("log lines without a failure:\n%s", s)
	}

	// Loud: three failed lookups, each one line.
	srv.SetFault(allauthtest.Fault{Status: http.StatusBadGateway})
	for range 2 {
		tok := srv.IssueToken("alice")
		tokens = append(tokens, tok)
		wantError(t, auth(a, withToken(tok)), http.StatusServiceUnavailable, CodeUpstreamUnavailable)
	}
	srv.SetFault(allauthtest.Fault{Drop: true})
	dropped := srv.IssueToken("bob")
	tokens = append(tokens, dropped)
	wantError(t, auth(a, bearer(dropped)), http.StatusServiceUnavailable, CodeUpstreamUnavailable)

	// Ten requests for one token while allauth is slow and failing: one
	// lookup, one line.
	srv.SetFault(allauthtest.Fault{Delay: 100 * time.Millisecond, Status: http.StatusServiceUnavailable})
	burst := srv.IssueToken("alice")
	tokens = append(tokens, burst)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { auth(a, withToken(burst)) })
	}
	wg.Wait()

	// A stale session served while allauth fails: still one line for the
	// failed lookup.
	clock.Add(60 * time.Millisecond)
	wantUser(t, auth(a, withToken(alice)), "alice")

	// The fifth failure also trips the circuit breaker: the next miss makes
	// it ping allauth, which fails too, so it opens: one line of its own,
	// and none for that miss, refused without a lookup.
	refused := srv.IssueToken("bob")
	tokens = append(tokens, refused)
	wantError(t, auth(a, withToken(refused)), http.StatusServiceUnavailable, CodeUpstreamUnavailable)
	var lines []logLine
	var breakerLines []logLine
	for _, l := range parseLogs(t, logs.String()) {
		if l.Msg == "allauth circuit breaker" {
			breakerLines = append(breakerLines, l)
			continue
		}
		lines = append(lines, l)
	}
	if len(breakerLines) != 1 || breakerLines[0].Level != "WARN" || breakerLines[0].From != "closed" || breakerLines[0].To != "open" {
		t.Errorf("breaker lines %+v, want one WARN closed → open:\n%s", breakerLines, logs.String())
	}
	wantClasses := []string{"5xx", "5xx", "error", "5xx", "5xx"}
	wantKinds := []introspect.Kind{introspect.SessionToken, introspect.SessionToken, introspect.Bearer, introspect.SessionToken, introspect.SessionToken}
	wantTokens := []string{tokens[4], tokens[5], dropped, burst, alice}
	if len(lines) != len(wantClasses) {
		t.Fatalf("%d log lines, want %d:\n%s", len(lines), len(wantClasses), logs.String())
	}
	for i, l := range lines {
		key := cache.NewKey(cache.NewScope(wantKinds[i], a.client.Endpoint(wantKinds[i])), wantTokens[i])
		if l.Level != "WARN" || l.Msg != "allauth lookup failed" || l.Kind != wantKinds[i].String() {
			t.Errorf("line %d: %+v", i, l)
		}
		if l.Key != key.Short() {
			t.Errorf("line %d: key %q, want the hash prefix %q", i, l.Key, key.Short())
		}
		if l.Class != wantClasses[i] || l.Status == nil || ClassOf(*l.Status).String() != l.Class {
			t.Errorf("line %d: status %v class %q, want class %q", i, l.Status, l.Class, wantClasses[i])
		}
		if l.Duration == nil || *l.Duration <= 0 || time.Duration(*l.Duration) > 3*time.Second {
			t.Errorf("line %d: duration %v", i, l.Duration)
		}
		if l.Error == "" {
			t.Errorf("line %d: no error text", i)
		}
	}
	if l := lines[3]; *l.Duration < int64(100*time.Millisecond) {
		t.Errorf("the slow lookup logged %v, want at least the 100ms delay", time.Duration(*l.Duration))
	}
	raw := logs.String()
	for _, tok := range tokens {
		if strings.Contains(raw, tok) {
			t.Errorf("the log holds a token: %q in\n%s", tok, raw)
		}
	}
	if s := a.Metrics().Cache; s.StaleServes != 1 {
		t.Errorf("StaleServes = %d, want 1", s.StaleServes)
	}
}

// Counting outcomes keeps a cache hit free of allocations, and a hit never
// asks the request for its context.
func TestObserve_HitAllocatesNothing(t *testing.T) {
	srv, a := setup(t, Config{})
	r := withToken(srv.IssueToken("alice"))
	wantUser(t, auth(a, r), "alice")
	r.asked = 0
	if n := testing.AllocsPerRun(1000, func() { auth(a, r) }); n != 0 {
		t.Errorf("a cache hit allocates %v times", n)
	}
	if r.asked != 0 {
		t.Errorf("cache hits asked for the request's context %d times", r.asked)
	}
	if got := a.Metrics().Requests[OutcomeAuthenticated]; got < 1001 {
		t.Errorf("authenticated = %d, want every request counted", got)
	}
}
