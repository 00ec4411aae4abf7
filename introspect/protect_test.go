package introspect_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/testwait"
	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// fakeClock is a clock the test moves by hand, so that cool-downs are
// checked exactly and no assertion depends on wall-clock time.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// transitions records the breaker's OnStateChange calls.
type transitions struct {
	mu  sync.Mutex
	got []string
}

func (tr *transitions) record(from, to introspect.BreakerState) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.got = append(tr.got, from.String()+"->"+to.String())
}

func (tr *transitions) list() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.got)
}

// upstreamErr returns err as an *UpstreamError, failing the test otherwise.
func upstreamErr(t *testing.T, err error) *introspect.UpstreamError {
	t.Helper()
	var up *introspect.UpstreamError
	if !errors.As(err, &up) {
		t.Fatalf("err = %v (%T), want an *UpstreamError", err, err)
	}
	return up
}

func wantBreaker(t *testing.T, c *introspect.Client, want introspect.BreakerState) introspect.Protection {
	t.Helper()
	p := c.Protection()
	if p.Breaker != want {
		t.Fatalf("breaker %s, want %s (%+v)", p.Breaker, want, p)
	}
	return p
}

// With allauth hanging: each of the first Failures lookups waits Timeout;
// then the breaker opens and lookups fail at once, with Retry-After = the
// cool-down left, and allauth sees nothing. After the cool-down exactly one
// probe goes through while the others still fail at once; its failure
// re-opens the breaker; once allauth is back the next probe closes it.
func TestBreakerOpensProbesAndCloses(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	var tr transitions
	const coolDown = 10 * time.Second
	srv, c := newStandIn(t, introspect.Config{
		// Long enough that the good probe at the end answers in time on a
		// loaded CI machine; each of the 4 hanging lookups costs it.
		Timeout: time.Second,
		Breaker: introspect.BreakerConfig{Failures: 3, CoolDown: coolDown, Now: clock.Now, OnStateChange: tr.record},
	})
	srv.AddUser(allauthtest.User{Username: "alice"})
	srv.SetFault(allauthtest.Fault{Delay: time.Hour})
	ctx := context.Background()

	for i := range 3 {
		_, err := c.Session(ctx, sessionToken(srv.IssueToken("alice")))
		if up := upstreamErr(t, err); !up.Timeout() || errors.Is(err, introspect.ErrBreakerOpen) {
			t.Fatalf("failure %d: %v, want a timeout", i+1, err)
		}
		if i < 2 {
			if p := wantBreaker(t, c, introspect.BreakerClosed); p.BreakerFailures != i+1 {
				t.Fatalf("after %d failures: run %d", i+1, p.BreakerFailures)
			}
		}
	}
	p := wantBreaker(t, c, introspect.BreakerOpen)
	if p.BreakerRetryAfter != coolDown || p.BreakerOpens != 1 {
		t.Fatalf("just opened: %+v", p)
	}
	if got := srv.SessionCalls(); got != 3 {
		t.Fatalf("allauth saw %d lookups, want 3", got)
	}

	// Open: at once, no request, Retry-After = the cool-down left.
	for _, step := range []struct{ advance, left time.Duration }{
		{0, coolDown}, {4 * time.Second, 6 * time.Second}, {5 * time.Second, time.Second},
	} {
		clock.Advance(step.advance)
		left := step.left
		_, err := c.Session(ctx, sessionToken(srv.IssueToken("alice")))
		up := upstreamErr(t, err)
		if !errors.Is(err, introspect.ErrBreakerOpen) || up.RetryAfter != left || up.Status != 0 {
			t.Fatalf("open, %v left: %+v", left, up)
		}
	}
	if got := srv.SessionCalls(); got != 3 {
		t.Fatalf("allauth saw %d lookups while the breaker was open, want none", got-3)
	}

	// Half-open: one probe. It hangs; every lookup while it is in flight
	// fails at once. Whether those run before or after the probe times
	// out, allauth sees exactly one request.
	clock.Advance(time.Second)
	wantBreaker(t, c, introspect.BreakerHalfOpen)
	probeDone := make(chan error, 1)
	go func() {
		_, err := c.Session(ctx, sessionToken(srv.IssueToken("alice")))
		probeDone <- err
	}()
	testwait.Until(t, 10*time.Second, "the probe to reach allauth", func() bool { return srv.SessionCalls() != 3 })
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.Session(ctx, sessionToken(srv.IssueToken("alice")))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if !errors.Is(err, introspect.ErrBreakerOpen) || upstreamErr(t, err).RetryAfter <= 0 {
			t.Fatalf("a lookup beside the probe: %v", err)
		}
	}
	if err := <-probeDone; !upstreamErr(t, err).Timeout() {
		t.Fatalf("probe: %v, want a timeout", err)
	}
	if got := srv.SessionCalls(); got != 4 {
		t.Fatalf("half-open: allauth saw %d lookups, want exactly 1", got-3)
	}
	// The failed probe re-opened it for a full cool-down.
	if p := wantBreaker(t, c, introspect.BreakerOpen); p.BreakerRetryAfter != coolDown || p.BreakerOpens != 2 {
		t.Fatalf("after a failed probe: %+v", p)
	}

	// allauth is back: the next probe closes the breaker, and lookups flow.
	srv.SetFault(allauthtest.Fault{})
	clock.Advance(coolDown)
	if s, err := c.Session(ctx, sessionToken(srv.IssueToken("alice"))); err != nil || s.User.Username != "alice" {
		t.Fatalf("probe after recovery: %v", err)
	}
	wantBreaker(t, c, introspect.BreakerClosed)
	for range 5 {
		if _, err := c.Session(ctx, sessionToken(srv.IssueToken("alice"))); err != nil {
			t.Fatalf("after closing: %v", err)
		}
	}
	p = c.Protection()
	if p.BreakerRejections != 3+20 || p.BreakerOpens != 2 || p.InFlight != 0 {
		t.Errorf("protection at the end: %+v", p)
	}
	want := []string{"closed->open", "half_open->open", "half_open->closed"}
	if got := tr.list(); !slices.Equal(got, want) {
		t.Errorf("state changes %q, want %q", got, want)
	}
}

// allauth's own 401 and 410 are answers, not failures: they never open the
// breaker, and they end a run of failures. Credentials refused locally
// make no request and count neither way.
func TestBreakerIgnoresAuthAnswers(t *testing.T) {
	t.Parallel()
	srv, c := newStandIn(t, introspect.Config{Breaker: introspect.BreakerConfig{Failures: 2, CoolDown: time.Hour}})
	srv.AddUser(allauthtest.User{Username: "alice"})
	srv.AddUser(allauthtest.User{Username: "carol", Inactive: true})
	srv.AddUser(allauthtest.User{Username: "erin", Email: "erin@example.com", PendingEmailVerification: true})
	ctx := context.Background()
	inactive, pending := srv.IssueToken("carol"), srv.IssueToken("erin")

	for i := range 50 {
		cred := sessionToken(fmt.Sprintf("%032d", i))
		if _, err := c.Session(ctx, cred); !errors.Is(err, introspect.ErrSessionGone) {
			t.Fatalf("unknown token: %v, want 410", err)
		}
	}
	for _, cred := range []introspect.Credential{sessionToken(inactive), sessionToken(pending)} {
		if _, err := c.Session(ctx, cred); !errors.Is(err, introspect.ErrUnauthenticated) {
			t.Fatalf("%v: %v, want 401", cred, err)
		}
	}
	wantBreaker(t, c, introspect.BreakerClosed)

	// failure, 410, failure: the 410 ended the run.
	fail := func() {
		t.Helper()
		srv.SetFault(allauthtest.Fault{Status: http.StatusBadGateway})
		if _, err := c.Session(ctx, sessionToken(srv.IssueToken("alice"))); errors.Is(err, introspect.ErrBreakerOpen) || upstreamErr(t, err).Status != 502 {
			t.Fatalf("want allauth's 502: %v", err)
		}
		srv.SetFault(allauthtest.Fault{})
	}
	fail()
	if _, err := c.Session(ctx, sessionToken("0123456789abcdefghijklmnopqrstuv")); !errors.Is(err, introspect.ErrSessionGone) {
		t.Fatalf("410: %v", err)
	}
	fail()
	wantBreaker(t, c, introspect.BreakerClosed)

	// failure, local rejections, failure: the run goes on and opens it.
	for _, cred := range []introspect.Credential{sessionToken(""), sessionToken("bad\x00token"), sessionToken(string(make([]byte, 5000)))} {
		if _, err := c.Session(ctx, cred); err == nil {
			t.Fatal("a malformed credential was accepted")
		}
	}
	if p := wantBreaker(t, c, introspect.BreakerClosed); p.BreakerFailures != 1 {
		t.Fatalf("run after local rejections = %d, want 1", p.BreakerFailures)
	}
	fail()
	wantBreaker(t, c, introspect.BreakerOpen)
}

// Every kind of upstream failure counts: no answer in time, refused,
// dropped, 5xx, 429, a body that is not allauth's JSON.
func TestBreakerFailureKinds(t *testing.T) {
	t.Parallel()
	for name, fault := range map[string]allauthtest.Fault{
		"timeout": {Delay: time.Hour},
		"dropped": {Drop: true},
		"500":     {Status: http.StatusInternalServerError},
		"503":     {Status: http.StatusServiceUnavailable, RetryAfter: "7"},
		"429":     {Status: http.StatusTooManyRequests},
		"html":    {Status: http.StatusOK, Body: "<html>hi</html>", ContentType: "text/html"},
		"json":    {Body: `{"status": 200, "data": {}}`},
		"refused": {}, // the server is closed below
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, c := newStandIn(t, introspect.Config{
				Timeout: 100 * time.Millisecond,
				Breaker: introspect.BreakerConfig{Failures: 1, CoolDown: time.Hour},
			})
			srv.AddUser(allauthtest.User{Username: "alice"})
			tok := srv.IssueToken("alice")
			srv.SetFault(fault)
			if name == "refused" {
				srv.Close()
			}
			_, err := c.Session(context.Background(), sessionToken(tok))
			if errors.Is(err, introspect.ErrBreakerOpen) {
				t.Fatalf("first failure refused by the breaker: %v", err)
			}
			_ = upstreamErr(t, err)
			wantBreaker(t, c, introspect.BreakerOpen)
		})
	}
}

// A lookup the caller cancelled says nothing about allauth: it neither
// opens the breaker nor spends the half-open probe. A caller's deadline
// does count, as allauth did not answer within it.
func TestBreakerCallerCancel(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	srv, c := newStandIn(t, introspect.Config{
		Timeout: 5 * time.Second,
		Breaker: introspect.BreakerConfig{Failures: 1, CoolDown: time.Second, Now: clock.Now},
	})
	srv.AddUser(allauthtest.User{Username: "alice"})
	srv.SetFault(allauthtest.Fault{Delay: time.Hour})
	cancelled := func() {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		before := srv.SessionCalls()
		errc := make(chan error, 1)
		go func() {
			_, err := c.Session(ctx, sessionToken(srv.IssueToken("alice")))
			errc <- err
		}()
		// Cancel once the lookup is at allauth.
		testwait.Until(t, 10*time.Second, "the lookup to reach allauth", func() bool { return srv.SessionCalls() != before })
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled lookup: %v", err)
		}
	}
	cancelled()
	wantBreaker(t, c, introspect.BreakerClosed)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Session(ctx, sessionToken(srv.IssueToken("alice"))); !upstreamErr(t, err).Timeout() {
		t.Fatalf("caller's deadline: %v", err)
	}
	wantBreaker(t, c, introspect.BreakerOpen)

	// A cancelled probe leaves the breaker half-open for the next one.
	clock.Advance(time.Second)
	cancelled()
	wantBreaker(t, c, introspect.BreakerHalfOpen)
	srv.SetFault(allauthtest.Fault{})
	if _, err := c.Session(context.Background(), sessionToken(srv.IssueToken("alice"))); err != nil {
		t.Fatalf("the next probe: %v", err)
	}
	wantBreaker(t, c, introspect.BreakerClosed)
}

// Breaker.Disabled: every lookup asks allauth, however often it failed.
func TestBreakerDisabled(t *testing.T) {
	t.Parallel()
	srv, c := newStandIn(t, introspect.Config{Breaker: introspect.BreakerConfig{Disabled: true, Failures: 1}})
	srv.AddUser(allauthtest.User{Username: "alice"})
	srv.SetFault(allauthtest.Fault{Status: http.StatusBadGateway})
	for range 20 {
		_, err := c.Session(context.Background(), sessionToken(srv.IssueToken("alice")))
		if errors.Is(err, introspect.ErrBreakerOpen) || upstreamErr(t, err).Status != 502 {
			t.Fatalf("want allauth's 502: %v", err)
		}
	}
	if got := srv.SessionCalls(); got != 20 {
		t.Errorf("allauth saw %d of 20 lookups", got)
	}
	if p := c.Protection(); !p.BreakerDisabled || p.Breaker != introspect.BreakerClosed || p.BreakerRejections != 0 {
		t.Errorf("protection: %+v", p)
	}
}

// MaxConcurrentLookups: beyond it a lookup waits for a slot within its own
// deadline and then fails with ErrTooManyLookups and a Retry-After, without
// a request; allauth never sees more than the limit at once.
func TestMaxConcurrentLookups(t *testing.T) {
	t.Parallel()
	const limit = 4
	srv, c := newStandIn(t, introspect.Config{
		Timeout:              5 * time.Second,
		MaxConcurrentLookups: limit,
		Breaker:              introspect.BreakerConfig{Disabled: true},
	})
	srv.AddUser(allauthtest.User{Username: "alice"})
	srv.SetFault(allauthtest.Fault{Delay: time.Hour})

	// limit lookups hold every slot.
	holders, stopHolders := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range limit {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = c.Session(holders, sessionToken(srv.IssueToken("alice")))
		}()
	}
	testwait.Until(t, 10*time.Second, "every slot held", func() bool { return srv.InFlight() >= limit })
	// Others wait for a slot...
	waiters, stopWaiters := context.WithCancel(context.Background())
	errs := make([]error, 6)
	var ww sync.WaitGroup
	for i := range errs {
		ww.Add(1)
		go func() {
			defer ww.Done()
			_, errs[i] = c.Session(waiters, sessionToken(srv.IssueToken("alice")))
		}()
	}
	testwait.Until(t, 10*time.Second, "the waiters", func() bool { return c.Protection().Waiting >= int64(len(errs)) })
	if p := c.Protection(); p.InFlight != limit || p.MaxConcurrentLookups != limit {
		t.Errorf("while full: %+v", p)
	}
	// ...until their own deadline, here the caller's.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	_, err := c.Session(ctx, sessionToken(srv.IssueToken("alice")))
	cancel()
	if up := upstreamErr(t, err); !errors.Is(err, introspect.ErrTooManyLookups) || up.RetryAfter != time.Second || up.Status != 0 {
		t.Fatalf("no slot before the deadline: %+v", up)
	}
	stopWaiters()
	ww.Wait()
	for _, err := range errs {
		if !errors.Is(err, introspect.ErrTooManyLookups) {
			t.Fatalf("a waiter: %v", err)
		}
	}
	if got, peak := srv.SessionCalls(), srv.MaxInFlight(); got != limit || peak != limit {
		t.Errorf("allauth saw %d lookups, %d at once; want %d", got, peak, limit)
	}
	stopHolders()
	wg.Wait()
	p := c.Protection()
	if p.InFlight != 0 || p.Waiting != 0 || p.SlotRejections != uint64(len(errs))+1 {
		t.Errorf("after: %+v", p)
	}

	// A freed slot is taken again.
	srv.SetFault(allauthtest.Fault{})
	if _, err := c.Session(context.Background(), sessionToken(srv.IssueToken("alice"))); err != nil {
		t.Fatal(err)
	}
}

// The default is 64 slots; a negative MaxConcurrentLookups is unlimited.
func TestMaxConcurrentLookupsDefaultAndUnlimited(t *testing.T) {
	t.Parallel()
	_, c := newStandIn(t, introspect.Config{})
	if p := c.Protection(); p.MaxConcurrentLookups != 64 ||
		p.BreakerDisabled || p.Breaker != introspect.BreakerClosed {
		t.Errorf("defaults: %+v", p)
	}

	srv, c := newStandIn(t, introspect.Config{MaxConcurrentLookups: -1, Timeout: 5 * time.Second})
	srv.AddUser(allauthtest.User{Username: "alice"})
	srv.SetFault(allauthtest.Fault{Delay: time.Hour})
	const n = 100
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = c.Session(ctx, sessionToken(srv.IssueToken("alice")))
		}()
	}
	testwait.Until(t, 10*time.Second, "the lookups in flight", func() bool { return srv.InFlight() >= n })
	if p := c.Protection(); p.MaxConcurrentLookups != -1 || p.InFlight != n {
		t.Errorf("unlimited: %+v", p)
	}
	cancel()
	wg.Wait()
}
