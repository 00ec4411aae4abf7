package gateway

import (
	"context"
	"net/http"
	"strings"
	"unsafe"
)

// request is an *http.Request read as a headless.Request, without copying
// (as httpauth reads one: a struct of one pointer goes into the interface
// without an allocation).
type request struct{ r *http.Request }

// Header returns the first value of the named header and how many times it
// occurs; headless asks for canonical names, net/http's keys.
func (q request) Header(name string) ([]byte, int) {
	vs := q.r.Header[name]
	if len(vs) == 0 {
		return nil, 0
	}
	return bytesOf(vs[0]), len(vs)
}

// Cookie returns the value of the last cookie named name, or nil.
func (q request) Cookie(name string) []byte {
	v, ok := lastCookie(q.r.Header["Cookie"], name)
	if !ok {
		return nil
	}
	return bytesOf(v)
}

func (q request) Context() context.Context { return q.r.Context() }

// bytesOf returns s's bytes without copying them: headless only reads a
// Request's values during Authenticate and copies what it keeps.
func bytesOf(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// lastCookie returns the value of the last cookie named name across the
// Cookie lines, parsed as Django's parse_cookie does (httpauth's parser: the
// session allauth would use): split on ';', then on the first '=', both
// sides trimmed of spaces, double quotes dropped, the last one winning.
func lastCookie(lines []string, name string) (value string, found bool) {
	for _, line := range lines {
		for line != "" {
			var chunk string
			chunk, line, _ = strings.Cut(line, ";")
			k, v, ok := strings.Cut(chunk, "=")
			if !ok || trimSpaces(k) != name {
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
