package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/allauthgo/headless/introspect"
)

// TestNewKeyStringAndBytesAgree proves a token peeked as []byte (fasthttp)
// and the same token as a string name the same entry.
func TestNewKeyStringAndBytesAgree(t *testing.T) {
	for _, tok := range []string{
		"", "a", tokenFor(1),
		// Around the stack buffer's size, whatever it is.
		strings.Repeat("b", 111), strings.Repeat("b", 112), strings.Repeat("b", 113),
		strings.Repeat("j", 900), strings.Repeat("j", 1264), strings.Repeat("j", 1265), strings.Repeat("x", 5000),
	} {
		if NewKey(testScope, tok) != NewKey(testScope, []byte(tok)) {
			t.Errorf("len %d: string and []byte keys differ", len(tok))
		}
	}
	type header []byte
	if NewKey(testScope, header("abc")) != NewKey(testScope, "abc") {
		t.Error("a named []byte type hashes differently")
	}
}

// TestNewKeyDistinct proves kind, endpoint and token each change the key, so
// a token cannot be replayed under another kind or against another allauth.
func TestNewKeyDistinct(t *testing.T) {
	const tok = "0123456789abcdef0123456789abcdef"
	keys := map[Key]string{}
	add := func(name string, k Key) {
		t.Helper()
		if prev, dup := keys[k]; dup {
			t.Errorf("%s has the same key as %s", name, prev)
		}
		keys[k] = name
	}
	add("base", NewKey(NewScope(introspect.SessionToken, testEndpoint), tok))
	add("other kind", NewKey(NewScope(introspect.SessionToken+1, testEndpoint), tok))
	add("other endpoint", NewKey(NewScope(introspect.SessionToken, testEndpoint+"x"), tok))
	add("other token", NewKey(NewScope(introspect.SessionToken, testEndpoint), tok[:31]+"0"))
	add("shorter token", NewKey(NewScope(introspect.SessionToken, testEndpoint), tok[:31]))
	// The kind byte and the endpoint are hashed together; moving a character
	// between them must not collide either.
	add("kind/endpoint shift", NewKey(NewScope(introspect.Kind('h'), "ttps://allauth.example/_allauth/app/v1/auth/session"), tok))
	if NewKey(testScope, tok) != NewKey(NewScope(introspect.SessionToken, testEndpoint), tok) {
		t.Error("the same inputs give different keys")
	}
}

// TestKeyStringIsHexWithoutToken proves what is logged and used as a shared
// store key is 64 hex digits that do not reveal the token.
func TestKeyStringIsHexWithoutToken(t *testing.T) {
	tok := "SECRETsecretSECRETsecretSECRET42"
	k := NewKey(testScope, tok)
	s := k.String()
	if len(s) != 64 {
		t.Fatalf("String() has %d characters, want 64", len(s))
	}
	b, err := hex.DecodeString(s)
	if err != nil || string(b) != string(k[:]) {
		t.Fatalf("String() = %q is not the key in hex (err %v)", s, err)
	}
	if strings.ToLower(s) != s {
		t.Errorf("String() = %q is not lower-case hex", s)
	}
	for _, part := range []string{tok, strings.ToLower(tok), hex.EncodeToString([]byte(tok)), "SECRET", "secret"} {
		if strings.Contains(s, part) || strings.Contains(k.Short(), part) {
			t.Errorf("key text contains %q", part)
		}
	}
	if got := k.Short(); got != s[:12] {
		t.Errorf("Short() = %q, want %q", got, s[:12])
	}
}

// TestNewKeyZeroAllocs proves hashing a session token on the hot path does not
// allocate, from a string or from []byte.
func TestNewKeyZeroAllocs(t *testing.T) {
	tok := tokenFor(7)
	btok := []byte(tok)
	var sink Key
	if n := testing.AllocsPerRun(1000, func() { sink = NewKey(testScope, tok) }); n != 0 {
		t.Errorf("NewKey(string) allocates %v times", n)
	}
	if n := testing.AllocsPerRun(1000, func() { sink = NewKey(testScope, btok) }); n != 0 {
		t.Errorf("NewKey([]byte) allocates %v times", n)
	}
	// A JWT-sized token from a request's header ([]byte) costs nothing
	// either (a JWT hit must not allocate), and hashes as its string form.
	jwt := strings.Repeat("e", 1000)
	bjwt := []byte(jwt)
	if n := testing.AllocsPerRun(100, func() { sink = NewKey(testScope, bjwt) }); n != 0 {
		t.Errorf("NewKey(1000-byte []byte token) allocates %v times", n)
	}
	if NewKey(testScope, jwt) != NewKey(testScope, []byte(jwt)) {
		t.Error("a long token's key differs between string and []byte")
	}
	// A long token's key is not the key of any short token: not of its
	// own hash under the same scope, either.
	inner := sha256.Sum256([]byte(jwt))
	if NewKey(testScope, jwt) == NewKey(testScope, inner[:]) {
		t.Error("a long token's key collides with the key of its hash")
	}
	_ = sink
}
