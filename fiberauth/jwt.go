package fiberauth

import (
	"context"
	"errors"
	"fmt"

	"github.com/gofiber/fiber/v2"

	"github.com/allauthgo/headless/cache"
	"github.com/allauthgo/headless/introspect"
)

// buildJWT returns the verifier Config.JWT or Config.JWTVerifier asks for,
// or nil.
func buildJWT(cfg Config, wantsBearer bool) (*introspect.JWTVerifier, error) {
	if cfg.JWTVerifier == nil && cfg.JWT == nil {
		if cfg.JWTStateful {
			return nil, errors.New("fiberauth: Config.JWTStateful needs Config.JWT (the key to verify tokens with)")
		}
		return nil, nil
	}
	if !wantsBearer {
		return nil, errors.New(`fiberauth: Config.JWT needs "header:Authorization" in KeyLookup, where JWTs arrive`)
	}
	if cfg.JWTVerifier != nil {
		return cfg.JWTVerifier, nil
	}
	v, err := introspect.NewJWTVerifier(*cfg.JWT)
	if err != nil {
		return nil, fmt.Errorf("fiberauth: %w", err)
	}
	return v, nil
}

// authenticateJWT checks a Bearer JWT in process and, in stateful mode,
// asks allauth (through the cache) whether its session still lives.
func (m *Middleware) authenticateJWT(c *fiber.Ctx, src *source, value []byte) error {
	key := cache.NewKey(src.scope, value)
	if !m.cfg.JWTStateful {
		// A token verified before is answered from the in-process cache:
		// its signature check costs far more than the rest of the request.
		if r, ok := m.cache.Get(context.Background(), key); ok && r.Session != nil {
			return m.succeed(c, r.Session)
		}
	}
	s, err := m.jwt.Verify(string(value))
	if err != nil {
		return m.fail(c, m.rejection(introspect.Bearer, err))
	}
	if !m.cfg.JWTStateful {
		m.cache.Remember(key, s, s.ExpiresAt)
		return m.succeed(c, s)
	}
	r, ok := m.cache.Get(context.Background(), key)
	if !ok {
		// Nothing is cached past exp: a token allauth vouched for must not
		// outlive its own expiry in the cache.
		r = m.load(c.UserContext(), src, key, value, s.ExpiresAt)
	}
	if r.Session == nil {
		return m.fail(c, m.outcomeError(src.kind, r.Err))
	}
	if r.Session.User.ID != s.User.ID {
		// allauth's session belongs to someone else than sub: never trust
		// either.
		return m.fail(c, m.rejection(introspect.Bearer, introspect.Rejection(introspect.Bearer)))
	}
	// The cached session is shared: add this token's claims to a copy.
	out := *r.Session
	out.User.Claims = s.User.Claims
	out.ExpiresAt = s.ExpiresAt
	return m.succeed(c, &out)
}
