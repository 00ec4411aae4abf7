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

	"github.com/gofiber/fiber/v2"

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

// The JWT strategy is the core's (root jwt_test.go); here, that the user a
// verified token names, with its claims, reaches the handler, and that a
// session token still goes to allauth.
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
	if r := do(t, jwtApp(t, m.Handler), bearer(access)); r.Status != http.StatusOK || !strings.HasPrefix(r.Body, "1 ") {
		t.Fatalf("got %d %q, want user 1", r.Status, r.Body)
	}
	wantCalls(t, srv, 0)
}
