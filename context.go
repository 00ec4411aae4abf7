package headless

import (
	"context"

	"github.com/allauthgo/headless/introspect"
)

// sessionKey is the private key of the session in contexts.
type sessionKey struct{}

// sessionContext is NewContext's context: its parent plus the session, in
// one 24-byte allocation where context.WithValue's node (key and value as
// interfaces) takes 48, and found without walking the chain when a handler
// asks the context it was given.
type sessionContext struct {
	context.Context //nolint:containedctx // a context wraps its parent
	session         *introspect.Session
}

func (c *sessionContext) Value(key any) any {
	if _, ok := key.(sessionKey); ok {
		return c.session
	}
	return c.Context.Value(key)
}

// NewContext returns a copy of ctx that carries s, for code that only gets a
// context.Context (see SessionFromContext).
func NewContext(ctx context.Context, s *introspect.Session) context.Context {
	return &sessionContext{Context: ctx, session: s}
}

// SessionFromContext returns the session NewContext put in ctx, or nil. The
// session is shared with the cache: read it, do not modify it.
func SessionFromContext(ctx context.Context) *introspect.Session {
	if c, ok := ctx.(*sessionContext); ok { // the usual case: no chain to walk
		return c.session
	}
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
