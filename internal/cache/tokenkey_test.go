package cache

import (
	"context"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/allauthgo/headless/introspect"
)

var jwtScope = NewScope(introspect.Bearer, testEndpoint)

// fakeJWT is a JWT-shaped token of n bytes whose bytes depend on seed.
func fakeJWT(seed byte, n int) []byte {
	b := []byte(strings.Repeat("eyJhbGciOiJSUzI1NiJ9", n/20+1)[:n])
	b[n/3] = 'a' + seed%26
	b[n-1] = 'a' + seed%26
	return b
}

// flip returns tok with byte i changed.
func flip(tok []byte, i int) []byte {
	b := append([]byte(nil), tok...)
	b[i] ^= 0x01
	return b
}

// TestNewTokenKey shows what the cheap key tells apart (scope, length, the
// last 64 bytes) and what it does not (earlier bytes): the second is why a
// hit compares the token in full. It allocates nothing.
func TestNewTokenKey(t *testing.T) {
	tok := fakeJWT(1, 700)
	k := NewTokenKey(jwtScope, tok)
	if NewTokenKey(jwtScope, string(tok)) != k {
		t.Error("a token's key differs between string and []byte")
	}
	if NewTokenKey(NewScope(introspect.Bearer, "https://other.example"), tok) == k {
		t.Error("two scopes share a token key")
	}
	if NewTokenKey(jwtScope, tok[:699]) == k || NewTokenKey(jwtScope, append(tok[:700:700], 'x')) == k {
		t.Error("tokens of other lengths share the key")
	}
	if NewTokenKey(jwtScope, flip(tok, 699)) == k || NewTokenKey(jwtScope, flip(tok, 700-64)) == k {
		t.Error("a token differing in its last 64 bytes shares the key")
	}
	if NewTokenKey(jwtScope, flip(tok, 0)) != k || NewTokenKey(jwtScope, flip(tok, 700-65)) != k {
		t.Error("a token differing before its last 64 bytes has another key: the test of the full compare below would not test it")
	}
	if NewTokenKey(jwtScope, tok) == NewKey(jwtScope, tok) {
		t.Error("a token key is its SHA-256 key")
	}
	var sink Key
	if n := testing.AllocsPerRun(1000, func() { sink = NewTokenKey(jwtScope, tok) }); n != 0 {
		t.Errorf("NewTokenKey allocates %v times", n)
	}
	if n := testing.AllocsPerRun(1000, func() { sink = NewTokenKey(jwtScope, "short") }); n != 0 {
		t.Errorf("NewTokenKey(short string) allocates %v times", n)
	}
	_ = sink
}

// TestGetTokenOnlyTheSameBytes: an entry kept by RememberToken is served to
// the token it was kept for and to no other, even one presented under the
// same key (as a token that shares its end and length would be): sharing a
// prefix, a suffix, one byte off anywhere, shorter, longer. Long tokens (kept
// as their SHA-256) alike. Without the compare, every variant would hit.
func TestGetTokenOnlyTheSameBytes(t *testing.T) {
	clk := newFakeClock()
	c := newTestCache(t, Config{Now: clk.Now})
	for i, n := range []int{700, MaxKeptTokenBytes, MaxKeptTokenBytes + 1, 4096} {
		tok := fakeJWT(byte(i), n)
		key := NewTokenKey(jwtScope, tok)
		s := newSession(t, n)
		c.RememberToken(key, tok, s, clk.Now().Add(time.Hour))
		tok[0] = 'X' // RememberToken copied the token
		tok[0] = 'e'
		if got, ok := c.GetToken(key, tok); !ok || got != s {
			t.Fatalf("%d bytes: the remembered token misses", n)
		}
		variants := map[string][]byte{
			"first byte":              flip(tok, 0),
			"a middle byte":           flip(tok, n/2),
			"last byte":               flip(tok, n-1),
			"a prefix":                tok[:n-1],
			"one byte longer":         append(append([]byte(nil), tok...), 'A'),
			"its suffix only":         tok[1:],
			"empty":                   {},
			"its kept proof (digest)": []byte(tokenProof(tok)),
		}
		for name, v := range variants {
			if string(v) == string(tok) {
				continue // a token of up to MaxKeptTokenBytes is its own proof
			}
			if _, ok := c.GetToken(key, v); ok {
				t.Errorf("%d bytes: %s hits the token's entry", n, name)
			}
		}
		// A session lookup under the same key never sees the entry.
		if _, ok := c.Get(context.Background(), key); ok {
			t.Errorf("%d bytes: Get serves a token entry", n)
		}
	}
}

// TestTokenProofBounded: an entry keeps at most MaxKeptTokenBytes of a token,
// 33 bytes for a longer one; the two forms never prove each other's token.
func TestTokenProofBounded(t *testing.T) {
	long := fakeJWT(3, MaxKeptTokenBytes+1)
	if p := tokenProof(long); len(p) != 1+sha256.Size {
		t.Errorf("a %d-byte token keeps %d bytes", len(long), len(p))
	}
	short := fakeJWT(3, MaxKeptTokenBytes)
	if p := tokenProof(short); p != string(short) {
		t.Error("a token of MaxKeptTokenBytes is not kept whole")
	}
	digestLike := []byte(tokenProof(long)) // 33 bytes starting with a zero byte
	if proves(tokenProof(long), digestLike) || proves(tokenProof(digestLike), long) {
		t.Error("a long token's digest proves another token")
	}
}

// TestGetTokenExpiry: a remembered token is served until the earlier of TTL
// and until (less the clock's resolution), and not at all past until.
func TestGetTokenExpiry(t *testing.T) {
	clk := newFakeClock()
	c := newTestCache(t, Config{Now: clk.Now, TTL: time.Minute})
	tok := fakeJWT(4, 700)
	key := NewTokenKey(jwtScope, tok)
	c.RememberToken(key, tok, newSession(t, 4), clk.Now().Add(10*time.Second))
	clk.Add(10*time.Second - clockResolution - 1)
	if _, ok := c.GetToken(key, tok); !ok {
		t.Fatal("missed before exp")
	}
	clk.Add(1)
	if _, ok := c.GetToken(key, tok); ok {
		t.Fatal("hit within the clock's resolution of exp")
	}
	c.RememberToken(key, tok, newSession(t, 4), clk.Now().Add(-time.Second))
	if _, ok := c.GetToken(key, tok); ok {
		t.Fatal("a token past exp was kept")
	}
	c.RememberToken(key, tok, newSession(t, 4), clk.Now().Add(time.Hour))
	clk.Add(time.Minute)
	if _, ok := c.GetToken(key, tok); ok {
		t.Fatal("hit past TTL")
	}
	c.RememberToken(key, tok, newSession(t, 4), clk.Now().Add(time.Hour))
	if !c.ForgetToken(key) {
		t.Fatal("ForgetToken: the entry was not there")
	}
	if _, ok := c.GetToken(key, tok); ok {
		t.Fatal("hit after ForgetToken")
	}
}

// TestGetTokenZeroAllocs: a JWT hit allocates nothing.
func TestGetTokenZeroAllocs(t *testing.T) {
	c := newTestCache(t, Config{})
	tok := fakeJWT(5, 700)
	key := NewTokenKey(jwtScope, tok)
	c.RememberToken(key, tok, newSession(t, 5), time.Now().Add(time.Hour))
	if n := testing.AllocsPerRun(1000, func() {
		if _, ok := c.GetToken(NewTokenKey(jwtScope, tok), tok); !ok {
			t.Fatal("miss")
		}
	}); n != 0 {
		t.Errorf("a JWT hit allocates %v times", n)
	}
}

// BenchmarkTokenKey compares the key of a ~700-byte JWT hit before (SHA-256
// over the whole token) and after (a seeded hash of its end, plus the full
// compare of GetToken).
//
//	go test -run '^$' -bench BenchmarkTokenKey -benchmem ./cache/
func BenchmarkTokenKey(b *testing.B) {
	tok := fakeJWT(6, 700)
	b.Run("NewKey-sha256", func(b *testing.B) {
		for b.Loop() {
			_ = NewKey(jwtScope, tok)
		}
	})
	b.Run("NewTokenKey", func(b *testing.B) {
		for b.Loop() {
			_ = NewTokenKey(jwtScope, tok)
		}
	})
	b.Run("NewTokenKey+GetToken", func(b *testing.B) {
		c := New(Config{})
		defer func() { _ = c.Close() }()
		c.RememberToken(NewTokenKey(jwtScope, tok), tok, &introspect.Session{}, time.Now().Add(time.Hour))
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := c.GetToken(NewTokenKey(jwtScope, tok), tok); !ok {
				b.Fatal("miss")
			}
		}
	})
}
