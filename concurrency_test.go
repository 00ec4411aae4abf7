package headless

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// Many requests at once for many tokens, each request's buffers reused
// (scribbled over) as soon as Authenticate returns, as a framework reuses
// its own: every answer names its own user, allauth is asked once per
// token, and the sessions kept after every request ended still name the
// right user. (fiberauth proves the same over real HTTP through Fiber.)
func TestConcurrency_EveryAnswerNamesItsOwnUser(t *testing.T) {
	t.Parallel()
	const (
		clients  = 32
		tokens   = 500
		requests = 10 * tokens
	)
	srv := allauthtest.NewServer()
	t.Cleanup(srv.Close)
	toks := make([]string, tokens)
	for i := range toks {
		name := "u" + strconv.Itoa(i)
		srv.AddUser(allauthtest.User{ID: i + 1, Username: name}) // an explicit ID keeps AddUser O(1)
		toks[i] = srv.IssueToken(name)
	}
	// Identities, not speed: under -race a lookup may take long, and a 503
	// would fail a test about who is named.
	a := newCore(t, srv, Config{CacheTTL: 10 * time.Minute, Timeout: time.Minute, Breaker: introspect.BreakerConfig{Disabled: true}})

	kept := make([]*introspect.Session, requests)
	var next, wrong atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				r := int(next.Add(1) - 1)
				if r >= requests {
					return
				}
				i := r % tokens
				q := withToken(toks[i])
				res := auth(a, q)
				q.scribble()
				if res.Session == nil || res.Session.User.Username != "u"+strconv.Itoa(i) {
					if wrong.Add(1) <= 5 {
						t.Errorf("request %d for u%d: %s", r, i, describe(res))
					}
					continue
				}
				kept[r] = res.Session
			}
		})
	}
	wg.Wait()
	if wrong.Load() != 0 {
		t.Fatalf("%d answers named another user or failed", wrong.Load())
	}
	for r, s := range kept {
		if want := "u" + strconv.Itoa(r%tokens); s.User.Username != want || s.User.ID != strconv.Itoa(r%tokens+1) {
			t.Fatalf("request %d: kept %+v, want %s", r, s.User, want)
		}
	}
	wantCalls(t, srv, tokens)
}
