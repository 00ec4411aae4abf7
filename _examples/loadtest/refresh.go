package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// refreshScenario is what busy APIs see once per CacheTTL per token: with
// a 1 s TTL and a stand-in that takes 30 ms a lookup (a loaded Django), 200
// tokens each used about every 20 ms by 16 clients. It runs the Fiber v2
// door with refresh ahead off (every token waits for allauth once per TTL)
// and on, and prints the latency percentiles and the lookups at allauth:
//
//	go run ./_examples/loadtest -refresh-scenario
type refreshScenario struct {
	tokens, clients int
	every, ttl      time.Duration
	delay, length   time.Duration
}

func defaultRefreshScenario() refreshScenario {
	return refreshScenario{
		tokens: 200, clients: 16, every: 20 * time.Millisecond, ttl: time.Second,
		delay: 30 * time.Millisecond, length: 6 * time.Second,
	}
}

type refreshRun struct {
	requests, non200 int
	p50, p99, p999   time.Duration
	max              time.Duration
	lookups          int64
	misses           int64 // requests that found no fresh answer and waited
	refreshes, skips int64
}

func runRefreshScenario(out io.Writer, sc refreshScenario) error {
	var b strings.Builder
	fmt.Fprintf(&b, "## Refresh ahead: %d tokens, each used about every %s by %d clients, CacheTTL %s, allauth %s a lookup, %s a run\n\n",
		sc.tokens, sc.every, sc.clients, sc.ttl, sc.delay, sc.length)
	b.WriteString("| RefreshAhead | requests | p50 | p99 | p99.9 | max | non-200 | requests that waited (misses) | refreshes (skipped) | lookups at allauth | per token per TTL |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, mode := range []struct {
		name  string
		ahead time.Duration
		ttl   time.Duration
	}{
		{"off (-1)", -1, sc.ttl},
		{"on (default, TTL/5)", 0, sc.ttl},
		// Nothing expires in the run: no lookups, no refreshes. The tail of
		// this row is the harness's own (clients and server sharing the
		// machine's cores), the floor for the rows above.
		{"no expiry (CacheTTL 1h): the harness's floor", 0, time.Hour},
	} {
		run := sc
		run.ttl = mode.ttl
		r, err := refreshOnce(run, mode.ahead)
		if err != nil {
			return err
		}
		perTokenTTL := float64(r.lookups) / float64(sc.tokens) / (float64(sc.length) / float64(sc.ttl))
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %d | %d | %d (%d) | %d | %.2f |\n", mode.name, r.requests,
			ms(r.p50), ms(r.p99), ms(r.p999), ms(r.max), r.non200, r.misses, r.refreshes, r.skips, r.lookups, perTokenTTL)
	}
	b.WriteString("\n")
	_, err := io.WriteString(out, b.String())
	return err
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func refreshOnce(sc refreshScenario, ahead time.Duration) (refreshRun, error) {
	standin := allauthtest.NewServer()
	defer standin.Close()
	tokens := make([]string, sc.tokens)
	for i := range tokens {
		name := fmt.Sprintf("user%d", i)
		standin.AddUser(allauthtest.User{Username: name, Email: name + "@example.com", Password: name + "-pass-123"})
		tokens[i] = standin.IssueToken(name)
	}
	mw, err := fiberauth.NewMiddleware(fiberauth.Config{
		BaseURL: standin.URL, CacheTTL: sc.ttl, RefreshAhead: ahead,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return refreshRun{}, err
	}
	defer func() { _ = mw.Close() }()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/protected", mw.Handler, func(c *fiber.Ctx) error { return c.SendString("ok") })
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return refreshRun{}, err
	}
	go func() { _ = app.Listener(ln) }()
	defer func() { _ = app.ShutdownWithTimeout(5 * time.Second) }()
	// fasthttp's client, one request and response per call reused: the
	// harness's own allocations and GC are part of the floor every row
	// shares, and with net/http's client the floor's p99 was 2.6 ms, not 0.7.
	client := &fasthttp.HostClient{Addr: ln.Addr().String(), MaxConns: sc.clients}
	defer client.CloseIdleConnections()
	get := func(token string) (int, error) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + client.Addr + "/protected")
		req.Header.Set(fiberauth.HeaderSessionToken, token)
		if err := client.Do(req, resp); err != nil {
			return 0, err
		}
		return resp.StatusCode(), nil
	}
	// Warm every token, then let the stand-in be as slow as a loaded Django.
	for _, tok := range tokens {
		status, err := get(tok)
		if err != nil {
			return refreshRun{}, fmt.Errorf("warming: %w", err)
		}
		if status != http.StatusOK {
			return refreshRun{}, fmt.Errorf("warming: status %d", status)
		}
	}
	standin.ResetCounters()
	standin.SetFault(allauthtest.Fault{Delay: sc.delay})
	tokensWarm := int64(len(tokens)) // the warming misses

	var (
		mu        sync.Mutex
		latencies []time.Duration
		non200    atomic.Int64
		wg        sync.WaitGroup
	)
	end := time.Now().Add(sc.length)
	for c := range sc.clients {
		var mine []string
		for i := c; i < len(tokens); i += sc.clients {
			mine = append(mine, tokens[i])
		}
		wg.Go(func() {
			// Each client sends its tokens round robin, paced so that each
			// token is used about every sc.every.
			pace := sc.every / time.Duration(len(mine))
			var local []time.Duration
			next := time.Now()
			for i := 0; time.Now().Before(end); i++ {
				next = next.Add(pace)
				start := time.Now()
				status, err := get(mine[i%len(mine)])
				local = append(local, time.Since(start))
				if err != nil || status != http.StatusOK {
					non200.Add(1)
				}
				time.Sleep(time.Until(next)) // pacing of a load generator
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	lookups := standin.SessionCalls()
	st := mw.Metrics().Cache
	standin.SetFault(allauthtest.Fault{})
	slices.Sort(latencies)
	pct := func(p float64) time.Duration { return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))] }
	return refreshRun{
		requests: len(latencies), non200: int(non200.Load()), p50: pct(0.50), p99: pct(0.99),
		p999: pct(0.999), max: latencies[len(latencies)-1], lookups: lookups,
		misses: st.Misses - tokensWarm, refreshes: st.Refreshes, skips: st.RefreshSkips,
	}, nil
}
