package allauth_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/allauth"
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

func wantBreaker(t *testing.T, c *allauth.Client, want introspect.BreakerState) introspect.Protection {
	t.Helper()
	p := c.Protection()
	if p.Breaker != want {
		t.Fatalf("breaker %s, want %s (%+v)", p.Breaker, want, p)
	}
	return p
}

// With allauth hanging: each of the first Failures lookups waits Timeout;
// then the breaker trips, and the next lookup makes it ping allauth (a
// request without a credential) before it opens. The ping hangs too, so it
// opens: lookups fail at once, with Retry-After = the cool-down left, and
// allauth sees nothing. After the cool-down exactly one ping goes out while
// the others still fail at once; its failure re-opens the breaker; once
// allauth is back the next ping closes it and that lookup goes on.
func TestBreakerOpensProbesAndCloses(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	var tr transitions
	const coolDown = 10 * time.Second
	srv, c := newStandIn(t, allauth.Config{
		// Long enough that every request reaches the stand-in, and the good
		// ping and lookup at the end answer, in time on a loaded CI
		// machine; each of the 5 hanging requests costs it.
		Timeout: time.Second,
		Breaker: introspect.BreakerConfig{Failures: 3, CoolDown: coolDown, OnStateChange: tr.record}, Now: clock.Now,
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
			if p := wantBreaker(t, c, introspect.BreakerClosed); p.BreakerFailures != i+1 || p.BreakerLookups != i+1 {
				t.Fatalf("after %d failures: %+v", i+1, p)
			}
		}
	}
	// Tripped: not open yet, but the next lookup pings first.
	if p := wantBreaker(t, c, introspect.BreakerClosed); p.BreakerOpens != 0 || p.BreakerPings != 0 {
		t.Fatalf("tripped: %+v", p)
	}
	_, err := c.Session(ctx, sessionToken(srv.IssueToken("alice")))
	if up := upstreamErr(t, err); !errors.Is(err, introspect.ErrBreakerOpen) || up.RetryAfter != coolDown {
		t.Fatalf("the lookup whose ping failed: %+v", up)
	}
	if h := srv.LastSessionHeader("X-Session-Token"); h != "" {
		t.Fatalf("the ping carried a session token %q", h)
	}
	p := wantBreaker(t, c, introspect.BreakerOpen)
	if p.BreakerRetryAfter != coolDown || p.BreakerOpens != 1 || p.BreakerPings != 1 {
		t.Fatalf("just opened: %+v", p)
	}
	if got := srv.SessionCalls(); got != 4 {
		t.Fatalf("allauth saw %d requests, want 3 lookups and a ping", got)
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
	if got := srv.SessionCalls(); got != 4 {
		t.Fatalf("allauth saw %d requests while the breaker was open, want none", got-4)
	}

	// Half-open: one ping. It hangs; every lookup while it is in flight
	// fails at once. Whether those run before or after the ping times out,
	// allauth sees exactly one request, and no credential.
	clock.Advance(time.Second)
	wantBreaker(t, c, introspect.BreakerHalfOpen)
	probeDone := make(chan error, 1)
	go func() {
		_, err := c.Session(ctx, sessionToken(srv.IssueToken("alice")))
		probeDone <- err
	}()
	testwait.Until(t, 10*time.Second, "the ping to reach allauth", func() bool { return srv.SessionCalls() != 4 })
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
			t.Fatalf("a lookup beside the ping: %v", err)
		}
	}
	if err := <-probeDone; !errors.Is(err, introspect.ErrBreakerOpen) {
		t.Fatalf("the lookup that carried the ping: %v, want the breaker's refusal", err)
	}
	if got := srv.SessionCalls(); got != 5 {
		t.Fatalf("half-open: allauth saw %d requests, want exactly 1", got-4)
	}
	if h := srv.LastSessionHeader("X-Session-Token"); h != "" {
		t.Fatalf("the ping carried a session token %q", h)
	}
	// The failed ping re-opened it for a full cool-down.
	if p := wantBreaker(t, c, introspect.BreakerOpen); p.BreakerRetryAfter != coolDown || p.BreakerOpens != 2 {
		t.Fatalf("after a failed ping: %+v", p)
	}

	// allauth is back: the next ping closes the breaker, and the lookup
	// that carried it is answered.
	srv.SetFault(allauthtest.Fault{})
	clock.Advance(coolDown)
	if s, err := c.Session(ctx, sessionToken(srv.IssueToken("alice"))); err != nil || s.User.Username != "alice" {
		t.Fatalf("ping and lookup after recovery: %v", err)
	}
	if got := srv.SessionCalls(); got != 7 {
		t.Fatalf("recovery: allauth saw %d requests, want a ping and the lookup", got-5)
	}
	wantBreaker(t, c, introspect.BreakerClosed)
	for range 5 {
		if _, err := c.Session(ctx, sessionToken(srv.IssueToken("alice"))); err != nil {
			t.Fatalf("after closing: %v", err)
		}
	}
	p = c.Protection()
	if p.BreakerRejections != 1+3+20+1 || p.BreakerOpens != 2 || p.BreakerPings != 3 || p.InFlight != 0 {
		t.Errorf("protection at the end: %+v", p)
	}
	want := []string{"closed->open", "half_open->open", "half_open->closed"}
	if got := tr.list(); !slices.Equal(got, want) {
		t.Errorf("state changes %q, want %q", got, want)
	}
}

// Failures are a rate over the window, whatever the credential: allauth's
// own 401 and 410 are answers that outweigh failures, and credentials
// refused locally count neither way. With FailureRatio 0.5, 52 answers
// hold off 51 failures; the 52nd trips the breaker.
func TestBreakerCountsARate(t *testing.T) {
	t.Parallel()
	clock := newFakeClock() // the window does not slide
	srv, c := newStandIn(t, allauth.Config{Breaker: introspect.BreakerConfig{Failures: 2, CoolDown: time.Hour}, Now: clock.Now})
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
	for _, cred := range []allauth.Credential{sessionToken(inactive), sessionToken(pending)} {
		if _, err := c.Session(ctx, cred); !errors.Is(err, introspect.ErrUnauthenticated) {
			t.Fatalf("%v: %v, want 401", cred, err)
		}
	}
	for _, cred := range []allauth.Credential{sessionToken(""), sessionToken("bad\x00token"), sessionToken(string(make([]byte, 5000)))} {
		if _, err := c.Session(ctx, cred); err == nil {
			t.Fatal("a malformed credential was accepted")
		}
	}
	if p := wantBreaker(t, c, introspect.BreakerClosed); p.BreakerFailures != 0 || p.BreakerLookups != 52 {
		t.Fatalf("after 52 answers and 3 local refusals: %+v", p)
	}

	srv.SetFault(allauthtest.Fault{Status: http.StatusBadGateway})
	fail := func() {
		t.Helper()
		if _, err := c.Session(ctx, sessionToken(srv.IssueToken("alice"))); errors.Is(err, introspect.ErrBreakerOpen) || upstreamErr(t, err).Status != 502 {
			t.Fatalf("want allauth's 502: %v", err)
		}
	}
	for range 51 {
		fail()
	}
	if p := wantBreaker(t, c, introspect.BreakerClosed); p.BreakerFailures != 51 || p.BreakerLookups != 103 {
		t.Fatalf("51 failures against 52 answers: %+v", p)
	}
	fail()
	if p := wantBreaker(t, c, introspect.BreakerClosed); p.BreakerFailures != 0 || p.BreakerPings != 0 {
		t.Fatalf("tripped: %+v", p)
	}
	// The next lookup pings; allauth fails the ping too: it opens.
	if _, err := c.Session(ctx, sessionToken(srv.IssueToken("alice"))); !errors.Is(err, introspect.ErrBreakerOpen) {
		t.Fatalf("the ping failed: %v, want the breaker's refusal", err)
	}
	wantBreaker(t, c, introspect.BreakerOpen)
}

// Failures older than Window do not count: the window slides by a tenth
// of itself.
func TestBreakerWindowSlides(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	srv, c := newStandIn(t, allauth.Config{Breaker: introspect.BreakerConfig{Failures: 3, Window: 10 * time.Second}, Now: clock.Now})
	srv.AddUser(allauthtest.User{Username: "alice"})
	srv.SetFault(allauthtest.Fault{Status: http.StatusBadGateway})
	fail := func(n int) {
		t.Helper()
		for range n {
			if _, err := c.Session(context.Background(), sessionToken(srv.IssueToken("alice"))); upstreamErr(t, err).Status != 502 {
				t.Fatalf("want allauth's 502: %v", err)
			}
		}
	}
	fail(2)
	clock.Advance(10 * time.Second) // those two are out of the window
	fail(2)
	if p := wantBreaker(t, c, introspect.BreakerClosed); p.BreakerFailures != 2 || p.BreakerLookups != 2 {
		t.Fatalf("after the window moved on: %+v", p)
	}
	clock.Advance(5 * time.Second) // the last two are still in it
	fail(1)
	// Tripped: the next lookup pings, allauth fails that too, and it opens.
	if _, err := c.Session(context.Background(), sessionToken(srv.IssueToken("alice"))); !errors.Is(err, introspect.ErrBreakerOpen) {
		t.Fatalf("after the third failure in the window: %v, want the breaker's refusal", err)
	}
	if p := wantBreaker(t, c, introspect.BreakerOpen); p.BreakerPings != 1 {
		t.Fatalf("opened: %+v", p)
	}
}

// One client's tokens make allauth fail while it answers everyone else.
// They trip the breaker, but the breaker pings allauth (without a
// credential, so without that client's tokens), allauth answers, and the
// breaker never opens: other clients' lookups are answered, the failing
// client's lookups still reach allauth (and fail there), and allauth sees
// at most one ping per CoolDown. Before, a failing client's lookup was the
// half-open probe and opened the breaker again and again.
func TestBreakerPingIsTheProbe(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	const coolDown = 5 * time.Second
	srv, c := newStandIn(t, allauth.Config{Breaker: introspect.BreakerConfig{Failures: 3, CoolDown: coolDown}, Now: clock.Now})
	srv.AddUser(allauthtest.User{Username: "alice"})
	srv.SetCredentialFault(func(tok string) bool { return strings.HasPrefix(tok, "evil") }, allauthtest.Fault{Status: http.StatusInternalServerError})
	ctx := context.Background()
	var n int
	evil := func() error {
		n++
		_, err := c.Session(ctx, sessionToken(fmt.Sprintf("evil%028d", n)))
		return err
	}
	alice := func() {
		t.Helper()
		if s, err := c.Session(ctx, sessionToken(srv.IssueToken("alice"))); err != nil || s.User.Username != "alice" {
			t.Fatalf("alice: %v", err)
		}
	}
	for range 3 {
		if err := evil(); upstreamErr(t, err).Status != 500 {
			t.Fatalf("an evil token: %v, want allauth's 500", err)
		}
	}
	if p := wantBreaker(t, c, introspect.BreakerClosed); p.BreakerFailures != 0 {
		t.Fatalf("tripped: %+v", p)
	}
	// The next lookup, the evil client's own, carries the ping: allauth
	// answers it, the breaker closes, and the lookup goes on (and fails).
	if err := evil(); errors.Is(err, introspect.ErrBreakerOpen) || upstreamErr(t, err).Status != 500 {
		t.Fatalf("the evil lookup that carried the ping: %v, want allauth's 500", err)
	}
	if p := wantBreaker(t, c, introspect.BreakerClosed); p.BreakerPings != 1 || p.BreakerOpens != 0 {
		t.Fatalf("after the ping: %+v", p)
	}
	alice()
	// Within CoolDown the good ping stands: failures do not trip it.
	for range 20 {
		if err := evil(); errors.Is(err, introspect.ErrBreakerOpen) {
			t.Fatalf("an evil lookup refused by the breaker: %v", err)
		}
	}
	alice()
	if p := wantBreaker(t, c, introspect.BreakerClosed); p.BreakerPings != 1 {
		t.Fatalf("pinged within CoolDown: %+v", p)
	}
	// After it, the next failure trips it again, and alice's lookup pings.
	clock.Advance(coolDown)
	_ = evil()
	if p := wantBreaker(t, c, introspect.BreakerClosed); p.BreakerFailures != 0 {
		t.Fatalf("tripped again: %+v", p)
	}
	alice()
	if p := wantBreaker(t, c, introspect.BreakerClosed); p.BreakerPings != 2 || p.BreakerOpens != 0 || p.BreakerRejections != 0 {
		t.Fatalf("at the end: %+v", p)
	}
}

// Every kind of upstream failure counts: no answer in time, refused,
// dropped, 5xx, 429, a body that is not allauth's JSON. With Failures 1 one
// of them trips the breaker; the ping fails the same way, and it opens.
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
			srv, c := newStandIn(t, allauth.Config{
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
			if p := wantBreaker(t, c, introspect.BreakerClosed); p.BreakerFailures != 0 {
				t.Fatalf("not tripped: %+v", p)
			}
			if _, err := c.Session(context.Background(), sessionToken(tok)); !errors.Is(err, introspect.ErrBreakerOpen) {
				t.Fatalf("after the ping: %v, want the breaker's refusal", err)
			}
			wantBreaker(t, c, introspect.BreakerOpen)
		})
	}
}

// A lookup the caller cancelled says nothing about allauth: it neither
// counts nor spends the half-open ping. A caller's deadline does count, as
// allauth did not answer within it.
func TestBreakerCallerCancel(t *testing.T) {
	t.Parallel()
	srv, c := newStandIn(t, allauth.Config{
		Timeout: 5 * time.Second,
		Breaker: introspect.BreakerConfig{Failures: 1, CoolDown: time.Second},
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
	if p := wantBreaker(t, c, introspect.BreakerClosed); p.BreakerLookups != 0 {
		t.Fatalf("a cancelled lookup was counted: %+v", p)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Session(ctx, sessionToken(srv.IssueToken("alice"))); !upstreamErr(t, err).Timeout() {
		t.Fatalf("caller's deadline: %v", err)
	}
	if p := wantBreaker(t, c, introspect.BreakerClosed); p.BreakerFailures != 0 {
		t.Fatalf("not tripped: %+v", p)
	}

	// A cancelled ping leaves the ping to the next lookup.
	cancelled()
	if p := wantBreaker(t, c, introspect.BreakerClosed); p.BreakerOpens != 0 {
		t.Fatalf("after a cancelled ping: %+v", p)
	}
	srv.SetFault(allauthtest.Fault{})
	if _, err := c.Session(context.Background(), sessionToken(srv.IssueToken("alice"))); err != nil {
		t.Fatalf("the next ping and its lookup: %v", err)
	}
	if p := wantBreaker(t, c, introspect.BreakerClosed); p.BreakerPings != 2 || p.BreakerOpens != 0 {
		t.Fatalf("at the end: %+v", p)
	}
}

// Breaker.Disabled: every lookup asks allauth, however often it failed.
func TestBreakerDisabled(t *testing.T) {
	t.Parallel()
	srv, c := newStandIn(t, allauth.Config{Breaker: introspect.BreakerConfig{Disabled: true, Failures: 1}})
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
	srv, c := newStandIn(t, allauth.Config{
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
	_, c := newStandIn(t, allauth.Config{})
	if p := c.Protection(); p.MaxConcurrentLookups != 64 ||
		p.BreakerDisabled || p.Breaker != introspect.BreakerClosed {
		t.Errorf("defaults: %+v", p)
	}

	srv, c := newStandIn(t, allauth.Config{MaxConcurrentLookups: -1, Timeout: 5 * time.Second})
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
