package fiberauth_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

var (
	jwtKeysOnce sync.Once
	jwtKeys     [2]*rsa.PrivateKey
)

// jwtKey is one of two RSA keys shared by the package's tests (making one
// costs tens of milliseconds).
func jwtKey(tb testing.TB, i int) *rsa.PrivateKey {
	tb.Helper()
	jwtKeysOnce.Do(func() {
		for j := range jwtKeys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			jwtKeys[j] = k
		}
	})
	return jwtKeys[i]
}

// jwtLookup reads JWTs (and other Bearer values) first, session tokens next.
const jwtLookup = "header:Authorization,header:" + fiberauth.HeaderSessionToken

// newJWTAllauth is newAllauth under allauth's JWT strategy (RS256).
func newJWTAllauth(tb testing.TB, cfg allauthtest.JWTConfig) *allauthtest.Server {
	tb.Helper()
	if cfg.PrivateKey == nil && cfg.Algorithm == "" {
		cfg.PrivateKey = jwtKey(tb, 0)
	}
	return newAllauth(tb, allauthtest.WithJWT(cfg))
}

// jwtApp answers "<ID> <username> <jti>" for the request's user.
func jwtApp(tb testing.TB, h fiber.Handler) *fiber.App {
	tb.Helper()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(h)
	app.Get("/*", func(c *fiber.Ctx) error {
		u := fiberauth.UserFrom(c)
		if u == nil {
			return c.SendString(anonymous)
		}
		var claims struct {
			JTI string `json:"jti"`
		}
		_ = u.DecodeClaims(&claims)
		return c.SendString(u.ID + " " + u.Username + " " + claims.JTI)
	})
	tb.Cleanup(func() { _ = app.Shutdown() })
	return app
}

func bearer(tok string) *http.Request { return get("Authorization", "Bearer "+tok) }

// jtiOf reads a token's jti without verifying it.
func jtiOf(tb testing.TB, tok string) string {
	tb.Helper()
	return claimsOf(tb, tok)["jti"].(string) //nolint:errcheck // test tokens always carry a string jti
}

func claimsOf(tb testing.TB, tok string) map[string]any {
	tb.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// TestJWT_VerifiedLocally: a valid access token authenticates with no call
// to allauth; the user is sub with the token's claims.
func TestJWT_VerifiedLocally(t *testing.T) {
	for _, alg := range []string{"RS256", "HS256"} {
		t.Run(alg, func(t *testing.T) {
			srv := newJWTAllauth(t, allauthtest.JWTConfig{Algorithm: alg})
			jc := &introspect.JWTConfig{PublicKey: srv.JWTPublicKeyPEM(), Secret: srv.JWTSecret()}
			m := newMiddleware(t, srv, fiberauth.Config{KeyLookup: jwtLookup, JWT: jc})
			app := jwtApp(t, m.Handler)
			access, _ := srv.IssueJWT("bob")
			srv.ResetCounters()
			for range 3 {
				r := do(t, app, bearer(access))
				if r.Status != http.StatusOK || r.Body != "2  "+jtiOf(t, access) {
					t.Fatalf("got %d %q, want bob's ID and jti with no username", r.Status, r.Body)
				}
			}
			wantCalls(t, srv, 0)
			if r := do(t, app, get("Authorization", "bearer "+access)); r.Status != http.StatusOK {
				t.Errorf("lower-case scheme: %d", r.Status)
			}
			// A session token still goes to allauth.
			r := do(t, app, withToken(srv.IssueToken("alice")))
			if r.Status != http.StatusOK || r.Body != "1 alice " {
				t.Errorf("session token: %d %q", r.Status, r.Body)
			}
			wantCalls(t, srv, 1)
		})
	}
}

// TestJWT_RejectedLocally: every bad JWT is a 401 with a Bearer challenge,
// and allauth never hears of it.
func TestJWT_RejectedLocally(t *testing.T) {
	srv := newJWTAllauth(t, allauthtest.JWTConfig{})
	other := newJWTAllauth(t, allauthtest.JWTConfig{PrivateKey: jwtKey(t, 1)})
	m := newMiddleware(t, srv, fiberauth.Config{
		KeyLookup: jwtLookup, JWT: &introspect.JWTConfig{PublicKey: srv.JWTPublicKeyPEM()}, Optional: true,
	})
	app := jwtApp(t, m.Handler)
	access, refresh := srv.IssueJWT("alice")
	foreign, _ := other.IssueJWT("alice")
	expired := claimsOf(t, access)
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	parts := strings.Split(access, ".")
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	srv.ResetCounters()
	for name, tok := range map[string]string{
		"refresh token":         refresh,
		"expired":               srv.SignJWT(expired),
		"signed by another key": foreign,
		"garbage JWT":           "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
		"claims swapped":        parts[0] + "." + strings.Split(refresh, ".")[1] + "." + parts[2],
		"alg none":              none + "x",
	} {
		t.Run(name, func(t *testing.T) {
			r := do(t, app, bearer(tok))
			wantError(t, r, http.StatusUnauthorized, headless.CodeNotAuthenticated)
			if got := r.Header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
				t.Errorf("WWW-Authenticate = %q", got)
			}
		})
	}
	wantCalls(t, srv, 0)
	// Optional still lets the anonymous through.
	if r := do(t, app, get()); r.Body != anonymous {
		t.Errorf("anonymous: %d %q", r.Status, r.Body)
	}
}

// TestJWT_StatefulLogout: in stateful mode allauth is asked once per
// CacheTTL, so a logout ends a still-unexpired token within CacheTTL.
func TestJWT_StatefulLogout(t *testing.T) {
	srv := newJWTAllauth(t, allauthtest.JWTConfig{})
	const ttl = time.Second
	m := newMiddleware(t, srv, fiberauth.Config{
		KeyLookup: jwtLookup, JWT: &introspect.JWTConfig{PublicKey: srv.JWTPublicKeyPEM()},
		JWTStateful: true, CacheTTL: ttl,
	})
	app := jwtApp(t, m.Handler)
	access, _ := srv.IssueJWT("alice")
	want := "1 alice " + jtiOf(t, access) // allauth's user, the token's claims
	srv.ResetCounters()
	for range 3 {
		if r := do(t, app, bearer(access)); r.Status != http.StatusOK || r.Body != want {
			t.Fatalf("got %d %q, want %q", r.Status, r.Body, want)
		}
	}
	wantCalls(t, srv, 1)

	srv.Logout(access)
	// Until CacheTTL runs out the cached answer stands: that is the trade.
	if r := do(t, app, bearer(access)); r.Status != http.StatusOK {
		t.Fatalf("right after logout: %d (the cached answer should stand)", r.Status)
	}
	sleepPast(ttl)
	r := do(t, app, bearer(access))
	wantError(t, r, http.StatusGone, headless.CodeSessionGone)
	wantCalls(t, srv, 2)
	// The 410 is cached negatively like any other.
	wantError(t, do(t, app, bearer(access)), http.StatusGone, headless.CodeSessionGone)
	wantCalls(t, srv, 2)
	// An invalid token still never reaches allauth in stateful mode.
	_, refresh := srv.IssueJWT("bob")
	wantError(t, do(t, app, bearer(refresh)), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	wantCalls(t, srv, 2)
}

// TestJWT_StatefulNeverCachedPastExp: allauth's answer for a token is not
// kept past the token's exp, even with a long CacheTTL and a lenient skew.
func TestJWT_StatefulNeverCachedPastExp(t *testing.T) {
	srv := newJWTAllauth(t, allauthtest.JWTConfig{AccessTokenTTL: time.Second})
	m := newMiddleware(t, srv, fiberauth.Config{
		KeyLookup: jwtLookup, JWT: &introspect.JWTConfig{PublicKey: srv.JWTPublicKeyPEM(), ClockSkew: time.Minute},
		JWTStateful: true, CacheTTL: time.Hour,
	})
	app := jwtApp(t, m.Handler)
	// exp is iat+1 with iat in whole seconds: start just past a second
	// boundary, so that the token lives about a second, not a millisecond.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second + 10*time.Millisecond)))
	access, _ := srv.IssueJWT("alice")
	srv.ResetCounters()
	wantUserID(t, do(t, app, bearer(access)), "1")
	wantCalls(t, srv, 1)
	exp := time.Unix(int64(claimsOf(t, access)["exp"].(float64)), 0) //nolint:errcheck // exp is a number
	time.Sleep(time.Until(exp) + 200*time.Millisecond)
	// Locally still within the skew, but the cache entry died at exp: allauth
	// is asked again and, with no leeway of its own, refuses the token.
	wantError(t, do(t, app, bearer(access)), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	wantCalls(t, srv, 2)
}

// TestJWT_StatefulSubMismatch: allauth's session must belong to sub.
func TestJWT_StatefulSubMismatch(t *testing.T) {
	srv := newJWTAllauth(t, allauthtest.JWTConfig{})
	m := newMiddleware(t, srv, fiberauth.Config{
		KeyLookup: jwtLookup, JWT: &introspect.JWTConfig{PublicKey: srv.JWTPublicKeyPEM()}, JWTStateful: true,
	})
	app := jwtApp(t, m.Handler)
	access, _ := srv.IssueJWT("alice")
	c := claimsOf(t, access)
	c["sub"] = "2" // alice's session, bob's id
	wantError(t, do(t, app, bearer(srv.SignJWT(c))), http.StatusUnauthorized, headless.CodeNotAuthenticated)
}

func wantUserID(tb testing.TB, r result, id string) {
	tb.Helper()
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Body, id+" ") {
		tb.Fatalf("got %d %q, want user %s", r.Status, r.Body, id)
	}
}

func TestJWT_Config(t *testing.T) {
	srv := newJWTAllauth(t, allauthtest.JWTConfig{})
	pub := srv.JWTPublicKeyPEM()
	for name, tc := range map[string]struct {
		cfg  fiberauth.Config
		want string
	}{
		"JWT without Authorization in KeyLookup": {fiberauth.Config{JWT: &introspect.JWTConfig{PublicKey: pub}}, "Authorization header"},
		"JWTStateful without JWT":                {fiberauth.Config{KeyLookup: jwtLookup, JWTStateful: true}, "JWTStateful needs"},
		"no key":                                 {fiberauth.Config{KeyLookup: jwtLookup, JWT: &introspect.JWTConfig{}}, "fiberauth: introspect: JWTConfig needs"},
		"alg none":                               {fiberauth.Config{KeyLookup: jwtLookup, JWT: &introspect.JWTConfig{PublicKey: pub, Algorithms: []string{"none"}}}, "not allowed"},
	} {
		t.Run(name, func(t *testing.T) {
			tc.cfg.BaseURL = srv.URL
			m, err := fiberauth.NewMiddleware(tc.cfg)
			if err == nil {
				_ = m.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want one saying %q", err, tc.want)
			}
		})
	}

	access, _ := srv.IssueJWT("alice")
	srv.ResetCounters()
	m := newMiddleware(t, srv, fiberauth.Config{KeyLookup: "header:Authorization", JWT: &introspect.JWTConfig{PublicKey: pub}})
	wantUserID(t, do(t, jwtApp(t, m.Handler), bearer(access)), "1")
	wantCalls(t, srv, 0)
}

// TestJWT_EveryBearerAnsweredLocally: under allauth's JWT strategy a Bearer
// value that is not a valid access token can never be valid, so with
// Config.JWT set no Bearer value reaches allauth, however close to a JWT it
// looks (an empty signature, four segments, base64 padding) or far from one
// (an opaque token). Session tokens and cookies are still asked of allauth.
func TestJWT_EveryBearerAnsweredLocally(t *testing.T) {
	for _, stateful := range []bool{false, true} {
		t.Run(map[bool]string{false: "stateless", true: "stateful"}[stateful], func(t *testing.T) {
			srv := newJWTAllauth(t, allauthtest.JWTConfig{})
			m := newMiddleware(t, srv, fiberauth.Config{
				KeyLookup:   "header:Authorization,header:" + fiberauth.HeaderSessionToken + ",cookie:sessionid",
				JWT:         &introspect.JWTConfig{PublicKey: srv.JWTPublicKeyPEM()},
				JWTStateful: stateful,
			})
			app := jwtApp(t, m.Handler)
			access, _ := srv.IssueJWT("alice")
			p := strings.Split(access, ".")
			srv.ResetCounters()
			for name, tok := range map[string]string{
				"empty signature":       p[0] + "." + p[1] + ".",
				"empty payload":         p[0] + ".." + p[2],
				"four segments":         access + ".x",
				"two segments":          p[0] + "." + p[1],
				"base64 padding":        p[0] + "=." + p[1] + "." + p[2],
				"std base64 alphabet":   p[0] + "." + p[1] + "." + strings.ReplaceAll(strings.ReplaceAll(p[2], "-", "+"), "_", "/") + "+/",
				"opaque token":          "opaque-token",
				"session-token shaped":  srv.IssueToken("alice"),
				"dots only":             "..",
				"trailing dot":          access + ".",
				"leading dot":           "." + access,
				"valid token, one more": access + "A",
			} {
				t.Run(name, func(t *testing.T) {
					r := do(t, app, bearer(tok))
					wantError(t, r, http.StatusUnauthorized, headless.CodeNotAuthenticated)
					if got := r.Header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
						t.Errorf("WWW-Authenticate = %q", got)
					}
				})
			}
			wantCalls(t, srv, 0)

			// The real token still works (asked of allauth only when stateful).
			wantUserID(t, do(t, app, bearer(access)), "1")
			calls := map[bool]int64{false: 0, true: 1}[stateful]
			wantCalls(t, srv, calls)
			// Session tokens and cookies are unaffected: allauth decides.
			wantUserID(t, do(t, app, withToken(srv.IssueToken("bob"))), "2")
			wantUserID(t, do(t, app, withCookie("sessionid", srv.IssueCookie("alice"))), "1")
			wantError(t, do(t, app, withToken("opaque-token")), http.StatusGone, headless.CodeSessionGone)
			wantCalls(t, srv, calls+3)
		})
	}
}
