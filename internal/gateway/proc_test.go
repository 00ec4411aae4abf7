package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Skip messages of the proxy tests name NGINX_BIN or CADDY_BIN, so that CI
// (.ci/run), where both are installed, fails the run instead of hiding a
// skip.
const (
	nginxSkip = "no nginx: install it (apt-get install nginx) or set NGINX_BIN"
	caddySkip = "no caddy: install it (apt-get install caddy) or set CADDY_BIN"
)

// binary returns the proxy to run (the env variable, else the name on
// PATH), or skips the test with msg.
func binary(t *testing.T, env, name, msg string) string {
	t.Helper()
	if b := os.Getenv(env); b != "" {
		return b
	}
	b, err := exec.LookPath(name)
	if err != nil {
		for _, p := range []string{"/usr/sbin/" + name, "/usr/bin/" + name} {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
		t.Skip(msg)
	}
	return b
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	a, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		t.Fatalf("listener address %v", ln.Addr())
	}
	return a.Port
}

// syncBuffer collects a process's output for the failure message.
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

// startProc runs a proxy until the test ends (SIGTERM, then SIGKILL) and
// waits until probe answers on addr. The kernel kills it if the test binary
// dies first (Pdeathsig).
func startProc(t *testing.T, addr string, env []string, bin string, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(context.Background(), bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", bin, out.String())
		}
	})
	// Real time: the process starts on its own clock.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := (&net.Dialer{Timeout: 200 * time.Millisecond}).DialContext(context.Background(), "tcp", addr)
		if err == nil {
			_ = c.Close()
			return
		}
		select {
		case <-done:
			t.Fatalf("%s exited before listening on %s:\n%s", bin, addr, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen on %s within 10s:\n%s", bin, addr, out.String())
		}
	}
}

// deployFile reads a configuration from deploy/ and makes the given
// replacements, each of which must occur: the test runs the documented file.
func deployFile(t *testing.T, name string, repl ...string) string {
	t.Helper()
	b, err := os.ReadFile("../../deploy/" + name)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(repl); i += 2 {
		if !bytes.Contains([]byte(s), []byte(repl[i])) {
			t.Fatalf("deploy/%s has no %q", name, repl[i])
		}
		s = string(bytes.ReplaceAll([]byte(s), []byte(repl[i]), []byte(repl[i+1])))
	}
	return s
}

// startNginx runs nginx with deploy/nginx/allauthgo.conf, pointed at the
// gateway and the app, on a free 127.0.0.1 port, and returns its URL.
func startNginx(t *testing.T, gatewayAddr, appAddr string) string {
	t.Helper()
	bin := binary(t, "NGINX_BIN", "nginx", nginxSkip)
	dir := t.TempDir()
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	site := deployFile(t, "nginx/allauthgo.conf",
		"server gateway:4180;", "server "+gatewayAddr+";",
		"server app:3000;", "server "+appAddr+";",
		"listen 80;", "listen "+addr+";")
	if err := os.WriteFile(dir+"/site.conf", []byte(site), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log stderr warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/site.conf;
}
`, dir)
	if err := os.WriteFile(dir+"/nginx.conf", []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	startProc(t, addr, nil, bin, "-p", dir, "-e", "stderr", "-c", dir+"/nginx.conf")
	return "http://" + addr
}

// startCaddy runs caddy with deploy/caddy/Caddyfile, pointed at the gateway
// and the app, on a free 127.0.0.1 port, and returns its URL.
func startCaddy(t *testing.T, gatewayAddr, appAddr string) string {
	t.Helper()
	bin := binary(t, "CADDY_BIN", "caddy", caddySkip)
	dir := t.TempDir()
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	site := deployFile(t, "caddy/Caddyfile",
		"forward_auth gateway:4180", "forward_auth "+gatewayAddr,
		"reverse_proxy app:3000", "reverse_proxy "+appAddr,
		":80 {", "http://"+addr+" {")
	conf := "{\n\tadmin off\n\tauto_https off\n}\n\n" + site
	if err := os.WriteFile(dir+"/Caddyfile", []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"HOME=" + dir, "XDG_DATA_HOME=" + dir + "/data", "XDG_CONFIG_HOME=" + dir + "/config"}
	startProc(t, addr, env, bin, "run", "--config", dir+"/Caddyfile", "--adapter", "caddyfile")
	return "http://" + addr
}
