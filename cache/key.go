package cache

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/allauthgo/headless/introspect"
)

// Key names one credential at one allauth endpoint: SHA-256 over the
// credential kind, the endpoint URL and the token. It is safe to store, log
// (as hex) and share: the token cannot be recovered from it.
type Key [sha256.Size]byte

// Scope identifies a credential kind at one allauth endpoint: the first 16
// bytes of SHA-256 over both. Hashing a 16-byte scope with a 32-byte session
// token fits one SHA-256 block, which halves the cost of a key on the hot
// path compared with hashing the endpoint URL every time.
type Scope [16]byte

// NewScope returns the scope of tokens of kind sent to endpoint.
func NewScope(kind introspect.Kind, endpoint string) Scope {
	buf := make([]byte, 0, 1+len(endpoint))
	buf = append(buf, byte(kind))
	buf = append(buf, endpoint...)
	sum := sha256.Sum256(buf)
	var s Scope
	copy(s[:], sum[:])
	return s
}

// keyBufSize covers session tokens (32 bytes) and cookies on the stack; it is
// small because the buffer is zeroed on every call.
const keyBufSize = 128

// NewKey hashes a token within a scope. The token may be a string or a
// []byte (such as a header value peeked from fasthttp); it is read, not kept.
// A []byte token allocates nothing, whatever its length.
func NewKey[T ~string | ~[]byte](scope Scope, token T) Key {
	var buf [keyBufSize]byte
	b := buf[:0]
	if len(scope)+len(token) > keyBufSize {
		// A JWT: hash it first, so that its key costs no allocation, and
		// mark the scope so that no short token's key can be the same.
		inner := sha256.Sum256([]byte(token))
		scope[0] ^= 0x80
		b = append(b, scope[:]...)
		b = append(b, inner[:]...)
		return sha256.Sum256(b)
	}
	b = append(b, scope[:]...)
	b = append(b, token...)
	return sha256.Sum256(b)
}

// String returns the key in hex.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// Short returns the first 12 hex digits, enough to correlate log lines.
func (k Key) Short() string { return hex.EncodeToString(k[:6]) }
