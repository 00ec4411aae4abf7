package headless

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/allauthgo/headless/internal/allauth"
	"github.com/allauthgo/headless/internal/cache"
	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// lookupSpanName is the span of one lookup at allauth (docs/tracing.md).
const lookupSpanName = "allauth.session_lookup"

// tracer is an SDK TracerProvider whose ended spans a SpanRecorder keeps.
type tracer struct {
	tp  *sdktrace.TracerProvider
	rec *tracetest.SpanRecorder
}

func newTracer(tb testing.TB) *tracer {
	tb.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tb.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return &tracer{tp: tp, rec: rec}
}

// auth authenticates r inside a request span ("GET /", a server span), as
// an app's tracing middleware would start it, in r's context.
func (tr *tracer) auth(a *Authenticator, r *req) Result {
	ctx, span := tr.tp.Tracer("app").Start(context.Background(), "GET /", trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	r.ctx = ctx
	return a.Authenticate(r, false)
}

// spans returns the ended spans named name.
func (tr *tracer) spans(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range tr.rec.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// lookups returns the ended lookup spans.
func (tr *tracer) lookups() []sdktrace.ReadOnlySpan { return tr.spans(lookupSpanName) }

// parentOf returns the ended span that is s's parent.
func (tr *tracer) parentOf(tb testing.TB, s sdktrace.ReadOnlySpan) sdktrace.ReadOnlySpan {
	tb.Helper()
	for _, p := range tr.rec.Ended() {
		if p.SpanContext().SpanID() == s.Parent().SpanID() && p.SpanContext().TraceID() == s.SpanContext().TraceID() {
			return p
		}
	}
	tb.Fatalf("span %s has no recorded parent (parent %v)", s.Name(), s.Parent())
	return nil
}

// attrs returns a span's attributes by key.
func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// wantAttrs checks a span's attributes: each of want by its string form
// (Value.String), and that none of absent is set.
func wantAttrs(tb testing.TB, s sdktrace.ReadOnlySpan, want map[string]string, absent ...string) {
	tb.Helper()
	got := attrs(s)
	for k, v := range want {
		if g, ok := got[attribute.Key(k)]; !ok || g.String() != v {
			tb.Errorf("%s: %s = %q (set %v), want %q; all: %v", s.Name(), k, g.String(), ok, v, s.Attributes())
		}
	}
	for _, k := range absent {
		if g, ok := got[attribute.Key(k)]; ok {
			tb.Errorf("%s: %s = %q, want it unset", s.Name(), k, g.String())
		}
	}
}

// traceparent is the W3C header that names s as the parent.
func traceparent(s sdktrace.ReadOnlySpan) string {
	sc := s.SpanContext()
	return fmt.Sprintf("00-%s-%s-%s", sc.TraceID(), sc.SpanID(), sc.TraceFlags())
}

// noSecrets fails if a token, or a cache key derived from one (hex or its
// short form), appears anywhere in any span: name, attributes, events and
// their attributes, status, links.
func noSecrets(tb testing.TB, tr *tracer, client *allauth.Client, tokens ...string) {
	tb.Helper()
	var secrets []string
	for _, tok := range tokens {
		secrets = append(secrets, tok)
		for _, kind := range []introspect.Kind{introspect.SessionToken, introspect.Bearer, introspect.Cookie} {
			k := cache.NewKey(cache.NewScope(kind, client.Endpoint(kind)), tok)
			secrets = append(secrets, k.String(), k.Short())
		}
	}
	spans := tr.rec.Ended()
	if len(spans) == 0 {
		tb.Fatal("no spans to scan")
	}
	for _, s := range spans {
		var text strings.Builder
		fmt.Fprintln(&text, s.Name(), s.Status().Description)
		for _, kv := range s.Attributes() {
			fmt.Fprintln(&text, kv.Key, kv.Value.String())
		}
		for _, e := range s.Events() {
			fmt.Fprintln(&text, e.Name)
			for _, kv := range e.Attributes {
				fmt.Fprintln(&text, kv.Key, kv.Value.String())
			}
		}
		for _, l := range s.Links() {
			for _, kv := range l.Attributes {
				fmt.Fprintln(&text, kv.Key, kv.Value.String())
			}
		}
		for _, secret := range secrets {
			if strings.Contains(text.String(), secret) {
				tb.Errorf("span %s holds a token or its hash %q:\n%s", s.Name(), secret, text.String())
			}
		}
	}
}

// Each outcome of a lookup is one client span, a child of the request's
// span, with the credential, outcome, tier, status and breaker attributes;
// allauth receives the lookup span's traceparent; a failure records its
// error and sets the status to Error; a cache hit (positive or negative)
// starts no span. No span holds a token or its hash.
func TestTracing_Outcomes(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	tr := newTracer(t)
	m := newCore(t, srv, Config{
		Sources:        []Source{FromHeader(HeaderSessionToken), FromAuthHeader("Bearer"), FromCookie("sessionid")},
		TracerProvider: tr.tp,
		Breaker:        introspect.BreakerConfig{Disabled: true},
	})
	srv.AddUser(allauthtest.User{ID: 5, Username: "eve", Password: "pw"})
	inactive := srv.IssueToken("eve")
	srv.SetActive("eve", false)
	alice, aliceCookie, bobBearer := srv.IssueToken("alice"), srv.IssueCookie("alice"), srv.IssueToken("bob")
	gone, failing, dropped := "abcdefghijklmnopqrstuvwxyz012345", srv.IssueToken("bob"), srv.IssueToken("bob")
	app1, browser := "/_allauth/app/v1/auth/session", "/_allauth/browser/v1/auth/session"
	port := strings.TrimPrefix(srv.URL, "http://127.0.0.1:")

	cases := []struct {
		name   string
		req    *req
		fault  allauthtest.Fault
		status int
		want   map[string]string
		absent []string
		err    bool
	}{
		{"200", withToken(alice), allauthtest.Fault{}, 200, map[string]string{
			"allauth.credential": "session_token", "allauth.outcome": "authenticated", "allauth.endpoint": app1,
			"allauth.cache.tier": "none", "allauth.coalesced": "false", "allauth.stale": "false",
			"allauth.status_class": "2xx", "http.response.status_code": "200", "http.request.method": "GET",
			"allauth.breaker.state": "disabled", "server.address": "127.0.0.1", "server.port": port,
		}, nil, false},
		{"cookie 200", withCookie("sessionid", aliceCookie), allauthtest.Fault{}, 200, map[string]string{
			"allauth.credential": "cookie", "allauth.outcome": "authenticated", "allauth.endpoint": browser,
			"allauth.status_class": "2xx",
		}, nil, false},
		{"bearer 401", bearer(bobBearer), allauthtest.Fault{}, 401, map[string]string{
			// The stand-in without WithJWT ignores Bearer tokens: 401.
			"allauth.credential": "bearer", "allauth.outcome": "not_authenticated", "allauth.endpoint": app1,
			"allauth.status_class": "4xx", "http.response.status_code": "401",
		}, nil, false},
		{"401", withToken(inactive), allauthtest.Fault{}, 401, map[string]string{
			"allauth.outcome": "not_authenticated", "allauth.status_class": "4xx", "http.response.status_code": "401",
		}, nil, false},
		{"410", withToken(gone), allauthtest.Fault{}, 410, map[string]string{
			"allauth.outcome": "session_gone", "allauth.status_class": "4xx", "http.response.status_code": "410",
		}, nil, false},
		{"503", withToken(failing), allauthtest.Fault{Status: 503}, 503, map[string]string{
			"allauth.outcome": "unavailable", "allauth.status_class": "5xx", "http.response.status_code": "503",
			"allauth.stale": "false", "allauth.cache.tier": "none",
		}, nil, true},
		{"no answer", withToken(dropped), allauthtest.Fault{Drop: true}, 503, map[string]string{
			"allauth.outcome": "unavailable", "allauth.status_class": "error",
		}, []string{"http.response.status_code"}, true},
	}
	for _, tc := range cases {
		before := len(tr.lookups())
		srv.SetFault(tc.fault)
		res := tr.auth(m, tc.req)
		srv.SetFault(allauthtest.Fault{})
		if status := statusOf(res); status != tc.status {
			t.Fatalf("%s: status %d, want %d (%s)", tc.name, status, tc.status, describe(res))
		}
		spans := tr.lookups()
		if len(spans) != before+1 {
			t.Fatalf("%s: %d new lookup spans, want 1", tc.name, len(spans)-before)
		}
		s := spans[len(spans)-1]
		if s.SpanKind() != trace.SpanKindClient {
			t.Errorf("%s: kind %v, want client", tc.name, s.SpanKind())
		}
		if p := tr.parentOf(t, s); p.Name() != "GET /" || p.SpanKind() != trace.SpanKindServer {
			t.Errorf("%s: parent %q (%v), want the request's span", tc.name, p.Name(), p.SpanKind())
		}
		if got := srv.LastSessionHeader("traceparent"); got != traceparent(s) {
			t.Errorf("%s: allauth got traceparent %q, want the lookup span's %q", tc.name, got, traceparent(s))
		}
		wantAttrs(t, s, tc.want, tc.absent...)
		var exceptions int
		for _, e := range s.Events() {
			if e.Name == "exception" {
				exceptions++
			}
		}
		if tc.err && (s.Status().Code != codes.Error || s.Status().Description == "" || exceptions != 1) {
			t.Errorf("%s: status %+v, %d exception events; want Error with the error recorded", tc.name, s.Status(), exceptions)
		}
		if !tc.err && (s.Status().Code != codes.Unset || exceptions != 0) {
			t.Errorf("%s: status %+v, %d exception events; want unset, none", tc.name, s.Status(), exceptions)
		}
	}

	// Hits, positive and negative: the request's span only.
	before, requests := len(tr.lookups()), len(tr.spans("GET /"))
	wantUser(t, tr.auth(m, withToken(alice)), "alice")
	wantError(t, tr.auth(m, withToken(gone)), http.StatusGone, "session_gone")
	if n := len(tr.lookups()) - before; n != 0 {
		t.Errorf("cache hits started %d lookup spans", n)
	}
	if n := len(tr.spans("GET /")) - requests; n != 2 {
		t.Errorf("%d request spans for 2 requests", n)
	}
	noSecrets(t, tr, m.client, alice, aliceCookie, bobBearer, inactive, gone, failing, dropped)
}

// A stale session served under StaleIfError is a failed lookup: outcome
// unavailable, allauth.stale true, the error recorded, status Error; the
// request goes on.
func TestTracing_Stale(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	tr := newTracer(t)
	const ttl = 50 * time.Millisecond
	clock := newTestClock()
	m := newCore(t, srv, Config{
		TracerProvider: tr.tp, CacheTTL: ttl, StaleIfError: time.Hour, RefreshAhead: -1,
		Breaker: introspect.BreakerConfig{Disabled: true}, now: clock.Now,
	})
	tok := srv.IssueToken("alice")
	wantUser(t, tr.auth(m, withToken(tok)), "alice")
	clock.Add(ttl + time.Millisecond)
	srv.SetFault(allauthtest.Fault{Status: 502})
	wantUser(t, tr.auth(m, withToken(tok)), "alice")

	spans := tr.lookups()
	if len(spans) != 2 {
		t.Fatalf("%d lookup spans, want 2", len(spans))
	}
	s := spans[1]
	wantAttrs(t, s, map[string]string{
		"allauth.outcome": "unavailable", "allauth.stale": "true", "allauth.cache.tier": "none",
		"allauth.status_class": "5xx", "http.response.status_code": "502",
	})
	if s.Status().Code != codes.Error || !strings.Contains(s.Status().Description, "502") {
		t.Errorf("status %+v, want Error naming the 502", s.Status())
	}
	noSecrets(t, tr, m.client, tok)
}

// A miss answered by the shared tier (another instance asked allauth) is a
// lookup span with allauth.cache.tier shared, and no call: no status.
func TestTracing_SharedTier(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	tr := newTracer(t)
	store := newMemStorage()
	a := newCore(t, srv, Config{TracerProvider: tr.tp, Storage: store})
	b := newCore(t, srv, Config{TracerProvider: tr.tp, Storage: store})
	tok := srv.IssueToken("alice")
	wantUser(t, tr.auth(a, withToken(tok)), "alice")
	wantUser(t, tr.auth(b, withToken(tok)), "alice")
	wantCalls(t, srv, 1)

	spans := tr.lookups()
	if len(spans) != 2 {
		t.Fatalf("%d lookup spans, want 2", len(spans))
	}
	wantAttrs(t, spans[0], map[string]string{"allauth.cache.tier": "none", "allauth.status_class": "2xx"})
	wantAttrs(t, spans[1], map[string]string{
		"allauth.cache.tier": "shared", "allauth.outcome": "authenticated", "allauth.breaker.state": "closed",
	}, "allauth.status_class", "http.response.status_code")
	if p := tr.parentOf(t, spans[1]); p.Name() != "GET /" {
		t.Errorf("parent %q", p.Name())
	}
	noSecrets(t, tr, a.client, tok)
}

// With the breaker open a lookup is refused without a call: outcome
// unavailable, breaker open, the error recorded, no status.
func TestTracing_BreakerOpen(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	tr := newTracer(t)
	m := newCore(t, srv, Config{
		TracerProvider: tr.tp,
		Breaker:        introspect.BreakerConfig{Failures: 1, CoolDown: time.Hour},
	})
	tok := srv.IssueToken("alice")
	srv.SetFault(allauthtest.Fault{Status: 503})
	wantError(t, tr.auth(m, withToken(tok)), http.StatusServiceUnavailable, "upstream_unavailable")
	// The failure tripped the breaker: this lookup makes it ping allauth,
	// which fails too, so it opens and refuses the lookup.
	wantError(t, tr.auth(m, withToken(tok)), http.StatusServiceUnavailable, "upstream_unavailable")
	wantCalls(t, srv, 2) // a lookup and the ping

	spans := tr.lookups()
	if len(spans) != 2 {
		t.Fatalf("%d lookup spans, want 2", len(spans))
	}
	wantAttrs(t, spans[0], map[string]string{"allauth.breaker.state": "closed", "allauth.status_class": "5xx"})
	wantAttrs(t, spans[1], map[string]string{"allauth.breaker.state": "open", "allauth.outcome": "unavailable"},
		"allauth.status_class", "http.response.status_code")
	if st := spans[1].Status(); st.Code != codes.Error || !strings.Contains(st.Description, "circuit breaker open") {
		t.Errorf("status %+v, want Error naming the breaker", st)
	}
	noSecrets(t, tr, m.client, tok)
}

// Concurrent misses for one token share one call: each request has its own
// lookup span, a child of its own request span; the one that made the call
// says coalesced false and carries allauth's status, and its span is the
// parent allauth was given; the others say coalesced true. Not parallel: it
// counts the goroutines waiting in the cache.
func TestTracing_Coalesced(t *testing.T) {
	const waiters = 5
	srv := newAllauth(t)
	// A gate in front of the stand-in holds the call until every waiter
	// has joined it.
	var arrived atomic.Int64
	release := make(chan struct{})
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		<-release
		srv.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(gate.Close)
	tr := newTracer(t)
	m := newCore(t, srv, Config{BaseURL: gate.URL, TracerProvider: tr.tp, Timeout: time.Minute})
	t.Cleanup(m.client.CloseIdleConnections)
	tok := srv.IssueToken("alice")

	var wg sync.WaitGroup
	results := make(chan Result, waiters+1)
	send := func() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- tr.auth(m, withToken(tok))
		}()
	}
	send()
	waitUntil(t, "the leader's call", func() bool { return arrived.Load() == 1 })
	for range waiters {
		send()
	}
	waitUntil(t, "every request in the cache's flight", func() bool { return parkedInCacheLoad() >= waiters+1 })
	close(release)
	wg.Wait()
	close(results)
	for r := range results {
		wantUser(t, r, "alice")
	}
	if n := arrived.Load(); n != 1 {
		t.Fatalf("allauth got %d calls, want 1", n)
	}

	spans := tr.lookups()
	if len(spans) != waiters+1 {
		t.Fatalf("%d lookup spans, want %d", len(spans), waiters+1)
	}
	parents := map[trace.SpanID]bool{}
	var leaders int
	for _, s := range spans {
		parents[tr.parentOf(t, s).SpanContext().SpanID()] = true
		if attrs(s)["allauth.coalesced"].AsBool() {
			wantAttrs(t, s, map[string]string{"allauth.outcome": "authenticated", "allauth.cache.tier": "none"},
				"allauth.status_class", "http.response.status_code")
			continue
		}
		leaders++
		wantAttrs(t, s, map[string]string{"allauth.status_class": "2xx", "http.response.status_code": "200"})
		if got := srv.LastSessionHeader("traceparent"); got != traceparent(s) {
			t.Errorf("allauth got traceparent %q, want the leader's lookup span %q", got, traceparent(s))
		}
	}
	if leaders != 1 || len(parents) != waiters+1 {
		t.Errorf("%d uncoalesced spans (want 1), %d distinct parents (want %d)", leaders, len(parents), waiters+1)
	}
	noSecrets(t, tr, m.client, tok)
}

// With no TracerProvider in the config, spans go to OpenTelemetry's global
// provider, even one set after the middleware was made. Not parallel: it
// sets the global provider (and restores a no-op one).
func TestTracing_GlobalProvider(t *testing.T) {
	srv := newAllauth(t)
	m := newCore(t, srv, Config{})
	tr := newTracer(t)
	otel.SetTracerProvider(tr.tp)
	t.Cleanup(func() { otel.SetTracerProvider(noop.NewTracerProvider()) })
	tok := srv.IssueToken("alice")
	wantUser(t, tr.auth(m, withToken(tok)), "alice")
	spans := tr.lookups()
	if len(spans) != 1 {
		t.Fatalf("%d lookup spans from the global provider, want 1", len(spans))
	}
	if got, want := srv.LastSessionHeader("traceparent"), traceparent(spans[0]); got != want {
		t.Errorf("traceparent %q, want %q", got, want)
	}
}

// parkedInCacheLoad counts the goroutines blocked in cache.(*Cache).Load's
// select: the requests waiting on a fetch.
func parkedInCacheLoad() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		header, _, _ := bytes.Cut(g, []byte("\n"))
		if bytes.Contains(header, []byte("[select")) && bytes.Contains(g, []byte("/cache.(*Cache).Load(")) {
			count++
		}
	}
	return count
}

// statusOf is the status a door answers res with.
func statusOf(res Result) int {
	if res.Err != nil {
		return res.Err.Status
	}
	return http.StatusOK
}

// A cache hit allocates nothing, with an SDK TracerProvider configured and
// the request's span not recording (sampled out), and with tracing off.
func TestTracing_HitAllocatesNothing(t *testing.T) {
	srv := newAllauth(t)
	tr := newTracer(t)
	sampledOut := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()), sdktrace.WithSpanProcessor(tr.rec))
	t.Cleanup(func() { _ = sampledOut.Shutdown(context.Background()) })
	tok := srv.IssueToken("alice")
	for name, tp := range map[string]trace.TracerProvider{"sdk, not sampled": sampledOut, "off (global default)": nil} {
		t.Run(name, func(t *testing.T) {
			a := newCore(t, srv, Config{TracerProvider: tp})
			ctx, span := sampledOut.Tracer("app").Start(context.Background(), "GET /")
			defer span.End()
			if span.IsRecording() {
				t.Fatal("the request's span records")
			}
			r := withToken(tok)
			r.ctx = ctx
			wantUser(t, auth(a, r), "alice") // the miss
			if n := testing.AllocsPerRun(200, func() { auth(a, r) }); n != 0 {
				t.Errorf("a hit allocates %v times, want 0", n)
			}
		})
	}
	if n := len(tr.rec.Ended()); n != 0 {
		t.Errorf("%d spans recorded by a provider that samples nothing", n)
	}
}
