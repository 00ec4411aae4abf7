package introspect

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
)

// Kind says how a credential reaches allauth, and so which endpoint answers
// for it.
type Kind uint8

const (
	// SessionToken is an app session token, sent as X-Session-Token to the
	// app endpoint. allauth answers 410 for one it does not know.
	SessionToken Kind = iota + 1
	// Bearer is a JWT access token (allauth's JWT token strategy), sent as
	// Authorization: Bearer to the app endpoint. allauth answers 401 for an
	// invalid one and 410 for one whose session has ended.
	Bearer
	// Cookie is a browser session cookie (Django's SESSION_COOKIE_NAME), sent
	// to the browser endpoint. allauth never answers 410 for it, only 401.
	Cookie
)

// String names the kind for logs and metrics.
func (k Kind) String() string {
	switch k {
	case SessionToken:
		return "session_token"
	case Bearer:
		return "bearer"
	case Cookie:
		return "cookie"
	default:
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
}

// Credential is what a caller presented. Its formatting verbs and slog value
// never show the token, so a Credential can be logged by accident without
// leaking it.
type Credential struct {
	Kind  Kind
	Token string
}

// String returns the kind and a redaction mark, never the token.
func (c Credential) String() string { return c.Kind.String() + ":[redacted]" }

// GoString is used by %#v; it never shows the token either.
func (c Credential) GoString() string { return "introspect.Credential{" + c.String() + "}" }

// MarshalJSON writes the redacted form, so a Credential inside a struct
// logged as JSON does not leak the token either.
func (c Credential) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(c.String())), nil }

// LogValue keeps the token out of slog output.
func (c Credential) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Format makes every fmt verb print the redacted form (%#v the GoString one:
// fmt never calls GoString on a type that has Format).
func (c Credential) Format(f fmt.State, verb rune) {
	s := c.String()
	if verb == 'v' && f.Flag('#') {
		s = c.GoString()
	}
	_, _ = f.Write([]byte(s))
}

// trimSpace removes the spaces and tabs that HTTP allows around a header value.
func trimSpace(s string) string { return strings.Trim(s, " \t") }

// WellFormed reports whether token (already trimmed, non-empty) could be a
// valid credential of this kind: at most maxLen bytes, all of them allowed
// for the kind (see [CheckCredential]). It takes a string or a []byte, so a
// middleware can check a header value without copying it.
func WellFormed[T ~string | ~[]byte](kind Kind, token T, maxLen int) bool {
	if len(token) == 0 || len(token) > maxLen {
		return false
	}
	if int(kind) >= len(allowed) {
		return false
	}
	set := &allowed[kind]
	for i := 0; i < len(token); i++ {
		if !set[token[i]] {
			return false
		}
	}
	return true
}

// allowed[kind][b] caches tokenByte: the check runs on every request.
var allowed = func() (t [Cookie + 1][256]bool) {
	for k := SessionToken; k <= Cookie; k++ {
		for b := 0; b < 256; b++ {
			t[k][b] = tokenByte(k, byte(b))
		}
	}
	return t
}()

// tokenByte reports whether b may appear in a token of this kind. Every kind
// is limited to visible ASCII. Cookies also exclude what would split or
// quote a Cookie header (RFC 6265 cookie-octet), and Bearer tokens are
// limited to RFC 6750's b64token alphabet, which every JWT fits.
func tokenByte(kind Kind, b byte) bool {
	if b < 0x21 || b > 0x7e {
		return false
	}
	switch kind {
	case Cookie:
		return b != '"' && b != ',' && b != ';' && b != '\\'
	case Bearer:
		return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' ||
			b == '-' || b == '.' || b == '_' || b == '~' || b == '+' || b == '/' || b == '='
	default:
		return true
	}
}

// CheckCredential reports, without any network call, the error allauth would
// give for a credential that cannot be valid, or nil if it is worth asking.
// Surrounding spaces and tabs are ignored. An empty (or whitespace-only)
// token gets the answer for no credential at all: [ErrUnauthenticated]. A
// token longer than maxLen bytes, or holding bytes outside visible ASCII,
// gets what allauth answers for an unknown one: [ErrSessionGone] for a
// session token, [ErrUnauthenticated] for a Bearer token or a cookie.
// maxLen <= 0 means [DefaultMaxCredentialBytes].
func CheckCredential(c Credential, maxLen int) error {
	if maxLen <= 0 {
		maxLen = DefaultMaxCredentialBytes
	}
	token := trimSpace(c.Token)
	if token == "" {
		return errNoCredential
	}
	if !WellFormed(c.Kind, token, maxLen) {
		return malformed(c.Kind)
	}
	return nil
}
