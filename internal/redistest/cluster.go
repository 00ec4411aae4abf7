package redistest

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/latencyproxy"
	"github.com/allauthgo/headless/internal/redisproc"
)

// Cluster is a private Redis Cluster of masters only (no replicas), on
// loopback.
type Cluster struct {
	// Addrs are the nodes' host:port, for gofiber/storage/redis's Addrs.
	Addrs []string
}

// StartCluster runs a Redis Cluster of n masters (n >= 3), each a private
// redis-server killed when the test ends, and waits until every node reports
// cluster_state:ok. With busDelay > 0 each node announces its cluster bus
// port through a latency proxy, so that every message between nodes
// (gossip, and PUBLISH forwarded to other nodes) arrives busDelay late. It
// skips the test with SkipMessage when redis-server or redis-cli is
// missing.
func StartCluster(tb testing.TB, n int, busDelay time.Duration) *Cluster {
	tb.Helper()
	cli, err := exec.LookPath("redis-cli")
	if _, binErr := redisproc.Bin(); binErr != nil || err != nil {
		tb.Skip(SkipMessage)
	}
	c := &Cluster{}
	for range n {
		c.Addrs = append(c.Addrs, startNode(tb, busDelay))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, addr := range c.Addrs {
		host, port, _ := strings.Cut(addr, ":")
		for {
			info, err := exec.CommandContext(ctx, cli, "-h", host, "-p", port, "cluster", "info").Output()
			if err == nil && bytes.Contains(info, []byte("cluster_state:ok")) {
				break
			}
			select {
			case <-ctx.Done():
				tb.Fatalf("cluster node %s not ok within 60s: %v\n%s", addr, err, info)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return c
}

// nodeAttempts bounds how often startNode picks a new bus port when a node
// exits at once: the free port it was given can be taken before the node
// binds it (redisproc.Start retries the client port by itself).
const nodeAttempts = 4

// startNode starts one cluster node, killed when the test ends, and returns
// its address.
func startNode(tb testing.TB, busDelay time.Duration) string {
	tb.Helper()
	for attempt := 1; ; attempt++ {
		busPort, err := redisproc.FreePort()
		if err != nil {
			tb.Fatal(err)
		}
		args := []string{
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(busPort), "--cluster-announce-ip", "127.0.0.1",
			// A slow bus must not make nodes declare each other failed.
			"--cluster-node-timeout", "30000",
		}
		var proxy *latencyproxy.Proxy
		if busDelay > 0 {
			if proxy, err = latencyproxy.Start("127.0.0.1:"+strconv.Itoa(busPort), busDelay); err != nil {
				tb.Fatal(err)
			}
			_, port, _ := strings.Cut(proxy.Addr(), ":")
			args = append(args, "--cluster-announce-bus-port", port)
		}
		p, err := redisproc.Start(args...)
		if errors.Is(err, redisproc.ErrNotInstalled) {
			tb.Skip(SkipMessage)
		}
		if err != nil {
			if proxy != nil {
				_ = proxy.Close()
			}
			if errors.Is(err, redisproc.ErrExited) && attempt < nodeAttempts {
				tb.Logf("cluster node: %v; trying other ports", err)
				continue
			}
			tb.Fatal(err)
		}
		// The node goes before its bus link (cleanups run last first).
		if proxy != nil {
			tb.Cleanup(func() { _ = proxy.Close() })
		}
		tb.Cleanup(func() { _ = p.Close() })
		return p.Addr()
	}
}
