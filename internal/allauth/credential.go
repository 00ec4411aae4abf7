package allauth

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/allauthgo/headless/internal/credential"
	"github.com/allauthgo/headless/introspect"
)

// Credential is what a caller presented. Its formatting verbs and slog value
// never show the token, so a Credential can be logged by accident without
// leaking it.
type Credential struct {
	Kind  introspect.Kind
	Token string
}

// String returns the kind and a redaction mark, never the token.
func (c Credential) String() string { return c.Kind.String() + ":[redacted]" }

// GoString is used by %#v; it never shows the token either.
func (c Credential) GoString() string { return "allauth.Credential{" + c.String() + "}" }

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
// token gets the answer for no credential at all: [introspect.ErrUnauthenticated]. A
// token longer than maxLen bytes, or holding bytes outside visible ASCII,
// gets what allauth answers for an unknown one: [introspect.ErrSessionGone] for a
// session token, [introspect.ErrUnauthenticated] for a Bearer token or a cookie.
// maxLen <= 0 means defaultMaxCredentialBytes.
func checkCredential(c Credential, maxLen int) error {
	if maxLen <= 0 {
		maxLen = defaultMaxCredentialBytes
	}
	token := trimSpace(c.Token)
	if token == "" {
		return ErrNoCredential
	}
	if !credential.WellFormed(uint8(c.Kind), token, maxLen) {
		return Malformed(c.Kind)
	}
	return nil
}
