package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/allauthgo/headless/internal/testwait"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// A bad configuration is exit status 2 with a message naming the setting,
// before anything listens.
func TestRun_BadConfigurationExits2(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{nil, "ALLAUTH_URL is required"},
		{[]string{"ALLAUTH_URL", "http://127.0.0.1:1", "EVICT_SECRET", "short"}, "EVICT_SECRET"},
		{[]string{"ALLAUTH_URL", "http://127.0.0.1:1", "KEY_LOOKUP", "form:x"}, "KEY_LOOKUP"},
	} {
		var stderr bytes.Buffer
		if code := run(context.Background(), nil, env(tc.env...), &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2", tc.env, code)
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%q: stderr %q, want %q", tc.env, stderr.String(), tc.want)
		}
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// The program serves, logs JSON without the token, and on SIGTERM lets a
// request in flight finish before it exits 0. It runs as a real process,
// since the signal is the point.
func TestProgram_ServesAndStopsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := t.TempDir() + "/allauthgo-gateway"
	if out, err := exec.CommandContext(context.Background(), "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	srv := allauthtest.NewServer()
	defer srv.Close()
	srv.AddUser(allauthtest.User{Username: "alice", Password: "alice-pass-123"})
	tok := srv.IssueToken("alice")

	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	cmd := exec.CommandContext(context.Background(), bin, "-addr", addr)
	cmd.Env = append(os.Environ(), "ALLAUTH_URL="+srv.URL, "LOG_LEVEL=debug")
	var logs syncBuffer
	cmd.Stderr = &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		if err := <-done; err != nil {
			t.Logf("exit: %v", err)
		}
	}()

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	get := func(path string, h ...string) (int, http.Header, error) {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+addr+path, http.NoBody)
		for i := 0; i+1 < len(h); i += 2 {
			req.Header.Set(h[i], h[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode, resp.Header, nil
	}
	// Real time: the process starts on its own.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway logs:\n%s", logs.String())
		}
	})
	testwait.Until(t, 10*time.Second, "/healthz to answer 200", func() bool {
		code, _, err := get("/healthz")
		return err == nil && code == 200
	})
	if code, h, err := get("/auth", "X-Session-Token", tok); err != nil || code != 200 || h.Get("X-Auth-User-Id") != "1" {
		t.Fatalf("/auth: %d %v %v", code, h, err)
	}

	// A request in flight when SIGTERM arrives: allauth answers it slowly.
	srv.SetFault(allauthtest.Fault{Delay: 500 * time.Millisecond})
	slow := make(chan int, 1)
	go func() {
		code, _, err := get("/auth", "X-Session-Token", srv.IssueToken("alice"))
		if err != nil {
			code = -1
		}
		slow <- code
	}()
	testwait.Until(t, 10*time.Second, "the slow request to reach allauth", func() bool { return srv.InFlight() != 0 })
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := <-slow; code != 200 {
		t.Errorf("the request in flight got %d, want 200", code)
	}
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Errorf("exit: %v; logs:\n%s", err, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10s after SIGTERM")
	}
	out := logs.String()
	for _, want := range []string{`"msg":"gateway listening"`, `"msg":"gateway stopped"`, `"addr":"` + addr + `"`} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, tok) {
		t.Errorf("the logs hold a token:\n%s", out)
	}
	if _, _, err := get("/healthz"); err == nil {
		t.Error("still answering after exit")
	}
}
