package allauth

import (
	"github.com/allauthgo/headless/internal/credential"
	"github.com/allauthgo/headless/introspect"
)

// DecodeAnswer lets the external tests (fuzz_test.go) drive the response
// decoder directly, without an HTTP round trip per input.
var DecodeAnswer = decodeAnswer

// What the external tests check of the package's internals.
var (
	CheckCredential = checkCredential
	JWKThumbprint   = thumbprint
)

const (
	Version                     = version
	DefaultUserAgent            = defaultUserAgent
	DefaultMaxBodyBytes         = defaultMaxBodyBytes
	DefaultMaxCredentialBytes   = defaultMaxCredentialBytes
	DefaultMaxConcurrentLookups = defaultMaxConcurrentLookups
	DefaultJWTClockSkew         = defaultJWTClockSkew
)

// WellFormed is the byte check CheckCredential makes.
func WellFormed[T ~string | ~[]byte](k introspect.Kind, token T, maxLen int) bool {
	return credential.WellFormed(uint8(k), token, maxLen)
}

// MaxCredentialBytes is the longest credential c sends.
func (c *Client) MaxCredentialBytes() int { return c.maxCredLen }
