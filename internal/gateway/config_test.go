package gateway_test

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/gateway"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// Defaults, then the environment, then flags.
func TestLoad_Precedence(t *testing.T) {
	c, err := gateway.Load(nil, env("ALLAUTH_URL", "http://django:8000"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:4180" || c.CacheTTL != 30*time.Second || c.KeyLookup != "header:X-Session-Token" || c.Optional {
		t.Errorf("defaults: %+v", c)
	}
	c, err = gateway.Load([]string{"-cache-ttl", "1m", "-optional"},
		env("ALLAUTH_URL", "http://django:8000", "CACHE_TTL", "10s", "ADDR", ":9000", "OPTIONAL", "false"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.CacheTTL != time.Minute || c.Addr != ":9000" || !c.Optional {
		t.Errorf("env and flags: %+v", c)
	}
}

// Every bad setting is refused by Load or New, naming the variable, before
// anything listens.
func TestLoad_BadConfiguration(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{nil, "ALLAUTH_URL is required"},
		{[]string{"ALLAUTH_URL", "django:8000"}, "ALLAUTH_URL="},
		{[]string{"ALLAUTH_URL", "ftp://django"}, "ALLAUTH_URL="},
		{[]string{"ALLAUTH_URL", "http://d", "ADDR", "4180"}, "ADDR="},
		{[]string{"ALLAUTH_URL", "http://d", "CACHE_TTL", "30"}, "CACHE_TTL="},
		{[]string{"ALLAUTH_URL", "http://d", "REDIS_TIMEOUT", "0s"}, "REDIS_TIMEOUT="},
		{[]string{"ALLAUTH_URL", "http://d", "OPTIONAL", "yes please"}, "OPTIONAL="},
		{[]string{"ALLAUTH_URL", "http://d", "LOG_LEVEL", "loud"}, "LOG_LEVEL="},
		{[]string{"ALLAUTH_URL", "http://d", "STORAGE_SECRET", "0123456789abcdef"}, "STORAGE_SECRET needs REDIS_URL"},
		{[]string{"ALLAUTH_URL", "http://d", "JWT_PUBLIC_KEY", "/nonexistent.pem"}, "JWT_PUBLIC_KEY"},
		{[]string{"ALLAUTH_URL", "http://d", "KEY_LOOKUP", "query:token"}, "KEY_LOOKUP source \"query\""},
		{[]string{"ALLAUTH_URL", "http://d", "KEY_LOOKUP", "cookie:a,cookie:b"}, "cookies"},
		{[]string{"ALLAUTH_URL", "http://d", "EVICT_SECRET", "short"}, "EVICT_SECRET"},
		{[]string{"ALLAUTH_URL", "http://d", "REDIS_URL", "redis://h:6379", "STORAGE_SECRET", "short"}, "StorageSecret"},
		{[]string{"ALLAUTH_URL", "http://d", "REDIS_URL", "mysql://user:hunter2@h/0"}, "REDIS_URL"},
	} {
		c, err := gateway.Load(nil, env(tc.env...), io.Discard)
		if err == nil {
			var g *gateway.Gateway
			if g, err = gateway.New(c, slog.New(slog.DiscardHandler)); err == nil {
				_ = g.Close()
			}
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.env, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: the error shows the password: %v", tc.env, err)
		}
	}
}

// Secrets can come from files (Docker and Kubernetes secrets), not both
// ways at once.
func TestLoad_SecretFiles(t *testing.T) {
	dir := t.TempDir()
	secret := dir + "/evict"
	if err := os.WriteFile(secret, []byte(strings.Repeat("s", 40)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := gateway.Load(nil, env("ALLAUTH_URL", "http://d", "EVICT_SECRET_FILE", secret), io.Discard)
	if err != nil || c.EvictSecret != strings.Repeat("s", 40) {
		t.Fatalf("%q, %v", c.EvictSecret, err)
	}
	if _, err := gateway.Load(nil, env("ALLAUTH_URL", "http://d", "EVICT_SECRET_FILE", secret, "EVICT_SECRET", "x"), io.Discard); err == nil ||
		!strings.Contains(err.Error(), "both set") {
		t.Errorf("both: %v", err)
	}
	if _, err := gateway.Load(nil, env("ALLAUTH_URL", "http://d", "STORAGE_SECRET_FILE", dir+"/missing"), io.Discard); err == nil ||
		!strings.Contains(err.Error(), "STORAGE_SECRET_FILE") {
		t.Errorf("missing file: %v", err)
	}
}

// -h prints the built-in defaults, never a value (a secret) from the
// environment.
func TestLoad_HelpShowsNoSecret(t *testing.T) {
	var usage strings.Builder
	_, err := gateway.Load([]string{"-h"}, env("ALLAUTH_URL", "http://d", "EVICT_SECRET", "evict-secret-from-the-environment-xyz",
		"REDIS_URL", "redis://:hunter2@redis:6379"), &usage)
	if !errors.Is(err, gateway.ErrHelp) {
		t.Fatalf("err %v, want ErrHelp", err)
	}
	if !strings.Contains(usage.String(), "-evict-secret") {
		t.Fatalf("no usage: %q", usage.String())
	}
	for _, s := range []string{"evict-secret-from-the-environment", "hunter2"} {
		if strings.Contains(usage.String(), s) {
			t.Errorf("the usage shows %q:\n%s", s, usage.String())
		}
	}
}
