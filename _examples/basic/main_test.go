package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/exampletest"
	"github.com/allauthgo/headless/internal/testwait"

	"go.uber.org/goleak"

	"github.com/allauthgo/headless/introspect/allauthtest"
)

// readmePath is the README whose quickstart TestREADMEQuickstart runs;
// README_PATH overrides it (e.g. a draft).
var readmePath = "../../README.md"

// The addresses the README's commands use: run's defaults.
const (
	readmeAPI     = "127.0.0.1:3000"
	readmeStandin = "127.0.0.1:8000"
)

// step is one executed block of the quickstart: a shell snippet and the
// output the README shows for it.
type step struct {
	line     int // of the sh block, for messages
	script   string
	expected string
}

// TestREADMEQuickstart starts the example in-process on the README's
// addresses and runs the README's quickstart literally: every ```sh block
// (but `go run ...`) in one bash session, each compared with the ```json or
// ```text block that follows it.
func TestREADMEQuickstart(t *testing.T) {
	path := readmePath
	if p := os.Getenv("README_PATH"); p != "" {
		path = p
	}
	steps := quickstartSteps(t, path)
	for _, addr := range []string{readmeAPI, readmeStandin} {
		waitFree(t, addr)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("the README's commands need curl on PATH")
	}
	ignore := goleak.IgnoreCurrent()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr exampletest.SyncBuffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, exampletest.Env(nil), &stdout, &stderr) }()
	waitHealthy(t, "http://"+readmeAPI+"/healthz", done)

	// The commands the program prints are the README's first ones.
	for _, line := range strings.Split(steps[0].script, "\n") {
		if !strings.Contains(stdout.String(), "  "+line+"\n") {
			t.Errorf("the program does not print the README's command\n  %s\nit prints:\n%s", line, stdout.String())
		}
	}

	// One bash session, so that TOKEN=... carries over; a marker line after
	// each block splits the output. The token is printed last, to check that
	// no log line holds it.
	const marker = "@@@ end of block @@@"
	var script strings.Builder
	for _, s := range steps {
		script.WriteString(s.script)
		fmt.Fprintf(&script, "\nprintf '\\n%%s\\n' '%s'\n", marker)
	}
	script.WriteString(`printf '%s' "$TOKEN"`)
	bashCtx, bashCancel := context.WithTimeout(ctx, time.Minute)
	defer bashCancel()
	//nolint:gosec // G204: running the README's commands is the point
	cmd := exec.CommandContext(bashCtx, "bash", "--noprofile", "--norc", "-c", script.String())
	cmd.Env = append(os.Environ(), "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
	cmd.Dir = "../.." // as a reader would, from the repository root
	var bashErr bytes.Buffer
	cmd.Stderr = &bashErr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bash: %v\nstderr:\n%s", err, bashErr.String())
	}
	parts := strings.Split(string(out), "\n"+marker+"\n")
	if len(parts) != len(steps)+1 {
		t.Fatalf("got %d outputs for %d blocks:\n%s\nstderr:\n%s", len(parts)-1, len(steps), out, bashErr.String())
	}
	for i, s := range steps {
		got := trimRight(parts[i])
		if got != s.expected {
			t.Errorf("%s:%d: the block\n%s\nprints\n%s\nbut the README shows\n%s", path, s.line, s.script, got, s.expected)
		}
	}
	token := parts[len(steps)]
	if len(token) != 32 {
		t.Errorf("TOKEN is %q after the quickstart, want a 32-character session token", token)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v, want nil after the context ended", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10s of the context ending")
	}
	if token != "" && strings.Contains(stderr.String(), token) {
		t.Errorf("a log line holds the session token:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "msg=stopped") {
		t.Errorf("no clean-stop log line:\n%s", stderr.String())
	}
	goleak.VerifyNone(t, append(fasthttpGoroutines, ignore)...)
}

// fasthttpGoroutines are fasthttp's, not the example's: one refreshes the
// Date header for the whole process once a server has answered (it never
// stops), the other is a stopped server's worker-pool cleaner, which sleeps
// up to 10 s (MaxIdleWorkerDuration) before it notices the stop.
var fasthttpGoroutines = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
	goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
}

// TestRunAllauthURL runs against an allauth given by ALLAUTH_URL (here a
// stand-in the test starts) on a free port, and checks the printed commands
// point there.
func TestRunAllauthURL(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	srv := allauthtest.NewServer()
	defer srv.Close()
	srv.AddUser(allauthtest.User{Username: "alice", Email: "alice@example.com", Password: "alice-pw"})
	token := srv.IssueToken("alice")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr exampletest.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, exampletest.Env(map[string]string{"ADDR": "127.0.0.1:0", "ALLAUTH_URL": srv.URL, "CACHE_TTL": "1m"}), &stdout, &stderr)
	}()
	api := exampletest.WaitFor(t, &stdout, regexp.MustCompile(`API on (http://\S+)`), done)[1]
	waitHealthy(t, api+"/healthz", done)

	printed := stdout.String()
	if !strings.Contains(printed, "allauth on "+srv.URL) || !strings.Contains(printed, srv.URL+"/_allauth/app/v1/auth/login") {
		t.Errorf("the printed commands do not point at ALLAUTH_URL %s:\n%s", srv.URL, printed)
	}
	if strings.Contains(printed, "demo-password") {
		t.Errorf("the printed commands name the stand-in's demo user for a real allauth:\n%s", printed)
	}

	client, closeClient := newClient()
	defer closeClient()
	status, body := get(t, client, api+"/api/me", token)
	want := `{"id":"1","display":"alice","email":"alice@example.com","username":"alice","has_usable_password":true}`
	if status != http.StatusOK || body != want {
		t.Errorf("/api/me = %d %s, want 200 %s", status, body, want)
	}
	if status, _ := get(t, client, api+"/api/public", token); status != http.StatusOK {
		t.Errorf("/api/public = %d, want 200", status)
	}
	if n := srv.SessionCalls(); n != 1 {
		t.Errorf("allauth got %d session calls, want 1: both routes share one cache", n)
	}
	if !strings.Contains(stderr.String(), "cache_ttl=1m0s") {
		t.Errorf("CACHE_TTL=1m is not in the startup log:\n%s", stderr.String())
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run returned %v, want nil", err)
	}
	closeClient()
	srv.Close()
	goleak.VerifyNone(t, append(fasthttpGoroutines, ignore)...)
}

// TestRunRejectsBadEnv checks that bad input is a clear *envError (exit
// code 2) before anything starts.
func TestRunRejectsBadEnv(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{"CACHE_TTL", "ten seconds", `CACHE_TTL="ten seconds": want a positive Go duration such as 10s or 1m`},
		{"CACHE_TTL", "10", `CACHE_TTL="10": want a positive Go duration`},
		{"CACHE_TTL", "-5s", `CACHE_TTL="-5s": want a positive Go duration`},
		{"ADDR", "3000", `ADDR="3000": want host:port, e.g. 127.0.0.1:3000`},
		{"ADDR", "localhost", `ADDR="localhost": want host:port`},
		{"STANDIN_ADDR", "nowhere", `STANDIN_ADDR="nowhere": want host:port`},
		{"ALLAUTH_URL", "127.0.0.1:8000", `ALLAUTH_URL="127.0.0.1:8000": want the Django origin, e.g. http://127.0.0.1:8000`},
		{"ALLAUTH_URL", "ftp://allauth", `ALLAUTH_URL="ftp://allauth": want the Django origin`},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			vars := map[string]string{"ADDR": "127.0.0.1:0", "STANDIN_ADDR": "127.0.0.1:0", tc.name: tc.value}
			var stdout, stderr exampletest.SyncBuffer
			err := run(context.Background(), exampletest.Env(vars), &stdout, &stderr)
			var bad *envError
			if !errors.As(err, &bad) {
				t.Fatalf("run = %v, want an *envError", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if stdout.String() != "" || stderr.String() != "" {
				t.Errorf("run printed before failing:\n%s%s", stdout.String(), stderr.String())
			}
		})
	}
}

// TestRunBusyAddr checks that a taken ADDR is a clear error, not a hang.
func TestRunBusyAddr(t *testing.T) {
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	var stdout, stderr exampletest.SyncBuffer
	err = run(context.Background(), exampletest.Env(map[string]string{"ADDR": ln.Addr().String()}), &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "API on ADDR") || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("run = %v, want an error naming ADDR and the busy address", err)
	}
}

// quickstartSteps reads the README's quickstart section: the ```sh blocks
// (but `go run`), each followed by its ```json or ```text output block.
func quickstartSteps(t *testing.T, path string) []step {
	t.Helper()
	raw, err := os.ReadFile(path) //nolint:gosec // G703: the README, or the draft README_PATH names
	if err != nil {
		t.Fatalf("%v (set README_PATH to test another file)", err)
	}
	text := string(raw)
	const begin, end = "<!-- quickstart:begin -->", "<!-- quickstart:end -->"
	i, j := strings.Index(text, begin), strings.Index(text, end)
	if i < 0 || j < i {
		t.Fatalf("%s has no section between %s and %s", path, begin, end)
	}
	firstLine := strings.Count(text[:i], "\n") + 1
	type block struct {
		lang, body string
		line       int
		gapOK      bool // only blank lines since the block before
	}
	var blocks []block
	var cur *block
	var body []string
	gapOK := false
	sc := bufio.NewScanner(strings.NewReader(text[i:j]))
	for n := firstLine; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &block{lang: strings.TrimSpace(strings.TrimPrefix(line, "```")), line: n, gapOK: gapOK}
			body = nil
		case cur != nil && strings.TrimSpace(line) == "```":
			cur.body = strings.Join(body, "\n")
			blocks = append(blocks, *cur)
			cur, gapOK = nil, true
		case cur != nil:
			body = append(body, line)
		case strings.TrimSpace(line) != "":
			gapOK = false
		}
	}
	if cur != nil {
		t.Fatalf("%s:%d: the block is not closed before %s", path, cur.line, end)
	}
	var steps []step
	for k := 0; k < len(blocks); k++ {
		b := blocks[k]
		if b.lang != "sh" {
			t.Fatalf("%s:%d: a ```%s block that follows no ```sh block", path, b.line, b.lang)
		}
		if strings.HasPrefix(strings.TrimSpace(b.body), "go run") {
			continue // starts the server, which the test does in-process
		}
		if k+1 == len(blocks) || !blocks[k+1].gapOK || (blocks[k+1].lang != "json" && blocks[k+1].lang != "text") {
			t.Fatalf("%s:%d: the ```sh block is not immediately followed by a ```json or ```text block", path, b.line)
		}
		steps = append(steps, step{line: b.line, script: b.body, expected: trimRight(blocks[k+1].body)})
		k++
	}
	if len(steps) == 0 {
		t.Fatalf("%s: the quickstart has no ```sh block to run", path)
	}
	return steps
}

// trimRight drops trailing whitespace from every line and the text.
func trimRight(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t\r")
	}
	return strings.TrimRight(strings.Join(lines, "\n"), "\n")
}

// waitFree waits a little for addr to be free (another test binary may
// hold it for a moment), then fails with a clear message.
func waitFree(t *testing.T, addr string) {
	t.Helper()
	var lc net.ListenConfig
	var err error
	testwait.Until(t, 15*time.Second, addr+" to be free (the README's commands use it; stop what listens there and rerun)", func() bool {
		var ln net.Listener
		if ln, err = lc.Listen(context.Background(), "tcp", addr); err != nil {
			return false
		}
		_ = ln.Close()
		return true
	})
}

// waitHealthy polls url until it answers 200, failing early if run returns.
func waitHealthy(t *testing.T, url string, done <-chan error) {
	t.Helper()
	client, closeClient := newClient()
	defer closeClient()
	testwait.Until(t, 10*time.Second, url+" to answer 200", func() bool {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := client.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		select {
		case err := <-done:
			t.Fatalf("run returned before serving: %v", err)
		default:
		}
		return false
	})
}

func newClient() (*http.Client, func()) {
	tr := &http.Transport{Proxy: nil}
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}, tr.CloseIdleConnections
}

func get(t *testing.T, client *http.Client, url, token string) (status int, body string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Session-Token", token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
