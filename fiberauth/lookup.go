package fiberauth

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/allauthgo/headless/cache"
	"github.com/allauthgo/headless/introspect"
)

// source is one entry of KeyLookup.
type source struct {
	kind   introspect.Kind
	cookie bool   // read a cookie rather than a header
	name   string // header or cookie name
	scope  cache.Scope
}

// parseKeyLookup turns "header:X-Session-Token,cookie:sessionid" into
// sources, or says what is wrong with it.
func parseKeyLookup(lookup string) ([]source, error) {
	var out []source
	seen := map[string]bool{}
	for _, part := range strings.Split(lookup, ",") {
		part = strings.TrimSpace(part)
		where, name, ok := strings.Cut(part, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("fiberauth: KeyLookup entry %q must be \"header:<name>\" or \"cookie:<name>\"", part)
		}
		var s source
		switch strings.ToLower(strings.TrimSpace(where)) {
		case "header":
			s.name = name
			s.kind = introspect.SessionToken
			if strings.EqualFold(name, fiber.HeaderAuthorization) {
				s.name, s.kind = fiber.HeaderAuthorization, introspect.Bearer
			}
		case "cookie":
			s.name, s.cookie, s.kind = name, true, introspect.Cookie
		case "query", "param", "form":
			return nil, fmt.Errorf("fiberauth: KeyLookup source %q is not supported: a token in a URL or form ends up in logs; use a header or a cookie", where)
		default:
			return nil, fmt.Errorf("fiberauth: KeyLookup source %q is unknown; use header or cookie", where)
		}
		id := strings.ToLower(where + ":" + s.name)
		if seen[id] {
			return nil, fmt.Errorf("fiberauth: KeyLookup names %q twice", part)
		}
		seen[id] = true
		out = append(out, s)
	}
	var cookies int
	for _, s := range out {
		if s.cookie {
			cookies++
		}
	}
	if cookies > 1 {
		return nil, fmt.Errorf("fiberauth: KeyLookup names %d cookies; allauth reads one session cookie", cookies)
	}
	return out, nil
}

// found is the outcome of looking for a credential.
type found uint8

const (
	foundNone      found = iota // no source held a value
	foundToken                  // value holds a well-formed token of src.kind
	foundMalformed              // the value can't be a valid credential: answer as allauth would
)

// trim drops the spaces and tabs HTTP allows around a header value.
func trim(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// extract finds the credential of a request. The returned value aliases
// fasthttp's buffers: it must be copied before it outlives the handler.
func (m *Middleware) extract(c *fiber.Ctx) (src *source, value []byte, result found) {
	h := &c.Request().Header
	for i := range m.sources {
		s := &m.sources[i]
		var v []byte
		switch {
		case s.cookie:
			v = lastCookie(h, s.name)
		case s.kind == introspect.Bearer:
			all := h.PeekAll(s.name)
			if len(all) > 1 {
				return s, nil, foundMalformed // which one would a proxy pass on?
			}
			if len(all) == 0 {
				continue
			}
			auth := trim(all[0])
			if len(auth) < len(m.scheme) || !bytes.EqualFold(auth[:len(m.scheme)], m.scheme) {
				continue // another scheme (or none) is not our credential
			}
			rest := auth[len(m.scheme):]
			if len(rest) > 0 && rest[0] != ' ' && rest[0] != '\t' {
				continue // "Bearerish ..." is another scheme
			}
			v = rest
		default:
			all := h.PeekAll(s.name)
			if len(all) > 1 {
				// gunicorn joins repeated headers with a comma, which allauth
				// answers with 410: refuse to pick one.
				return s, nil, foundMalformed
			}
			if len(all) == 1 {
				v = all[0]
			}
		}
		v = trim(v)
		if len(v) == 0 {
			continue // blank is absent, as allauth treats it
		}
		if !introspect.WellFormed(s.kind, v, m.maxCredLen) {
			return s, nil, foundMalformed
		}
		return s, v, foundToken
	}
	return nil, nil, foundNone
}

// LastCookie returns the value of the last cookie named name in the
// request, or "": the session cookie Django (and so allauth, and this
// middleware) uses when a browser sends two, e.g. one set for a parent
// domain or a longer path. Fiber's c.Cookies returns the first, which may
// name another session: use LastCookie wherever a cookie must be the one the
// middleware checked, e.g. to Evict it after a logout. The value is a copy,
// safe to keep after the handler returns.
func LastCookie(c *fiber.Ctx, name string) string {
	return string(lastCookie(&c.Request().Header, name))
}

// lastCookie returns the value of the last cookie named name, as Django's
// parse_cookie keeps it when a browser sends two (e.g. one set for a parent
// domain or a longer path): the session allauth would use for this request
// is the one asked about. fasthttp's Cookie would return the first.
func lastCookie(h *fasthttp.RequestHeader, name string) []byte {
	var v []byte
	h.VisitAllCookie(func(key, value []byte) {
		if string(key) == name {
			v = value
		}
	})
	return v
}
