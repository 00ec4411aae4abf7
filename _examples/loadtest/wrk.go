package main

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

type wrkResult struct {
	rps      float64
	p50, p99 time.Duration
}

// ratioToBare returns the lowest, median and highest of the rounds'
// requests/s ratios to the bare run of the same round.
func ratioToBare(rs, bare []wrkResult) (lo, mid, hi float64) {
	ratios := make([]float64, len(rs))
	for i := range rs {
		ratios[i] = rs[i].rps / bare[i].rps
	}
	slices.Sort(ratios)
	return ratios[0], ratios[len(ratios)/2], ratios[len(ratios)-1]
}

// runWrk loads url with wrk; header ("Name: value"), if set, is sent with
// every request. wrk's output, returned in errors, never echoes it.
func runWrk(wrk string, o options, url, header string) (wrkResult, error) {
	args := []string{
		"-t" + strconv.Itoa(o.threads), "-c" + strconv.Itoa(o.connections),
		"-d" + strconv.Itoa(int(o.duration.Seconds())) + "s", "--latency",
	}
	if header != "" {
		args = append(args, "-H", header)
	}
	args = append(args, url)
	cmd := exec.CommandContext(context.Background(), wrk, args...)
	outb, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w: %s", err, outb)
	}
	var r wrkResult
	sc := bufio.NewScanner(strings.NewReader(string(outb)))
	for sc.Scan() {
		line := sc.Text()
		if m := rpsRe.FindStringSubmatch(line); m != nil {
			r.rps, _ = strconv.ParseFloat(m[1], 64)
		}
		if m := latRe.FindStringSubmatch(line); m != nil {
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

func median(rs []wrkResult) wrkResult {
	pick := func(f func(wrkResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return wrkResult{
		rps: pick(func(r wrkResult) float64 { return r.rps }),
		p50: time.Duration(pick(func(r wrkResult) float64 { return float64(r.p50) })),
		p99: time.Duration(pick(func(r wrkResult) float64 { return float64(r.p99) })),
	}
}

func pct(a, b time.Duration) float64 { return (float64(a) - float64(b)) / float64(b) * 100 }
