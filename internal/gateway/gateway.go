// Package gateway is the forward-auth server behind cmd/allauthgo-gateway:
// nginx (auth_request), Caddy (forward_auth), Traefik (forwardAuth) and
// Envoy (ext_authz, HTTP) ask its /auth whether a request may through and
// who sent it, and it answers by the front doors' contract (see
// docs/gateway.md). It builds on the public API of package headless only.
package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/gofiber/storage/redis/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	goredis "github.com/redis/go-redis/v9"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/authprom"
)

// Gateway is the forward-auth server's handler and what it holds: the
// Authenticator and, with REDIS_URL, the Redis connection.
type Gateway struct {
	cfg     Config
	log     *slog.Logger
	auth    *headless.Authenticator
	storage *redis.Storage // nil without REDIS_URL
	ready   http.Handler
	metrics http.Handler
	evict   http.Handler // nil without EVICT_SECRET
}

// New builds the gateway for cfg, or returns an error saying what in cfg
// cannot work (a bad KEY_LOOKUP, REDIS_URL or JWT key, a short secret...).
// Nothing listens yet; Close releases what New made.
func New(cfg Config, log *slog.Logger) (*Gateway, error) {
	sources, err := parseKeyLookup(cfg.KeyLookup, cfg.AuthScheme)
	if err != nil {
		return nil, err
	}
	core := headless.Config{
		BaseURL:              cfg.AllauthURL,
		Mount:                cfg.AllauthMount,
		Sources:              sources,
		Timeout:              cfg.Timeout,
		MaxConcurrentLookups: cfg.MaxConcurrentLookups,
		CacheTTL:             cfg.CacheTTL,
		NegativeTTL:          cfg.NegativeTTL,
		MaxEntries:           cfg.MaxEntries,
		Prefix:               cfg.RedisPrefix,
		StoreTimeout:         cfg.RedisTimeout,
		StaleIfError:         cfg.StaleIfError,
		UserIndex:            cfg.UserIndex,
		JWTStateful:          cfg.JWTStateful,
		Logger:               log,
	}
	if cfg.StorageSecret != "" {
		core.StorageSecret = []byte(cfg.StorageSecret)
	}
	if cfg.JWTPublicKey != "" {
		core.JWT = newOf(core.JWT)
		core.JWT.PublicKeyFile = cfg.JWTPublicKey
	}
	g := &Gateway{cfg: cfg, log: log}
	if cfg.RedisURL != "" {
		opts, err := goredis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %s", redactedErr(err, cfg.RedisURL))
		}
		// NewFromConnection does not ping: a Redis down at startup is an
		// outage the cache rides out (misses ask allauth), not a crash.
		g.storage = redis.NewFromConnection(goredis.NewClient(opts))
		core.Storage = g.storage
	}
	if g.auth, err = headless.New(core); err != nil {
		_ = g.closeStorage()
		return nil, unprefixed(err)
	}
	if cfg.EvictSecret != "" {
		if g.evict, err = headless.EvictHandler(headless.EvictConfig{Secret: []byte(cfg.EvictSecret)}, g.auth); err != nil {
			_ = g.Close()
			return nil, fmt.Errorf("EVICT_SECRET: %w", unprefixed(err))
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(authprom.New(g.auth))
	g.metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	g.ready = g.auth.Ready()
	return g, nil
}

// newOf returns a new zero value of what p points to. It fills Config.JWT
// without naming its type, which lives in a package that is to move under
// internal/: the gateway keeps to headless's own API.
func newOf[T any](*T) *T { return new(T) }

// unprefixed is err without the core's "headless: " prefix: the gateway's
// users set variables, not Go fields.
func unprefixed(err error) error {
	const p = "headless: "
	if s := err.Error(); len(s) > len(p) && s[:len(p)] == p {
		return errors.New(s[len(p):])
	}
	return err
}

// redactedErr is err's text with the URL's password (if any) masked.
func redactedErr(err error, raw string) string {
	s := err.Error()
	if u, perr := url.Parse(raw); perr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			s = strings.ReplaceAll(s, pw, "xxxxx")
		}
	}
	return s
}

// Authenticator is the gateway's core, for tests and embedding.
func (g *Gateway) Authenticator() *headless.Authenticator { return g.auth }

// Close stops the cache's goroutines and closes the Redis connection.
func (g *Gateway) Close() error {
	err := g.auth.Close()
	return errors.Join(err, g.closeStorage())
}

func (g *Gateway) closeStorage() error {
	if g.storage == nil {
		return nil
	}
	return g.storage.Close()
}
