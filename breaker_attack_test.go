package headless_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/internal/allauth"
	"github.com/allauthgo/headless/internal/testwait"
	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// An anonymous client sends distinct tokens that make allauth hang (each
// lookup fails at Timeout) or fail at once (a 500), from 8 connections,
// while 100 users log in (a new session token each, so each is a lookup)
// and the orchestrator polls readiness. allauth answers everyone else.
// Before, the attacker's failures opened the shared breaker and its own
// next lookup was the half-open probe, so most logins got 503 and
// readiness flapped; now the breaker pings allauth before it opens, allauth
// answers, and the logins go through. The figures are logged
// (docs/operations.md quotes them):
//
//	go test -count=1 -v -run TestOneClientCannotLockOutLogins .
//
// Real time: the attack is concurrent traffic over several cool-downs, and
// lookups that fail at Timeout; a hand-moved clock cannot drive that.
func TestOneClientCannotLockOutLogins(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault allauthtest.Fault
	}{
		{"tokens that hang", allauthtest.Fault{Delay: time.Hour}},
		{"tokens that fail", allauthtest.Fault{Status: http.StatusInternalServerError}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ok, refused, notReady, opens := attack(t, tc.fault)
			t.Logf("%s: %d of 100 logins succeeded (%d refused by the breaker); readiness answered 503 %d times; the breaker opened %d times",
				tc.name, ok, refused, notReady, opens)
			// A login may miss its Timeout on a loaded machine; none may be
			// refused by the breaker.
			if refused != 0 || ok < 90 {
				t.Errorf("%d of 100 logins succeeded during the attack, %d refused by the breaker; want none refused", ok, refused)
			}
			if notReady != 0 {
				t.Errorf("readiness answered 503 %d times while allauth answered", notReady)
			}
		})
	}
}

func attack(t *testing.T, fault allauthtest.Fault) (ok, refused, notReady int64, opens uint64) {
	t.Helper()
	const (
		attackers = 8
		users     = 4  // logging in at once
		logins    = 25 // each
		pace      = 40 * time.Millisecond
	)
	srv := allauthtest.NewServer()
	t.Cleanup(srv.Close)
	srv.AddUser(allauthtest.User{Username: "alice"})
	srv.SetCredentialFault(func(tok string) bool { return strings.HasPrefix(tok, "evil") }, fault)
	a, err := headless.New(headless.Config{BaseURL: srv.URL, Timeout: 500 * time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, a)
	ready := a.Ready(headless.ReadyConfig{Window: 100 * time.Millisecond, ProbeInterval: 50 * time.Millisecond})

	stop := make(chan struct{})
	var seq atomic.Int64
	var bg sync.WaitGroup
	for range attackers {
		bg.Add(1)
		go func() {
			defer bg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				tok := fmt.Sprintf("evil%028d", seq.Add(1))
				if res := a.Authenticate(tokenReq{tok}, false); res.Err != nil && res.Err.Status == http.StatusServiceUnavailable {
					time.Sleep(time.Millisecond) // real time: refused at once, the attacker retries soon
				}
			}
		}()
	}
	var readyDown atomic.Int64
	bg.Add(1)
	go func() {
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			rec := httptest.NewRecorder()
			ready.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", http.NoBody))
			if rec.Code != http.StatusOK {
				readyDown.Add(1)
			}
		}
	}()

	// The attack is under way: every attacker's lookups failed twice (a
	// hanging token fails at Timeout, a failing one at once).
	testwait.Until(t, 10*time.Second, "the attackers' lookups to fail", func() bool {
		return a.Metrics().UpstreamErrors >= 2*attackers
	})
	var good, byBreaker atomic.Int64
	var wg sync.WaitGroup
	for range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range logins {
				res := a.Authenticate(tokenReq{srv.IssueToken("alice")}, false)
				switch {
				case res.Err == nil && res.Session.User.Username == "alice":
					good.Add(1)
				case res.Err != nil && errors.Is(res.Err.Err, introspect.ErrBreakerOpen):
					byBreaker.Add(1)
				case res.Err != nil:
					t.Logf("a login failed: %d %v", res.Err.Status, res.Err.Err)
				}
				time.Sleep(pace) // real time: users log in at a human pace while the attack runs
			}
		}()
	}
	wg.Wait()
	close(stop)
	bg.Wait()
	return good.Load(), byBreaker.Load(), readyDown.Load(), allauth.Of(a).Protection().BreakerOpens
}
