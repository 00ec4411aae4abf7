package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/exampletest"

	"go.uber.org/goleak"
)

// TestRun starts the example in-process on free ports with its stand-in,
// logs in there as the printed command does, and calls the API: 200 with the
// token, 401 without, 410 after a logout, anonymous on the public route.
func TestRun(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr exampletest.SyncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, exampletest.Env(map[string]string{"ADDR": "127.0.0.1:0", "STANDIN_ADDR": "127.0.0.1:0"}), &stdout, &stderr)
	}()
	m := exampletest.WaitFor(t, &stdout, regexp.MustCompile(`allauth on (\S+); API on (\S+)\n`), done)
	allauth, api := m[1], m[2]
	if !strings.Contains(stdout.String(), "curl -s "+api+"/api/me -H \"X-Session-Token: $TOKEN\"") {
		t.Errorf("the printed commands do not call the API:\n%s", stdout.String())
	}

	tr := &http.Transport{Proxy: nil}
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	token := login(t, client, allauth)
	if status, body := call(t, client, http.MethodGet, api+"/api/me", token); status != http.StatusOK || !strings.Contains(body, `"username":"demo"`) {
		t.Errorf("/api/me with the token: %d %s", status, body)
	}
	if status, body := call(t, client, http.MethodGet, api+"/api/me", ""); status != http.StatusUnauthorized {
		t.Errorf("/api/me without a token: %d %s", status, body)
	}
	if status, body := call(t, client, http.MethodGet, api+"/api/public", ""); status != http.StatusOK || body != `{"user":null}` {
		t.Errorf("/api/public without a token: %d %s", status, body)
	}
	gone := login(t, client, allauth)
	call(t, client, http.MethodDelete, allauth+"/_allauth/app/v1/auth/session", gone) // log out
	if status, body := call(t, client, http.MethodGet, api+"/api/me", gone); status != http.StatusGone {
		t.Errorf("/api/me after a logout: %d %s", status, body)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run returned %v, want nil", err)
	}
	tr.CloseIdleConnections()
	if strings.Contains(stderr.String(), token) || strings.Contains(stderr.String(), gone) {
		t.Errorf("a log line holds a token:\n%s", stderr.String())
	}
	goleak.VerifyNone(t, ignore,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"))
}

// login logs the demo user in at the stand-in and returns the session token.
func login(t *testing.T, client *http.Client, allauth string) string {
	t.Helper()
	body := `{"username": "` + demoUser + `", "password": "` + demoPassword + `"}`
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, allauth+"/_allauth/app/v1/auth/login", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var out struct {
		Meta struct {
			SessionToken string `json:"session_token"`
		} `json:"meta"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Meta.SessionToken == "" {
		t.Fatalf("login: %d, %v", resp.StatusCode, err)
	}
	return out.Meta.SessionToken
}

func call(t *testing.T, client *http.Client, method, url, token string) (status int, body string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, http.NoBody)
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
