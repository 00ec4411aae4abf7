package headless

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/allauthgo/headless/introspect/allauthtest"
)

// faultTimeout is Config.Timeout in the fault tests; every answer must come
// within it plus faultMargin (generous: the machine is shared and -race is
// slow).
const (
	faultTimeout = 500 * time.Millisecond
	faultMargin  = 2 * time.Second
)

// A well-formed token nobody issued: the raw servers never look at it.
const someToken = "abcdefghijklmnopqrstuvwxyz012345"

// rawHead is an HTTP/1.1 answer head of allauth's session endpoint.
func rawHead(status int, extra ...string) string {
	h := "HTTP/1.1 " + strconv.Itoa(status) + " " + http.StatusText(status) + "\r\nContent-Type: application/json\r\n"
	for _, e := range extra {
		h += e + "\r\n"
	}
	return h + "\r\n"
}

// partialBody is the start of a 200 allauth would send, cut in the user.
const partialBody = `{"status": 200, "data": {"user": {"id": 1, "display": "alice", "username": "al`

// rawFaults are the faults only a raw TCP server can make.
var rawFaults = []struct {
	name   string
	behave func(u *rawUpstream, c net.Conn, head string)
}{
	{"accepts and never answers", func(_ *rawUpstream, c net.Conn, _ string) { waitForPeer(c) }},
	{"status line, then the headers stall", func(_ *rawUpstream, c net.Conn, _ string) {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: appl")
		waitForPeer(c)
	}},
	{"headers, then the body stalls", func(_ *rawUpstream, c net.Conn, _ string) {
		_, _ = io.WriteString(c, rawHead(200, "Content-Length: 500")+partialBody)
		waitForPeer(c)
	}},
	{"body trickles a byte every 50 ms", func(_ *rawUpstream, c net.Conn, _ string) {
		_, _ = io.WriteString(c, rawHead(200, "Content-Length: 100000")+partialBody)
		for {
			if _, err := io.WriteString(c, "a"); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond) // real time: the fault is a body that trickles in real time
		}
	}},
	{"drops the connection mid-headers", func(_ *rawUpstream, c net.Conn, _ string) {
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: appl")
	}},
	{"drops the connection mid-body", func(_ *rawUpstream, c net.Conn, _ string) {
		_, _ = io.WriteString(c, rawHead(200, "Content-Length: 500")+partialBody)
	}},
	{"drops a chunked body mid-way", func(_ *rawUpstream, c net.Conn, _ string) {
		_, _ = io.WriteString(c, rawHead(200, "Transfer-Encoding: chunked")+
			fmt.Sprintf("%x\r\n%s\r\n", len(partialBody), partialBody))
	}},
	{"answers something that is not HTTP", func(_ *rawUpstream, c net.Conn, _ string) {
		_, _ = io.WriteString(c, "SSH-2.0-OpenSSH_9.2p1\r\n")
	}},
	{"answers a 200 with no body and closes", func(_ *rawUpstream, c net.Conn, _ string) {
		_, _ = io.WriteString(c, rawHead(200, "Connection: close"))
	}},
}

// Every fault of allauth (or of what stands in front of it) is a 503 with
// Retry-After within Timeout plus a margin, never a 200, 401 or 410. This
// covers what TestContract_UpstreamFailure_503 does not (allauthtest's 500,
// 502, 503, 504, 429 with and without Retry-After, HTML and truncated JSON
// are there): the raw TCP faults, refused connections and more bodies that
// are not allauth's. The 100 MiB body is Test_Faults_HugeBody.
func TestFaults_Upstream(t *testing.T) {
	t.Parallel()
	type fcase struct {
		name       string
		url        func(t *testing.T) (url string, requests func() int64)
		retryAfter func(string) bool
	}
	one := func(v string) bool { return v == "1" }
	// standIn makes the fault when the case runs (an HTTP date must be
	// fresh).
	standIn := func(f func() allauthtest.Fault) func(t *testing.T) (string, func() int64) {
		return func(t *testing.T) (string, func() int64) {
			t.Helper()
			srv := newAllauth(t)
			srv.SetFault(f())
			return srv.URL, srv.SessionCalls
		}
	}
	fault := func(f allauthtest.Fault) func() allauthtest.Fault { return func() allauthtest.Fault { return f } }
	cases := []fcase{
		{"refused connection", func(t *testing.T) (string, func() int64) {
			t.Helper()
			return refusedURL(t), nil
		}, one},
		{"503 without Retry-After", standIn(fault(allauthtest.Fault{Status: 503})), one},
		{"503 with an HTTP-date Retry-After", standIn(func() allauthtest.Fault {
			return allauthtest.Fault{Status: 503, RetryAfter: time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)}
		}), func(v string) bool { n, err := strconv.Atoi(v); return err == nil && n >= 28 && n <= 30 }},
		{"429 with a garbage Retry-After", standIn(fault(allauthtest.Fault{Status: 429, RetryAfter: "soon"})), one},
		{"429 with a negative Retry-After", standIn(fault(allauthtest.Fault{Status: 429, RetryAfter: "-5"})), one},
		// 3,170 years: not wrapped around by an overflow, and clamped to
		// the 300 s clients are ever told.
		{
			"429 with an absurd Retry-After", standIn(fault(allauthtest.Fault{Status: 429, RetryAfter: "99999999999"})),
			func(v string) bool { return v == "300" },
		},
		{
			"503 with an HTTP-date Retry-After in year 9999", standIn(fault(allauthtest.Fault{Status: 503, RetryAfter: "Fri, 31 Dec 9999 23:59:59 GMT"})),
			func(v string) bool { return v == "300" },
		},
		{"502 HTML page of a proxy", standIn(fault(allauthtest.Fault{
			Status: 502, Body: "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
			ContentType: "text/html",
		})), one},
		{"500 Django debug page", standIn(fault(allauthtest.Fault{
			Status: 500, Body: "<!DOCTYPE html><html><body><h1>Server Error (500)</h1></body></html>", ContentType: "text/html",
		})), one},
		{"200 JSON that is not allauth's", standIn(fault(allauthtest.Fault{Body: `{"ok": true, "user": "alice"}`})), one},
		{"200 JSON array", standIn(fault(allauthtest.Fault{Body: `[]`})), one},
		{"200 text/plain OK", standIn(fault(allauthtest.Fault{Body: "OK", ContentType: "text/plain"})), one},
		{"200 allauth-like, user without id", standIn(fault(allauthtest.Fault{
			Body: `{"status": 200, "data": {"user": {"username": "alice"}}, "meta": {"is_authenticated": true}}`,
		})), one},
		{"200 allauth-like, status 401 inside", standIn(fault(allauthtest.Fault{
			Body: `{"status": 401, "data": {"user": {"id": 1}}, "meta": {"is_authenticated": true}}`,
		})), one},
		{"200 truncated allauth body", standIn(fault(allauthtest.Fault{Body: partialBody})), one},
	}
	for _, rf := range rawFaults {
		cases = append(cases, fcase{rf.name, func(t *testing.T) (string, func() int64) {
			t.Helper()
			u := newRawUpstream(t, rf.behave)
			return u.URL, u.Requests
		}, one})
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url, requests := tc.url(t)
			m := newCore(t, nil, Config{BaseURL: url, Timeout: faultTimeout})
			// n lookups at once, each for its own token: n upstream requests
			// in flight together, all cut by the same Timeout.
			const n = 3
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					start := time.Now()
					res := auth(m, withToken(someToken[:31]+strconv.Itoa(i)))
					took := time.Since(start)
					if res.Err == nil || res.Err.Status != http.StatusServiceUnavailable {
						t.Errorf("request %d: %s, want 503", i, describe(res))
						return
					}
					if ra := headers(res.Err).Get("Retry-After"); !tc.retryAfter(ra) {
						t.Errorf("request %d: Retry-After %q", i, ra)
					}
					if took > faultTimeout+faultMargin {
						t.Errorf("request %d took %v, Timeout is %v", i, took, faultTimeout)
					}
				}()
			}
			wg.Wait()
			// A failure is never cached, and never retried beyond the one
			// retry after a failed dial: each request reached the upstream
			// once.
			if requests != nil {
				if got := requests(); got != n {
					t.Errorf("upstream saw %d requests for %d lookups", got, n)
				}
			}
			if s := m.Metrics().Cache; s.Fetches != n || s.Entries != 0 {
				t.Errorf("stats %+v: want %d fetches and nothing cached", s, n)
			}
		})
	}
}

// gzipBomb is a gzip stream that inflates to n bytes (a multiple of 1
// MiB) of blanks: one compressed MiB repeated as gzip members, which readers
// (Go's among them) inflate one after the other. Compressing 100 MiB at once
// would take seconds under -race.
func gzipBomb(tb testing.TB, n int) []byte {
	tb.Helper()
	var member bytes.Buffer
	zw, err := gzip.NewWriterLevel(&member, gzip.BestCompression)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := zw.Write(bytes.Repeat([]byte(" "), 1<<20)); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return bytes.Repeat(member.Bytes(), n>>20)
}

// A 100 MiB answer (with a Content-Length, without one until the connection
// closes, chunked, or a gzip bomb inflating to 100 MiB) is cut at the client's 1 MiB limit: a 503 in
// time, the server's writes fail soon after the client hangs up, and the
// process allocates and keeps nowhere near 100 MiB. Not parallel: it counts
// the process's allocations.
func TestFaults_HugeBody(t *testing.T) {
	const huge = 100 << 20
	const (
		maxAlloc  = 24 << 20 // allocated while answering
		maxGrowth = 8 << 20  // heap kept afterwards
		maxSent   = 48 << 20 // what the server got to write before its writes failed
	)
	bomb := gzipBomb(t, huge)
	t.Logf("gzip bomb: %d bytes inflating to %d", len(bomb), huge)
	cases := []struct {
		name   string
		behave func(u *rawUpstream, c net.Conn, head string)
	}{
		{"Content-Length 100 MiB", func(u *rawUpstream, c net.Conn, _ string) {
			_, _ = io.WriteString(c, rawHead(200, "Content-Length: "+strconv.Itoa(huge))+partialBody)
			u.StreamBody(c, huge-int64(len(partialBody)))
		}},
		{"no length, 100 MiB until the connection closes", func(u *rawUpstream, c net.Conn, _ string) {
			_, _ = io.WriteString(c, rawHead(200, "Connection: close")+partialBody)
			u.StreamBody(c, huge)
		}},
		{"chunked, 100 MiB", func(u *rawUpstream, c net.Conn, _ string) {
			_, _ = io.WriteString(c, rawHead(200, "Transfer-Encoding: chunked"))
			u.StreamBody(&chunkWriter{c}, huge)
		}},
		{"gzip bomb, 100 MiB inflated", func(u *rawUpstream, c net.Conn, _ string) {
			_, _ = io.WriteString(c, rawHead(200, "Content-Encoding: gzip", "Content-Length: "+strconv.Itoa(len(bomb))))
			n, _ := c.Write(bomb)
			u.AddWritten(n)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := newRawUpstream(t, tc.behave)
			m := newCore(t, nil, Config{BaseURL: u.URL, Timeout: 2 * faultTimeout})

			heap0 := heapAfterGC()
			alloc0 := totalAlloc()
			start := time.Now()
			res := auth(m, withToken(someToken))
			took := time.Since(start)
			alloc := totalAlloc() - alloc0
			heap1 := heapAfterGC()

			if res.Err == nil || res.Err.Status != http.StatusServiceUnavailable || headers(res.Err).Get("Retry-After") != "1" {
				t.Fatalf("got %s, want 503 with Retry-After 1", describe(res))
			}
			if took > 2*faultTimeout+faultMargin {
				t.Errorf("took %v", took)
			}
			t.Logf("took %v, allocated %d KiB, heap %+.0f KiB, server wrote %d KiB",
				took, alloc>>10, (float64(heap1)-float64(heap0))/1024, u.Written()>>10)
			if alloc > maxAlloc {
				t.Errorf("allocated %d MiB answering one request", alloc>>20)
			}
			if heap1 > heap0 && heap1-heap0 > maxGrowth {
				t.Errorf("heap grew by %d MiB", (heap1-heap0)>>20)
			}
			// The server's writes fail once the client hangs up; give the
			// kernel a moment to report the reset.
			u.Close()
			if w := u.Written(); w > maxSent {
				t.Errorf("server wrote %d MiB: the client kept reading", w>>20)
			}
		})
	}
}

// chunkWriter writes each Write as one HTTP/1.1 chunk.
type chunkWriter struct{ w io.Writer }

func (cw *chunkWriter) Write(p []byte) (int, error) {
	if _, err := fmt.Fprintf(cw.w, "%x\r\n", len(p)); err != nil {
		return 0, err
	}
	n, err := cw.w.Write(p)
	if err != nil {
		return n, err
	}
	_, err = io.WriteString(cw.w, "\r\n")
	return n, err
}
