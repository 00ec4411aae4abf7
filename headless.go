package headless

import (
	"context"
	"errors"
	"fmt"

	"github.com/allauthgo/headless/internal/allauth"
	"github.com/allauthgo/headless/internal/cache"
	"github.com/allauthgo/headless/introspect"
)

// Authenticator decides who is calling: it reads a request's credential,
// answers from its cache or asks allauth (or verifies a JWT), and maps the
// outcome to the contract's status. The front doors wrap one in their
// framework's middleware; use it directly to write another. It is safe for
// concurrent use.
type Authenticator struct {
	cfg         Config
	client      *allauth.Client
	cache       *cache.Cache
	sources     []Source
	wantsBearer bool
	jwt         *allauth.JWTVerifier // nil: every Bearer token is asked of allauth
	tracing     tracing              // the spans of lookups (tracing.go)
	obs         observer             // counters for Metrics and Ready; keep it last (see observer)
}

// New returns an Authenticator for cfg, or an error saying what in cfg
// cannot work and what to write instead (no BaseURL, one without http:// or
// https://, one that holds allauth's mount or an allauth path, bad sources,
// a short StorageSecret...). A Storage without a StorageSecret works, but is
// logged once at level Warn on cfg.Logger: the shared store's values are
// then trusted as they are. Its cache starts two small goroutines (a clock and a
// janitor; with Redis, an eviction listener): Close stops them.
func New(cfg Config) (*Authenticator, error) {
	cfg = cfg.withDefaults()
	if err := checkSources(cfg.Sources); err != nil {
		return nil, err
	}
	a := &Authenticator{cfg: cfg, sources: append([]Source(nil), cfg.Sources...)}
	cookieName := ""
	for _, s := range a.sources {
		switch s.kind {
		case introspect.Cookie:
			cookieName = s.name
		case introspect.Bearer:
			a.wantsBearer = true
		case introspect.SessionToken:
		}
	}
	var err error
	if a.jwt, err = buildJWT(cfg, a.wantsBearer); err != nil {
		return nil, err
	}
	if err := checkBaseURL(cfg.BaseURL, cfg.Mount); err != nil {
		return nil, err
	}
	if len(cfg.StorageSecret) > 0 && len(cfg.StorageSecret) < cache.MinSecretLen {
		return nil, fmt.Errorf("headless: Config.StorageSecret must be at least %d bytes", cache.MinSecretLen)
	}
	if len(cfg.StorageSecret) > 0 && cfg.Storage == nil {
		return nil, errors.New("headless: Config.StorageSecret needs Config.Storage")
	}
	a.client, err = allauth.New(allauth.Config{
		BaseURL:              cfg.BaseURL,
		Mount:                cfg.Mount,
		CookieName:           cookieName,
		Timeout:              cfg.Timeout,
		MaxConcurrentLookups: cfg.MaxConcurrentLookups,
		Breaker:              breakerConfig(cfg),
	})
	if err != nil {
		return nil, fmt.Errorf("headless: %w", err)
	}
	warnUnauthenticatedStorage(cfg)
	a.tracing = newTracing(cfg.TracerProvider, a.client)
	for i := range a.sources {
		a.sources[i].scope = cache.NewScope(a.sources[i].kind, a.client.Endpoint(a.sources[i].kind))
	}
	a.cache = cache.New(cache.Config{
		TTL:          cfg.CacheTTL,
		NegativeTTL:  cfg.NegativeTTL,
		StaleIfError: cfg.StaleIfError,
		MaxEntries:   cfg.MaxEntries,
		Storage:      cfg.Storage,
		Prefix:       cfg.Prefix,
		Secret:       cfg.StorageSecret,
		StoreTimeout: cfg.StoreTimeout,
		Recheck:      cfg.Recheck,
		Realm:        a.client.Endpoint(introspect.SessionToken),
		UserIndex:    cfg.UserIndex,
		RefreshAhead: cfg.RefreshAhead,
		Now:          cfg.now,
		MaxRefreshes: maxRefreshes(cfg.MaxConcurrentLookups),
	})
	return a, nil
}

// Evict drops a token from the cache, so that the next request carrying it
// asks allauth. A Django session key is dropped as an app session token and
// as a browser cookie alike (it is valid as both); a JWT as a Bearer token.
// Evicting a token nobody cached is fine. With a shared Storage the eviction
// reaches every instance.
func (a *Authenticator) Evict(ctx context.Context, token string) error {
	_, err := a.evictTokens(ctx, token)
	return err
}

// evictTokens is Evict for several tokens at once (one message to the other
// instances), counting the entries that were cached.
func (a *Authenticator) evictTokens(ctx context.Context, tokens ...string) (int, error) {
	kinds := [...]introspect.Kind{introspect.SessionToken, introspect.Cookie, introspect.Bearer}
	keys := make([]cache.Key, 0, len(tokens)*len(kinds))
	forgot := 0
	bearer := cache.NewScope(introspect.Bearer, a.client.Endpoint(introspect.Bearer))
	for _, token := range tokens {
		for _, kind := range kinds {
			keys = append(keys, cache.NewKey(cache.NewScope(kind, a.client.Endpoint(kind)), token))
		}
		// A JWT verified in process is kept under this process's own key
		// (authenticateJWT).
		if a.cache.ForgetToken(cache.NewTokenKey(bearer, token)) {
			forgot++
		}
	}
	n, err := a.cache.Evict(ctx, keys...)
	return forgot + n, err
}

// EvictUser drops every cached answer the user index lists for userID (an
// allauth user id, as in introspect.User.ID): all of the user's sessions,
// tokens and cookies alike, ask allauth on their next request. It returns how
// many entries were cached. It needs Config.UserIndex, else it returns
// ErrNoUserIndex. With a shared Storage the index is shared and one
// call reaches every instance; in process it reaches this one.
func (a *Authenticator) EvictUser(ctx context.Context, userID string) (int, error) {
	return a.cache.EvictUser(ctx, userID)
}

// Close releases what New made: the cache's goroutines and the client's idle
// connections. A Storage passed in is left to its owner. Requests still in
// flight finish normally.
func (a *Authenticator) Close() error {
	err := a.cache.Close()
	a.client.CloseIdleConnections()
	return err
}

func init() {
	allauth.Of = func(v any) *allauth.Client {
		if a, ok := v.(*Authenticator); ok {
			return a.client
		}
		return nil
	}
}
