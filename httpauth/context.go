package httpauth

import (
	"context"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/introspect"
)

// sessionContext is the context a request goes on with: its parent plus the
// session. It answers Value for headless's own key, so that
// headless.SessionFromContext finds the session too, and is half the size of
// the node context.WithValue allocates (see newContext).
type sessionContext struct {
	context.Context //nolint:containedctx // a context wraps its parent
	session         *introspect.Session
}

func (c *sessionContext) Value(key any) any {
	if key == sessionKey {
		return c.session
	}
	return c.Context.Value(key)
}

// newContext is headless.NewContext in one 24-byte allocation instead of 48
// (context.WithValue's node holds the key and the value as interfaces), and
// with SessionFrom's fast path: no chain to walk when the handler asks the
// context it was given.
func newContext(parent context.Context, s *introspect.Session) context.Context {
	return &sessionContext{Context: parent, session: s}
}

// sessionKey is the key headless.NewContext stores a session under, learnt
// from headless.SessionFromContext itself (that key is unexported): the
// contexts made here then hold the session where headless looks for it.
var sessionKey = func() any {
	r := &keyRecorder{Context: context.Background()}
	headless.SessionFromContext(r)
	if r.key == nil {
		panic("httpauth: headless.SessionFromContext asked for no key")
	}
	return r.key
}()

// keyRecorder records the key it is asked for.
type keyRecorder struct {
	context.Context //nolint:containedctx // a context wraps its parent
	key             any
}

func (r *keyRecorder) Value(key any) any {
	r.key = key
	return nil
}
