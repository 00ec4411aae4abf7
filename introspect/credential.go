package introspect

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/allauthgo/headless/internal/credential"
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

// checkCredential reports, without any network call, the error allauth would
// give for a credential that cannot be valid, or nil if it is worth asking.
// Surrounding spaces and tabs are ignored. An empty (or whitespace-only)
// token gets the answer for no credential at all: [ErrUnauthenticated]. A
// token longer than maxLen bytes, or holding bytes outside visible ASCII,
// gets what allauth answers for an unknown one: [ErrSessionGone] for a
// session token, [ErrUnauthenticated] for a Bearer token or a cookie.
// maxLen <= 0 means defaultMaxCredentialBytes.
func checkCredential(c Credential, maxLen int) error {
	if maxLen <= 0 {
		maxLen = defaultMaxCredentialBytes
	}
	token := trimSpace(c.Token)
	if token == "" {
		return errNoCredential
	}
	if !credential.WellFormed(uint8(c.Kind), token, maxLen) {
		return malformed(c.Kind)
	}
	return nil
}
