package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/exampletest"
	"github.com/allauthgo/headless/internal/testwait"

	"go.uber.org/goleak"

	"github.com/allauthgo/headless"
)

const evictSecret = "0123456789abcdef0123456789abcdef-test-only"

// TestRun starts the example in process on free ports with the stand-in,
// runs the curl lines it prints (when curl is there), and checks the
// contract over real HTTP: 200, 401, 410, the optional route, /readyz and a
// signed eviction.
func TestRun(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr exampletest.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, exampletest.Env(map[string]string{"ADDR": "127.0.0.1:0", "STANDIN_ADDR": "127.0.0.1:0", "EVICT_SECRET": evictSecret}), &stdout, &stderr)
	}()
	m := exampletest.WaitFor(t, &stdout, regexp.MustCompile(`stand-in allauth on (http://\S+) .*; API on (http://\S+)`), done)
	allauth, api := m[1], m[2]
	client, closeClient := newClient()
	defer closeClient()
	waitOK(t, client, api+"/healthz", done)

	token := login(t, client, allauth)
	if status, body := get(t, client, api+"/api/me", token); status != http.StatusOK || !strings.Contains(body, `"username":"demo"`) {
		t.Errorf("/api/me with the token = %d %s", status, body)
	}
	if status, _ := get(t, client, api+"/api/me", ""); status != http.StatusUnauthorized {
		t.Errorf("/api/me without a token = %d, want 401", status)
	}
	if status, _ := get(t, client, api+"/api/me", "0123456789abcdefghijklmnopqrstuv"); status != http.StatusGone {
		t.Errorf("/api/me with an unknown token = %d, want 410", status)
	}
	if status, body := get(t, client, api+"/api/public", ""); status != http.StatusOK || strings.TrimSpace(body) != `{"user":null}` {
		t.Errorf("/api/public = %d %s", status, body)
	}
	if status, body := get(t, client, api+"/readyz", ""); status != http.StatusOK {
		t.Errorf("/readyz = %d %s", status, body)
	}

	// The printed commands work as printed.
	if _, err := exec.LookPath("curl"); err == nil {
		var script []string
		for _, line := range strings.Split(stdout.String(), "\n") {
			if strings.HasPrefix(line, "  ") {
				script = append(script, strings.TrimSpace(line))
			}
		}
		//nolint:gosec // G204: running the printed commands is the point
		cmd := exec.CommandContext(ctx, "bash", "--noprofile", "--norc", "-c", strings.Join(script, "\n"))
		cmd.Env = append(os.Environ(), "NO_PROXY=127.0.0.1", "no_proxy=127.0.0.1")
		out, err := cmd.Output()
		if err != nil || !strings.Contains(string(out), `"username":"demo"`) || !strings.Contains(string(out), `{"user":null}`) ||
			!strings.Contains(string(out), `"status": "up"`) {
			t.Errorf("the printed commands: %v\n%s", err, out)
		}
	}

	// A signed eviction from Django drops the token's cached answer.
	body := []byte(`{"nonce": "n1", "session_keys": ["` + token + `"]}`)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(evictSecret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, api+"/_allauthgo/evict", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(headless.HeaderEvictTimestamp, ts)
	req.Header.Set(headless.HeaderEvictSignature, "v1="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(got), `"evicted": `) || strings.Contains(string(got), `"evicted": 0`) {
		t.Errorf("eviction = %d %s, want 200 with entries evicted", resp.StatusCode, got)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run returned %v, want nil after the context ended", err)
	}
	if strings.Contains(stderr.String(), token) {
		t.Errorf("a log line holds the session token:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "msg=stopped") {
		t.Errorf("no clean-stop log line:\n%s", stderr.String())
	}
	closeClient()
	goleak.VerifyNone(t, ignore)
}

// TestRunRejectsBadEnv checks that bad input is a clear *envError (exit
// code 2) before anything starts.
func TestRunRejectsBadEnv(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{"CACHE_TTL", "ten seconds", `CACHE_TTL="ten seconds": want a positive Go duration`},
		{"ADDR", "3000", `ADDR="3000": want host:port`},
		{"ALLAUTH_URL", "ftp://allauth", `ALLAUTH_URL="ftp://allauth": want the Django origin`},
		{"EVICT_SECRET", "short", `EVICT_SECRET="(hidden)": want at least 32 bytes`},
	} {
		vars := map[string]string{"ADDR": "127.0.0.1:0", "STANDIN_ADDR": "127.0.0.1:0", tc.name: tc.value}
		var stdout, stderr exampletest.SyncBuffer
		err := run(context.Background(), exampletest.Env(vars), &stdout, &stderr)
		var bad *envError
		if !errors.As(err, &bad) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%q: run = %v, want an *envError saying %q", tc.name, tc.value, err, tc.want)
		}
		if stdout.String() != "" || stderr.String() != "" {
			t.Errorf("%s: run printed before failing:\n%s%s", tc.name, stdout.String(), stderr.String())
		}
	}
}

// login logs demo in at the stand-in and returns the session token.
func login(t *testing.T, client *http.Client, allauth string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, allauth+"/_allauth/app/v1/auth/login",
		strings.NewReader(`{"username": "demo", "password": "demo-password"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`"session_token": "([a-z0-9]+)"`).FindSubmatch(b)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("login: %d %s", resp.StatusCode, b)
	}
	return string(m[1])
}

// waitOK waits for url to answer 200 (the server starts after printing).
func waitOK(t *testing.T, client *http.Client, url string, done <-chan error) {
	t.Helper()
	testwait.Until(t, 30*time.Second, url+" to answer 200", func() bool {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, http.NoBody)
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
			t.Fatalf("run returned: %v", err)
		default:
		}
		return false
	})
}

func newClient() (*http.Client, func()) {
	tr := &http.Transport{Proxy: nil}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, tr.CloseIdleConnections
}

func get(t *testing.T, client *http.Client, url, token string) (status int, body string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set(headless.HeaderSessionToken, token)
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
