package fiberauth

import (
	"context"

	"github.com/gofiber/fiber/v2"

	"github.com/allauthgo/headless/introspect"
)

// sessionKey is the private key of the session in Locals and in contexts.
type sessionKey struct{}

// SessionFrom returns the session the middleware stored for this request, or
// nil (anonymous in Optional mode, or the middleware did not run). The
// session is shared with the cache: read it, do not modify it.
func SessionFrom(c *fiber.Ctx) *introspect.Session {
	s, _ := c.Locals(sessionKey{}).(*introspect.Session)
	return s
}

// UserFrom returns the authenticated user of this request, or nil. Like the
// session, it is shared with the cache and must not be modified.
func UserFrom(c *fiber.Ctx) *introspect.User {
	if s := SessionFrom(c); s != nil {
		return &s.User
	}
	return nil
}

// UserFromContext returns the user from a context derived from
// c.UserContext(), when Config.UserContext is on; otherwise nil.
func UserFromContext(ctx context.Context) *introspect.User {
	if s := SessionFromContext(ctx); s != nil {
		return &s.User
	}
	return nil
}

// SessionFromContext is UserFromContext for the whole session.
func SessionFromContext(ctx context.Context) *introspect.Session {
	s, _ := ctx.Value(sessionKey{}).(*introspect.Session)
	return s
}
