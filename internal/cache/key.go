package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash/maphash"
	"math"

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

// tokenKeyTail is how many of a token's last bytes its [NewTokenKey] hashes:
// the end of a JWT is its signature, the part that differs most between
// tokens, and a bounded slice keeps the key's cost flat however long the
// token is.
const tokenKeyTail = 64

// tokenKeyTag marks a token key (bytes 12 to 15), apart from the SHA-256
// keys of NewKey.
const tokenKeyTag = "tok\x00"

// tokenSeed is the process's secret seed for token keys: a client cannot
// predict which tokens share a key, so it cannot aim a token at another
// one's entry.
var tokenSeed = maphash.MakeSeed()

// NewTokenKey is the in-process key of a verified JWT (see
// [Cache.RememberToken]): a seeded maphash of the token's last 64 bytes, its
// length and the scope. It costs a small fraction of NewKey on a JWT (which
// runs SHA-256 over all of its ~700 bytes) and allocates nothing, but it
// proves nothing: tokens that share their last 64 bytes and their length
// share a key, and a maphash can collide. So such a key is only ever used
// with RememberToken and GetToken, which keep the verified token itself in
// the entry and compare it in full on every hit: a shared key costs a miss,
// never a hit. It must not be stored outside the process (the seed is the
// process's own) or logged as the token's name in another process.
func NewTokenKey[T ~string | ~[]byte](scope Scope, token T) Key {
	var tail [tokenKeyTail]byte
	n := copy(tail[:], token[max(0, len(token)-tokenKeyTail):])
	var k Key
	binary.LittleEndian.PutUint64(k[0:8], maphash.Bytes(tokenSeed, tail[:n]))
	binary.LittleEndian.PutUint32(k[8:12], uint32(min(uint(len(token)), math.MaxUint32)))
	copy(k[12:16], tokenKeyTag)
	copy(k[16:32], scope[:])
	return k
}

// String returns the key in hex.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// Short returns the first 12 hex digits, enough to correlate log lines.
func (k Key) Short() string { return hex.EncodeToString(k[:6]) }

// MaxKeptTokenBytes is the longest token whose bytes RememberToken keeps in
// its entry. allauth's RS256 access tokens are about 700 bytes; an entry
// grows by at most this much, for tokens that verified (only those are
// remembered, so a client cannot fill the store with long junk). A longer
// token's entry keeps its SHA-256 instead (33 bytes), which each of its hits
// computes again: as dear as every JWT hit was before keys were cheap.
const MaxKeptTokenBytes = 2048

// tokenProof is what an entry keeps to recognise token: the token itself
// when it is at most MaxKeptTokenBytes long and does not start with a zero
// byte, otherwise a zero byte and the token's SHA-256. The two forms cannot
// be confused (only the second starts with a zero byte), so two tokens have
// the same proof only if they are the same bytes (or collide in SHA-256).
func tokenProof(token []byte) string {
	if keptWhole(token) {
		return string(token)
	}
	sum := sha256.Sum256(token)
	return "\x00" + string(sum[:])
}

func keptWhole(token []byte) bool {
	return len(token) <= MaxKeptTokenBytes && (len(token) == 0 || token[0] != 0)
}

// proves reports whether proof is tokenProof(token), without allocating.
//
// It compares plainly, not in constant time, and that leaks nothing worth
// having: the compare only runs against the entry that token's own key
// selects. A client reaches its own token's entry, whose bytes it knows. To
// reach another token's entry it must present that token's length and last
// 64 bytes (the end of its signature, as secret as the token), or hit a
// maphash collision under the process's secret seed blind, without being
// able to choose or steer towards whose entry it lands on.
func proves(proof string, token []byte) bool {
	if keptWhole(token) {
		return proof == string(token)
	}
	sum := sha256.Sum256(token)
	return len(proof) == 1+sha256.Size && proof[0] == 0 && proof[1:] == string(sum[:])
}
