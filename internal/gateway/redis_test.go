package gateway_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/redistest"
	"github.com/allauthgo/headless/internal/testwait"
)

// Two gateways sharing a real redis-server, one behind nginx and one behind
// Caddy: a session one of them looked up is served by the other without
// asking allauth, and a logout sent to one gateway's webhook ends the
// session behind both proxies at once (Redis pub/sub).
func TestProxies_TwoGatewaysShareRedis(t *testing.T) {
	srv := newAllauth(t)
	redisURL := "redis://" + redistest.Addr(t) + "/0"
	// A prefix of this run's own: REDIS_ADDR may be a Redis other tests share.
	prefix := "gwtest-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	cfg := testConfig(srv.URL)
	cfg.RedisURL, cfg.RedisPrefix = redisURL, prefix
	cfg.StorageSecret = "a-storage-secret-of-32-bytes-xyz"
	// The call count below needs every Redis call to succeed: on a loaded
	// machine one can outlast the 50 ms default and turn the shared read
	// into a (correct, but here unwanted) miss.
	cfg.RedisTimeout = 2 * time.Second
	_, gwA := startGateway(t, cfg)
	_, gwB := startGateway(t, cfg)
	a := newApp(t)
	viaNginx := startNginx(t, gwA, a.addr())
	viaCaddy := startCaddy(t, gwB, a.addr())
	c := client(t)

	// Each gateway's first Redis calls dial its connections. Warm both
	// first.
	warm := srv.IssueToken("alice")
	wantUser(t, a, do(t, c, "GET", viaNginx+"/x", "X-Session-Token", warm), "1", "alice@example.com", "alice", "Alice Liddell")
	wantUser(t, a, do(t, c, "GET", viaCaddy+"/x", "X-Session-Token", warm), "1", "alice@example.com", "alice", "Alice Liddell")

	tok := srv.IssueToken("alice")
	srv.ResetCounters()
	wantUser(t, a, do(t, c, "GET", viaNginx+"/x", "X-Session-Token", tok), "1", "alice@example.com", "alice", "Alice Liddell")
	wantUser(t, a, do(t, c, "GET", viaCaddy+"/x", "X-Session-Token", tok), "1", "alice@example.com", "alice", "Alice Liddell")
	if n := srv.SessionCalls(); n != 1 {
		t.Fatalf("allauth was asked %d times, want 1: the second gateway reads the first's answer from Redis", n)
	}

	srv.Logout(tok)
	if got := evict(t, c, gwA, tok); got.status != 200 || !strings.Contains(got.body, `"evicted": `) {
		t.Fatalf("eviction at gateway A: %d %s", got.status, got.body)
	}
	// Pub/sub reaches B asynchronously: real time, bounded generously.
	var got answer
	testwait.Until(t, 5*time.Second, "the evicted token to get 410 behind gateway B", func() bool {
		if got = do(t, c, "GET", viaCaddy+"/x", "X-Session-Token", tok); got.status == 410 {
			return true
		}
		a.take()
		return false
	})
	wantRefused(t, a, got, 410, bodyGone, "", "")
	wantRefused(t, a, do(t, c, "GET", viaNginx+"/x", "X-Session-Token", tok), 410, bodyGone, "", "")
}

// nginx in front of a gateway that does not answer (stopped): the
// documented fallback fails closed with the doors' 503 and Retry-After.
func TestNginx_GatewayDown(t *testing.T) {
	a := newApp(t)
	base := startNginx(t, "127.0.0.1:"+itoa(freePort(t)), a.addr())
	got := do(t, client(t), "GET", base+"/api/me", "X-Session-Token", strings.Repeat("a", 32))
	wantRefused(t, a, got, 503, bodyUnavailable, "", "1")
}

// Caddy in front of a gateway that does not answer: forward_auth's own 502,
// never the app.
func TestCaddy_GatewayDown(t *testing.T) {
	a := newApp(t)
	base := startCaddy(t, "127.0.0.1:"+itoa(freePort(t)), a.addr())
	got := do(t, client(t), "GET", base+"/api/me", "X-Session-Token", strings.Repeat("a", 32))
	if got.status != 502 {
		t.Errorf("got %d %q, want Caddy's 502", got.status, got.body)
	}
	if n := len(a.take()); n != 0 {
		t.Errorf("the app got %d requests, want none", n)
	}
}
