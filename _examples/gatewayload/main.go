// Command gatewayload measures allauthgo-gateway under wrk: a warm /auth (a
// session token the cache holds) against the same gateway's /healthz (the
// cheapest answer the server gives), alternating in each round, so that the
// ratio of the two is measured on the same process under the same machine
// load. It prints a Markdown table of medians.
//
//	go run ./_examples/gatewayload -duration 3s -rounds 9
//
// Each round runs both, the first of the two alternating from round to
// round; the ratio reported is the median of the rounds' ratios, since a
// shared machine drifts.
//
// allauth is the stand-in (introspect/allauthtest); everything listens on
// 127.0.0.1 only. Needs wrk (apt-get install wrk).
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/allauthgo/headless/internal/gateway"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

type options struct {
	duration    time.Duration
	connections int
	threads     int
	rounds      int
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "length of each wrk run")
	flag.IntVar(&o.connections, "connections", 64, "wrk connections")
	flag.IntVar(&o.threads, "threads", 1, "wrk threads")
	flag.IntVar(&o.rounds, "rounds", 9, "rounds of (/healthz, /auth) runs; medians are reported")
	flag.Parse()
	if err := run(o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gatewayload:", err)
		os.Exit(1)
	}
}

func run(o options, out io.Writer) error {
	if o.duration < time.Second || o.connections <= 0 || o.threads <= 0 || o.rounds <= 0 {
		return errors.New("-duration must be at least 1s; -connections, -threads and -rounds positive")
	}
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		return errors.New("wrk not found: install it with apt-get install wrk")
	}
	standin := allauthtest.NewServer()
	defer standin.Close()
	standin.AddUser(allauthtest.User{Username: "alice", Email: "alice@example.com", Password: "alice-pass-123"})
	token := standin.IssueToken("alice")

	cfg, err := gateway.Load([]string{"-cache-ttl", "1h"}, func(k string) string {
		if k == "ALLAUTH_URL" {
			return standin.URL
		}
		return ""
	}, io.Discard)
	if err != nil {
		return err
	}
	g, err := gateway.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer func() { _ = g.Close() }()
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			fmt.Fprintln(os.Stderr, "gatewayload: gateway:", err)
		}
	}()
	base := "http://" + ln.Addr().String()

	// Warm the cache, and check the answer is the user's.
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, base+"/auth", http.NoBody)
	req.Header.Set("X-Session-Token", token)
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get(gateway.HeaderUserID) != "1" {
		return fmt.Errorf("warm-up: %d, user %q", resp.StatusCode, resp.Header.Get(gateway.HeaderUserID))
	}

	var health, auth []result
	ratios := make([]float64, 0, o.rounds)
	for i := range o.rounds {
		// Alternate which goes first: a shared machine's load drifts within
		// a round too.
		var h, a result
		var err error
		for _, first := range []bool{i%2 == 0, i%2 != 0} {
			if first {
				h, err = runWrk(wrk, o, base+"/healthz", "")
			} else {
				a, err = runWrk(wrk, o, base+"/auth", "X-Session-Token: "+token)
			}
			if err != nil {
				return err
			}
		}
		health, auth = append(health, h), append(auth, a)
		ratios = append(ratios, a.rps/h.rps)
		fmt.Fprintf(os.Stderr, "round %d: /healthz %.0f req/s, /auth %.0f req/s, ratio %.2f\n", i+1, h.rps, a.rps, a.rps/h.rps)
	}
	calls := standin.SessionCalls()
	slices.Sort(ratios)
	hm, am := median(health), median(auth)
	var b strings.Builder
	fmt.Fprintf(&b, "wrk -t%d -c%d -d%s, %d rounds, medians (allauth session calls during the runs: %d, the warm-up's)\n\n",
		o.threads, o.connections, o.duration, o.rounds, calls)
	b.WriteString("| route | requests/s | p50 | p99 |\n|---|---:|---:|---:|\n")
	fmt.Fprintf(&b, "| /healthz | %.0f | %s | %s |\n", hm.rps, hm.p50, hm.p99)
	fmt.Fprintf(&b, "| /auth (warm) | %.0f | %s | %s |\n", am.rps, am.p50, am.p99)
	fmt.Fprintf(&b, "\n/auth ÷ /healthz, per round: median %.2f (range %.2f–%.2f)\n", ratios[len(ratios)/2], ratios[0], ratios[len(ratios)-1])
	_, err = io.WriteString(out, b.String())
	return err
}

type result struct {
	rps      float64
	p50, p99 time.Duration
}

var (
	rpsRe = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	latRe = regexp.MustCompile(`^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\b`)
)

// runWrk loads url with wrk; header ("Name: value") is sent with every
// request. wrk's output never echoes the header.
func runWrk(wrk string, o options, url, header string) (result, error) {
	args := []string{
		"-t" + strconv.Itoa(o.threads), "-c" + strconv.Itoa(o.connections),
		"-d" + strconv.Itoa(int(o.duration.Seconds())) + "s", "--latency",
	}
	if header != "" {
		args = append(args, "-H", header)
	}
	//nolint:gosec // wrk found on PATH, with this tool's own arguments
	outb, err := exec.CommandContext(context.Background(), wrk, append(args, url)...).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %w: %s", err, outb)
	}
	var r result
	sc := bufio.NewScanner(strings.NewReader(string(outb)))
	for sc.Scan() {
		if m := rpsRe.FindStringSubmatch(sc.Text()); m != nil {
			r.rps, _ = strconv.ParseFloat(m[1], 64)
		}
		if m := latRe.FindStringSubmatch(sc.Text()); m != nil {
			d, _ := time.ParseDuration(m[2] + m[3])
			if m[1] == "50" {
				r.p50 = d
			} else {
				r.p99 = d
			}
		}
	}
	if strings.Contains(string(outb), "Non-2xx") {
		return r, fmt.Errorf("wrk saw non-2xx answers from %s:\n%s", url, outb)
	}
	if r.rps == 0 {
		return r, fmt.Errorf("could not read wrk's output:\n%s", outb)
	}
	return r, nil
}

func median(rs []result) result {
	pick := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return result{
		rps: pick(func(r result) float64 { return r.rps }),
		p50: time.Duration(pick(func(r result) float64 { return float64(r.p50) })),
		p99: time.Duration(pick(func(r result) float64 { return float64(r.p99) })),
	}
}
