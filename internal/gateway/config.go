package gateway

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is the gateway's configuration, read by Load from environment
// variables and same-named flags (ALLAUTH_URL is -allauth-url).
type Config struct {
	AllauthURL           string        // ALLAUTH_URL: the Django origin (required)
	AllauthMount         string        // ALLAUTH_MOUNT: where allauth.headless.urls is included
	Addr                 string        // ADDR: where the gateway listens
	KeyLookup            string        // KEY_LOOKUP: credential sources, as fiberauth.Config.KeyLookup
	AuthScheme           string        // AUTH_SCHEME: the Authorization scheme
	Optional             bool          // OPTIONAL: a request without a credential is a 200 with empty identity headers
	CacheTTL             time.Duration // CACHE_TTL
	NegativeTTL          time.Duration // NEGATIVE_TTL
	StaleIfError         time.Duration // STALE_IF_ERROR
	Timeout              time.Duration // TIMEOUT: one lookup at allauth
	MaxConcurrentLookups int           // MAX_CONCURRENT_LOOKUPS
	MaxEntries           int           // MAX_ENTRIES
	RedisURL             string        // REDIS_URL: the shared tier (redis:// or rediss://)
	RedisPrefix          string        // REDIS_PREFIX: key prefix in Redis
	RedisTimeout         time.Duration // REDIS_TIMEOUT: bound on each Redis call (headless.Config.StoreTimeout)
	StorageSecret        string        // STORAGE_SECRET: authenticates values in Redis
	EvictSecret          string        // EVICT_SECRET: mounts POST /_allauthgo/evict
	UserIndex            bool          // USER_INDEX: lets the webhook evict by user id
	JWTPublicKey         string        // JWT_PUBLIC_KEY: a PEM (or JWK/JWKS) file of allauth's JWT key
	JWTStateful          bool          // JWT_STATEFUL: also ask allauth about every verified JWT
	ShutdownTimeout      time.Duration // SHUTDOWN_TIMEOUT: how long SIGTERM waits for requests in flight

	// REDIS_URL_FILE, STORAGE_SECRET_FILE, EVICT_SECRET_FILE: the value is
	// read from this file (Docker and Kubernetes secrets), its trailing
	// newline dropped.
	RedisURLFile, StorageSecretFile, EvictSecretFile string
	LogLevel                                         slog.Level // LOG_LEVEL: debug, info, warn, error
}

// ErrHelp is returned by Load for -h or -help: the usage was printed.
var ErrHelp = flag.ErrHelp

// setting is one configuration item: its variable, its default, its help.
type setting struct {
	env, def, help string
	set            func(c *Config, v string) error
}

func settings() []setting {
	str := func(p func(*Config) *string) func(*Config, string) error {
		return func(c *Config, v string) error { *p(c) = v; return nil }
	}
	dur := func(p func(*Config) *time.Duration) func(*Config, string) error {
		return func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return errors.New("not a duration (e.g. 30s, 5m)")
			}
			*p(c) = d
			return nil
		}
	}
	boolean := func(p func(*Config) *bool) func(*Config, string) error {
		return func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return errors.New("not a boolean (true or false)")
			}
			*p(c) = b
			return nil
		}
	}
	integer := func(p func(*Config) *int) func(*Config, string) error {
		return func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return errors.New("not an integer")
			}
			*p(c) = n
			return nil
		}
	}
	return []setting{
		{"ALLAUTH_URL", "", "the Django origin that serves allauth, e.g. http://django:8000 (required)", str(func(c *Config) *string { return &c.AllauthURL })},
		{"ALLAUTH_MOUNT", "/_allauth", "where the Django project includes allauth.headless.urls", str(func(c *Config) *string { return &c.AllauthMount })},
		{"ADDR", "127.0.0.1:4180", "host:port to listen on", str(func(c *Config) *string { return &c.Addr })},
		{"KEY_LOOKUP", "header:X-Session-Token", `credential sources tried in order, e.g. "header:X-Session-Token,header:Authorization,cookie:sessionid"`, str(func(c *Config) *string { return &c.KeyLookup })},
		{"AUTH_SCHEME", "Bearer", "the scheme expected in the Authorization header", str(func(c *Config) *string { return &c.AuthScheme })},
		{"OPTIONAL", "false", "answer a request without a credential with 200 and empty identity headers instead of 401", boolean(func(c *Config) *bool { return &c.Optional })},
		{"CACHE_TTL", "30s", "how long an authenticated answer is served without asking allauth", dur(func(c *Config) *time.Duration { return &c.CacheTTL })},
		{"NEGATIVE_TTL", "5s", "how long allauth's 401 or 410 is served (negative: off)", dur(func(c *Config) *time.Duration { return &c.NegativeTTL })},
		{"STALE_IF_ERROR", "0s", "serve a session expired less than this long ago while allauth fails", dur(func(c *Config) *time.Duration { return &c.StaleIfError })},
		{"TIMEOUT", "2s", "bound on one lookup at allauth, a retry included", dur(func(c *Config) *time.Duration { return &c.Timeout })},
		{"MAX_CONCURRENT_LOOKUPS", "64", "lookups in flight at allauth (negative: unlimited)", integer(func(c *Config) *int { return &c.MaxConcurrentLookups })},
		{"MAX_ENTRIES", "100000", "bound on the in-process cache", integer(func(c *Config) *int { return &c.MaxEntries })},
		{"REDIS_URL", "", "the shared cache tier, e.g. redis://:password@redis:6379/0 (evictions reach every gateway by pub/sub)", str(func(c *Config) *string { return &c.RedisURL })},
		{"REDIS_PREFIX", "allauthgo:", "prefix of every key written to Redis (one per deployment sharing a Redis)", str(func(c *Config) *string { return &c.RedisPrefix })},
		{"REDIS_TIMEOUT", "50ms", "bound on each Redis call; past it the call counts as failed and allauth is asked", dur(func(c *Config) *time.Duration { return &c.RedisTimeout })},
		{"STORAGE_SECRET", "", "at least 16 bytes shared by the gateways: authenticates every value in Redis", str(func(c *Config) *string { return &c.StorageSecret })},
		{"EVICT_SECRET", "", "at least 32 bytes shared with Django (ALLAUTHGO_EVICT_SECRET): mounts POST /_allauthgo/evict", str(func(c *Config) *string { return &c.EvictSecret })},
		{"USER_INDEX", "false", "keep a user -> sessions index so that the webhook's user_ids evict every session of a user", boolean(func(c *Config) *bool { return &c.UserIndex })},
		{"JWT_PUBLIC_KEY", "", "a file with allauth's JWT public key (PEM, JWK or JWK Set): Bearer JWTs are verified in process", str(func(c *Config) *string { return &c.JWTPublicKey })},
		{"JWT_STATEFUL", "false", "also ask allauth (through the cache) about every JWT that verified", boolean(func(c *Config) *bool { return &c.JWTStateful })},
		{"REDIS_URL_FILE", "", "a file holding REDIS_URL (a Docker or Kubernetes secret)", str(func(c *Config) *string { return &c.RedisURLFile })},
		{"STORAGE_SECRET_FILE", "", "a file holding STORAGE_SECRET", str(func(c *Config) *string { return &c.StorageSecretFile })},
		{"EVICT_SECRET_FILE", "", "a file holding EVICT_SECRET", str(func(c *Config) *string { return &c.EvictSecretFile })},
		{"SHUTDOWN_TIMEOUT", "10s", "how long SIGTERM waits for requests in flight", dur(func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
		{"LOG_LEVEL", "info", "debug, info, warn or error", func(c *Config, v string) error {
			return c.LogLevel.UnmarshalText([]byte(v))
		}},
	}
}

// flagName is the flag of an environment variable: ALLAUTH_URL is
// -allauth-url.
func flagName(env string) string { return strings.ReplaceAll(strings.ToLower(env), "_", "-") }

// Load reads the configuration: each setting's default, then its
// environment variable (getenv), then its flag in args, the last that is
// set winning. It returns an error naming the setting that is wrong, or
// ErrHelp after printing the usage to usage for -h.
func Load(args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	var c Config
	all := settings()
	fs := flag.NewFlagSet("allauthgo-gateway", flag.ContinueOnError)
	fs.SetOutput(usage)
	values := make([]*flagValue, len(all))
	for i, s := range all {
		v := &flagValue{s: s.def, isBool: s.def == "false"}
		// Registered with the built-in default, so that -h never prints a
		// value (a secret) from the environment.
		fs.Var(v, flagName(s.env), s.help+" ($"+s.env+")")
		if e := getenv(s.env); e != "" {
			v.s = e
		}
		values[i] = v
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (settings are flags or environment variables)", fs.Arg(0))
	}
	for i, s := range all {
		if err := s.set(&c, strings.TrimSpace(values[i].s)); err != nil {
			return c, fmt.Errorf("%s=%q: %w", s.env, values[i].s, err)
		}
	}
	if err := c.readFiles(); err != nil {
		return c, err
	}
	return c, c.check()
}

// readFiles fills the settings given as *_FILE, refusing a setting given
// both ways.
func (c *Config) readFiles() error {
	for _, f := range []struct {
		name  string
		path  string
		value *string
	}{
		{"REDIS_URL", c.RedisURLFile, &c.RedisURL},
		{"STORAGE_SECRET", c.StorageSecretFile, &c.StorageSecret},
		{"EVICT_SECRET", c.EvictSecretFile, &c.EvictSecret},
	} {
		if f.path == "" {
			continue
		}
		if *f.value != "" {
			return fmt.Errorf("%s and %s_FILE are both set; give one", f.name, f.name)
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			// The error names the file, never its content.
			return fmt.Errorf("%s_FILE: %w", f.name, err)
		}
		*f.value = strings.TrimRight(string(b), "\r\n")
	}
	return nil
}

// check says what in c cannot work, before anything is started. What the
// core checks itself (sources, secrets' lengths, the JWT key) is left to
// it: New reports it.
func (c Config) check() error {
	if c.AllauthURL == "" {
		return errors.New("ALLAUTH_URL is required: the Django origin that serves allauth, e.g. http://django:8000")
	}
	if u, err := url.Parse(c.AllauthURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("ALLAUTH_URL=%q: want an http(s) origin such as http://django:8000", c.AllauthURL)
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("ADDR=%q: want host:port, e.g. 127.0.0.1:4180 or :4180", c.Addr)
	}
	if c.RedisURL == "" && c.StorageSecret != "" {
		return errors.New("STORAGE_SECRET needs REDIS_URL: it authenticates the values the gateways share there")
	}
	if c.JWTPublicKey != "" {
		if _, err := os.Stat(c.JWTPublicKey); err != nil {
			return fmt.Errorf("JWT_PUBLIC_KEY: %w", err)
		}
	}
	if c.RedisTimeout <= 0 {
		return fmt.Errorf("REDIS_TIMEOUT=%s: want a positive duration such as 50ms", c.RedisTimeout)
	}
	if c.ShutdownTimeout < 0 {
		return errors.New("SHUTDOWN_TIMEOUT must not be negative")
	}
	return nil
}

// flagValue is a setting's raw value; a boolean's flag may be given alone
// (-optional means -optional=true).
type flagValue struct {
	s      string
	isBool bool
}

func (v *flagValue) String() string {
	if v == nil {
		return ""
	}
	return v.s
}

func (v *flagValue) Set(s string) error { v.s = s; return nil }

func (v *flagValue) IsBoolFlag() bool { return v.isBool }
