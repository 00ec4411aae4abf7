package fiberauth_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/internal/cache"
	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// otherB64 returns a base64url character other than c.
func otherB64(c byte) byte {
	if c == 'A' {
		return 'B'
	}
	return 'A'
}

// withByte returns tok with the byte at i replaced by another base64url one.
func withByte(tok string, i int) string {
	b := []byte(tok)
	b[i] = otherB64(b[i])
	return string(b)
}

// segments returns a JWT's header, payload and signature.
func segments(tb testing.TB, tok string) (h, p, s string) {
	tb.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		tb.Fatalf("token has %d segments", len(parts))
	}
	return parts[0], parts[1], parts[2]
}

// A verified JWT is served from the in-process cache only to a token equal
// to it byte for byte: tokens that share its prefix, its suffix (and so its
// cache key: the key hashes a token's last bytes and its length), or differ
// in one header, payload or signature byte, or in length, are each verified
// afresh and refused, never served the cached user, and the cached tokens
// still hit afterwards. Without the full compare on a hit, the variants that
// share a cached token's key would get its 200 (and the splice, bob's user).
func TestJWT_HitOnlyForTheSameBytes(t *testing.T) {
	for _, alg := range []string{"RS256", "HS256"} {
		t.Run(alg, func(t *testing.T) {
			srv := newJWTAllauth(t, allauthtest.JWTConfig{Algorithm: alg})
			m := newMiddleware(t, srv, fiberauth.Config{
				KeyLookup: jwtLookup,
				JWT:       &introspect.JWTConfig{PublicKey: srv.JWTPublicKeyPEM(), Secret: srv.JWTSecret()},
			})
			app := jwtApp(t, m.Handler)
			alice, _ := srv.IssueJWT("alice")
			bob, _ := srv.IssueJWT("bob")
			srv.ResetCounters()
			wantHit := func(tok, user string) {
				t.Helper()
				if r := do(t, app, bearer(tok)); r.Status != http.StatusOK || r.Body != user+"  "+jtiOf(t, tok) {
					t.Fatalf("got %d %q, want %s's 200", r.Status, r.Body, user)
				}
			}
			wantHit(alice, "1")
			wantHit(bob, "2")
			hits := m.Metrics().Cache.Hits

			ah, ap, as := segments(t, alice)
			_, _, bs := segments(t, bob)
			sig := len(ah) + 1 + len(ap) + 1 // where alice's signature starts
			variants := []struct {
				name, tok string
				sameKey   bool // shares alice's (or, for the splice, bob's) cache key
			}{
				{"one header byte", withByte(alice, 3), true},
				{"one payload byte", withByte(alice, len(ah)+1+len(ap)/2), true},
				{"first signature byte", withByte(alice, sig), len(as) > 64},
				{"middle signature byte", withByte(alice, sig+len(as)/2), false},
				{"last signature byte", withByte(alice, len(alice)-1), false},
				{"one byte shorter (a prefix)", alice[:len(alice)-1], false},
				{"one byte longer", alice + "A", false},
				{"without the signature's last 8 bytes", alice[:len(alice)-8], false},
				{"alice's header and payload, bob's signature", ah + "." + ap + "." + bs, len(alice) == len(bob) && len(bs) >= 64},
			}
			for _, v := range variants {
				if v.sameKey {
					// The case the full compare exists for: check that it is
					// tested at all (the key would serve it otherwise). Any
					// one scope will do: keys of one scope are compared.
					scope := cache.NewScope(introspect.Bearer, "any")
					if cache.NewTokenKey(scope, v.tok) != cache.NewTokenKey(scope, alice) &&
						cache.NewTokenKey(scope, v.tok) != cache.NewTokenKey(scope, bob) {
						t.Errorf("%s: expected to share a cached token's key", v.name)
					}
				}
				wantError(t, do(t, app, bearer(v.tok)), http.StatusUnauthorized, headless.CodeNotAuthenticated)
			}
			if got := m.Metrics().Cache.Hits; got != hits {
				t.Errorf("%d cache hits for tokens that differ from the verified ones", got-hits)
			}
			wantHit(alice, "1")
			wantHit(bob, "2")
			if got := m.Metrics().Cache.Hits; got != hits+2 {
				t.Errorf("the verified tokens hit %d times after the variants, want 2", got-hits)
			}
			wantCalls(t, srv, 0)
		})
	}
}

// A token longer than cache.MaxKeptTokenBytes is still served from the cache
// (its entry keeps its SHA-256 instead of its bytes), and only to itself.
func TestJWT_LongTokenHit(t *testing.T) {
	srv := newJWTAllauth(t, allauthtest.JWTConfig{Claims: func(allauthtest.User) map[string]any {
		return map[string]any{"pad": strings.Repeat("x", cache.MaxKeptTokenBytes)}
	}})
	m := newMiddleware(t, srv, fiberauth.Config{KeyLookup: jwtLookup, JWT: &introspect.JWTConfig{PublicKey: srv.JWTPublicKeyPEM()}})
	app := jwtApp(t, m.Handler)
	alice, _ := srv.IssueJWT("alice")
	if len(alice) <= cache.MaxKeptTokenBytes {
		t.Fatalf("token of %d bytes, want more than %d", len(alice), cache.MaxKeptTokenBytes)
	}
	want := "1  " + jtiOf(t, alice)
	for range 3 {
		if r := do(t, app, bearer(alice)); r.Status != http.StatusOK || r.Body != want {
			t.Fatalf("got %d %q", r.Status, r.Body)
		}
	}
	if s := m.Metrics().Cache; s.Hits != 2 || s.Misses != 1 {
		t.Errorf("stats %+v, want 1 miss (verified) then 2 hits", s)
	}
	// Same length and last bytes as alice's token: the same cache key.
	wantError(t, do(t, app, bearer(withByte(alice, 3))), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	if s := m.Metrics().Cache; s.Hits != 2 {
		t.Errorf("a token differing in one byte hit: %+v", s)
	}
	wantCalls(t, srv, 0)
}

// A JWT hit allocates nothing, RS256 and HS256 alike.
func TestJWT_HitAllocatesNothing(t *testing.T) {
	for _, alg := range []string{"RS256", "HS256"} {
		t.Run(alg, func(t *testing.T) {
			srv := newJWTAllauth(t, allauthtest.JWTConfig{Algorithm: alg})
			m := newMiddleware(t, srv, fiberauth.Config{
				KeyLookup: jwtLookup,
				JWT:       &introspect.JWTConfig{PublicKey: srv.JWTPublicKeyPEM(), Secret: srv.JWTSecret()},
			})
			app := fiber.New(fiber.Config{DisableStartupMessage: true})
			app.Use(m.Handler)
			app.Get("/", func(c *fiber.Ctx) error { return c.SendStatus(http.StatusOK) })
			t.Cleanup(func() { _ = app.Shutdown() })
			h := app.Handler()
			access, _ := srv.IssueJWT("alice")
			fctx := &fasthttp.RequestCtx{}
			fctx.Request.Header.SetMethod(fiber.MethodGet)
			fctx.Request.SetRequestURI("/")
			fctx.Request.Header.Set(fiber.HeaderAuthorization, "Bearer "+access)
			h(fctx) // verified, then kept
			if fctx.Response.StatusCode() != http.StatusOK {
				t.Fatalf("status %d", fctx.Response.StatusCode())
			}
			hits := m.Metrics().Cache.Hits
			if n := testing.AllocsPerRun(200, func() { h(fctx) }); n != 0 {
				t.Errorf("a JWT hit allocates %v times", n)
			}
			if got := m.Metrics().Cache.Hits - hits; got < 200 {
				t.Errorf("%d hits, want every repeat a hit", got)
			}
		})
	}
}
