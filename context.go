package headless

import (
	"context"

	"github.com/allauthgo/headless/introspect"
)

// sessionKey is the private key of the session in contexts.
type sessionKey struct{}

// NewContext returns a copy of ctx that carries s, for code that only gets a
// context.Context (see SessionFromContext).
func NewContext(ctx context.Context, s *introspect.Session) context.Context {
	return context.WithValue(ctx, sessionKey{}, s)
}

// SessionFromContext returns the session NewContext put in ctx, or nil. The
// session is shared with the cache: read it, do not modify it.
func SessionFromContext(ctx context.Context) *introspect.Session {
	s, _ := ctx.Value(sessionKey{}).(*introspect.Session)
	return s
}

// UserFromContext returns the user of the session in ctx, or nil.
func UserFromContext(ctx context.Context) *introspect.User {
	if s := SessionFromContext(ctx); s != nil {
		return &s.User
	}
	return nil
}
