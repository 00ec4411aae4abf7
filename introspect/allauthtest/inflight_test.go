package allauthtest_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/testwait"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// InFlight counts the session lookups being served (a Delay included) and
// MaxInFlight the most at once; other endpoints are not counted, and
// ResetCounters starts the peak over.
func TestInFlight(t *testing.T) {
	srv := newServer(t)
	hc := newClient(t)
	if srv.InFlight() != 0 || srv.MaxInFlight() != 0 {
		t.Fatalf("before any request: %d in flight, max %d", srv.InFlight(), srv.MaxInFlight())
	}

	const n = 5
	srv.SetFault(allauthtest.Fault{Delay: time.Hour})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.SessionURL("app"), http.NoBody)
			if err != nil {
				t.Error(err)
				return
			}
			if resp, err := hc.Do(req); err == nil {
				_ = resp.Body.Close()
			}
		}()
	}
	testwait.Until(t, 10*time.Second, "all n held by the delay", func() bool { return srv.InFlight() >= n })
	do(t, hc, http.MethodGet, srv.URL+srv.Mount()+"/app/v1/config", "")
	if got := srv.InFlight(); got != n {
		t.Errorf("InFlight = %d with %d delayed lookups and a config request, want %d", got, n, n)
	}
	srv.SetFault(allauthtest.Fault{})
	srv.Close() // ends the delays
	wg.Wait()
	// A client sees its connection closed before the handler it was served
	// by has counted itself out: wait for that.
	testwait.Until(t, 5*time.Second, "no lookup in flight", func() bool { return srv.InFlight() == 0 })
	if srv.InFlight() != 0 || srv.MaxInFlight() != n {
		t.Errorf("after the delays: %d in flight, max %d, want 0 and %d", srv.InFlight(), srv.MaxInFlight(), n)
	}
	srv.ResetCounters()
	if srv.MaxInFlight() != 0 {
		t.Errorf("MaxInFlight = %d after ResetCounters", srv.MaxInFlight())
	}
}
