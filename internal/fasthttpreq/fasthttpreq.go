// Package fasthttpreq reads a credential's headers and cookie from a
// fasthttp request without copying, for the Fiber v2 and v3 doors (both run
// on fasthttp).
package fasthttpreq

import (
	"context"
	"net/http"

	"github.com/valyala/fasthttp"
)

// Header returns the first value of the named header and how many times it
// occurs. The value aliases fasthttp's buffer.
func Header(h *fasthttp.RequestHeader, name string) ([]byte, int) {
	all := h.PeekAll(name)
	if len(all) == 0 {
		return nil, 0
	}
	return all[0], len(all)
}

// LastCookie returns the value of the last cookie named name, as Django's
// parse_cookie keeps it when a browser sends two (e.g. one set for a parent
// domain or a longer path): the session allauth would use for this request
// is the one asked about. fasthttp's Cookie would return the first. The
// value aliases fasthttp's buffer.
func LastCookie(h *fasthttp.RequestHeader, name string) []byte {
	var v []byte
	for key, value := range h.Cookies() {
		if string(key) == name {
			v = value
		}
	}
	return v
}

// Detached serves h with a request context that is never canceled. Fiber's
// net/http adaptor makes the fasthttp RequestCtx the request's context, and
// a cancelable context derived from it (a timeout on a Redis call, say)
// reads the server's shutdown channel without a lock, which races with the
// server's Shutdown. The core's handlers bound their own waits.
func Detached(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithoutCancel(r.Context())))
	})
}
