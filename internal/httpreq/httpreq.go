// Package httpreq reads an *http.Request as a headless.Request, as allauth
// (Django) would read it, without copying: httpauth's request adapter.
package httpreq

import (
	"context"
	"net/http"
	"strings"
	"unsafe"
)

// Request is an *http.Request read as a headless.Request, without copying.
// A struct holding one pointer is stored in an interface as is: passing it
// to Authenticate allocates nothing.
type Request struct{ R *http.Request }

// Header returns the first value of the named header and how many times it
// occurs. headless asks for canonical names ("X-Session-Token"), which is
// how net/http keys r.Header, so this is one map lookup.
func (q Request) Header(name string) ([]byte, int) {
	vs := q.R.Header[name]
	if len(vs) == 0 {
		return nil, 0
	}
	return bytesOf(vs[0]), len(vs)
}

// Cookie returns the value of the last cookie named name, or nil.
func (q Request) Cookie(name string) []byte {
	v, ok := LastCookie(q.R.Header["Cookie"], name)
	if !ok {
		return nil
	}
	return bytesOf(v)
}

// Context is the request's context.
func (q Request) Context() context.Context { return q.R.Context() }

// bytesOf returns s's bytes without copying them. Writing to them would
// break the immutability of strings; it is safe here because headless.Request
// values are only read (headless copies what it keeps beyond Authenticate:
// the token it asks allauth about, the cache key it derives).
func bytesOf(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// LastCookie returns the value of the last cookie named name across all the
// Cookie header lines, parsed as Django's parse_cookie does, which is the
// session allauth would use for this request: each line is split on ';',
// each chunk on its first '=' (a chunk without one has an empty name), both
// sides are trimmed of spaces, and the last cookie of a name wins. A value in
// double quotes loses them (Django's unquoting, and fasthttp's, so that the
// Fiber doors read the same value); one with escapes inside keeps its
// backslashes, which no session key holds, so it is refused, never misread.
// It allocates nothing: the value is a substring of a header line.
func LastCookie(lines []string, name string) (value string, found bool) {
	for _, line := range lines {
		for line != "" {
			var chunk string
			chunk, line, _ = strings.Cut(line, ";")
			k, v, ok := strings.Cut(chunk, "=")
			if !ok {
				continue // a name-less cookie: never name's
			}
			if trimSpaces(k) != name {
				continue
			}
			v = trimSpaces(v)
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			value, found = v, true
		}
	}
	return value, found
}

// trimSpaces drops the spaces around s (only spaces, as fasthttp does).
func trimSpaces(s string) string {
	for s != "" && s[0] == ' ' {
		s = s[1:]
	}
	for s != "" && s[len(s)-1] == ' ' {
		s = s[:len(s)-1]
	}
	return s
}
