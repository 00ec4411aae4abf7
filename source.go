package headless

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"strings"

	"github.com/allauthgo/headless/internal/cache"
	"github.com/allauthgo/headless/internal/credential"
	"github.com/allauthgo/headless/introspect"
)

// Source is one place a request's credential may be: a header holding an app
// session token, the Authorization header holding a Bearer token, or a
// browser's session cookie. Query strings and forms are not sources: a token
// in a URL ends up in access logs.
type Source struct {
	kind   introspect.Kind
	name   string // header (canonical) or cookie name
	scheme []byte // FromAuthHeader's scheme
	scope  cache.Scope
}

// FromHeader reads an app session token from the named header, as allauth's
// app client sends it in X-Session-Token. FromHeader("Authorization") is
// FromAuthHeader("Bearer").
func FromHeader(name string) Source {
	name = textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(name))
	if name == "Authorization" {
		return FromAuthHeader("Bearer")
	}
	return Source{kind: introspect.SessionToken, name: name}
}

// FromAuthHeader reads a token from "Authorization: <scheme> <token>",
// matching the scheme case-insensitively ("" means "Bearer"); another scheme
// (Basic, say) is no credential. Bearer tokens are allauth's JWT access
// tokens (see Config.JWT) or anything allauth's JWT strategy accepts.
func FromAuthHeader(scheme string) Source {
	scheme = strings.TrimSpace(scheme)
	if scheme == "" {
		scheme = "Bearer"
	}
	return Source{kind: introspect.Bearer, name: "Authorization", scheme: []byte(scheme)}
}

// FromCookie reads a browser session from the named cookie (Django's
// SESSION_COOKIE_NAME, "sessionid" by default), checked at allauth's browser
// endpoint. When a browser sends the cookie twice, the last one counts, as
// in Django.
func FromCookie(name string) Source {
	return Source{kind: introspect.Cookie, name: strings.TrimSpace(name)}
}

// String describes the source, e.g. "header:X-Session-Token".
func (s Source) String() string {
	switch s.kind {
	case introspect.Cookie:
		return "cookie:" + s.name
	case introspect.Bearer:
		return "header:Authorization (" + string(s.scheme) + ")"
	default:
		return "header:" + s.name
	}
}

// checkSources says what is wrong with a list of sources.
func checkSources(sources []Source) error {
	seen := map[string]bool{}
	cookies := 0
	for _, s := range sources {
		if s.name == "" {
			return errors.New("headless: a source has no header or cookie name")
		}
		id := strings.ToLower(s.String())
		if s.kind == introspect.Bearer {
			id = "authorization"
		}
		if seen[id] {
			return fmt.Errorf("headless: the sources name %s twice", s)
		}
		seen[id] = true
		if s.kind == introspect.Cookie {
			cookies++
		}
	}
	if cookies > 1 {
		return fmt.Errorf("headless: the sources name %d cookies; allauth reads one session cookie", cookies)
	}
	return nil
}

// Request is what an Authenticator reads of a request. The front doors
// implement it over their framework's request without copying: the values
// returned may alias the request's buffers, and are only read during
// Authenticate (anything kept is copied).
type Request interface {
	// Header returns the value of the named header (its canonical form, e.g.
	// "X-Session-Token") and how many times the header occurs; the value is
	// that of the first occurrence.
	Header(name string) (value []byte, count int)
	// Cookie returns the value of the last cookie named name, or nil.
	Cookie(name string) []byte
	// Context is the request's context. It is asked for only on a cache
	// miss, since some frameworks pay for it. The span it carries, if any,
	// is the parent of the lookup's span (Config.TracerProvider).
	Context() context.Context
}

// found is the outcome of looking for a credential.
type found uint8

const (
	foundNone      found = iota // no source held a value
	foundToken                  // value holds a token of src.kind (checked on a miss)
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

// extract finds the credential of a request. The returned value aliases the
// request's buffers: it must be copied before it outlives the request. A
// token is not yet checked for its bytes: Authenticate checks them on a
// cache miss (only well-formed tokens are ever cached).
func (a *Authenticator) extract(r Request) (src *Source, value []byte, result found) {
	for i := range a.sources {
		s := &a.sources[i]
		var v []byte
		switch s.kind {
		case introspect.Cookie:
			v = r.Cookie(s.name)
		case introspect.Bearer:
			auth, n := r.Header(s.name)
			if n > 1 {
				return s, nil, foundMalformed // which one would a proxy pass on?
			}
			auth = trim(auth)
			if len(auth) < len(s.scheme) || !bytes.EqualFold(auth[:len(s.scheme)], s.scheme) {
				continue // another scheme (or none) is not our credential
			}
			rest := auth[len(s.scheme):]
			if len(rest) > 0 && rest[0] != ' ' && rest[0] != '\t' {
				continue // "Bearerish ..." is another scheme
			}
			v = rest
		default:
			var n int
			v, n = r.Header(s.name)
			if n > 1 {
				// gunicorn joins repeated headers with a comma, which allauth
				// answers with 410: refuse to pick one.
				return s, nil, foundMalformed
			}
		}
		v = trim(v)
		if len(v) == 0 {
			continue // blank is absent, as allauth treats it
		}
		if len(v) > credential.MaxBytes {
			return s, nil, foundMalformed
		}
		return s, v, foundToken
	}
	return nil, nil, foundNone
}
