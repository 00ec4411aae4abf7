package headless

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

	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// allauth's JWT strategy as the core answers it: verified in process,
// refused in process, or (stateful) also asked of allauth through the
// cache. One clock drives the stand-in's iat and exp, the verifier and the
// cache.

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

// jwtSources read JWTs (and other Bearer values) first, session tokens next.
var jwtSources = []Source{FromAuthHeader("Bearer"), FromHeader(HeaderSessionToken)}

// newJWTAllauth is newAllauth under allauth's JWT strategy (RS256 unless
// cfg names another), on clock if not nil.
func newJWTAllauth(tb testing.TB, cfg allauthtest.JWTConfig, clock *testClock) *allauthtest.Server {
	tb.Helper()
	if cfg.PrivateKey == nil && cfg.Algorithm == "" {
		cfg.PrivateKey = jwtKey(tb, 0)
	}
	if clock != nil {
		cfg.Now = clock.Now
	}
	return newAllauth(tb, allauthtest.WithJWT(cfg))
}

// line is "<ID> <username> <jti>" for a result's user, or its error.
func line(res Result) string {
	if res.Session == nil {
		return describe(res)
	}
	var claims struct {
		JTI string `json:"jti"`
	}
	_ = res.Session.User.DecodeClaims(&claims)
	return res.Session.User.ID + " " + res.Session.User.Username + " " + claims.JTI
}

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

func wantUserID(tb testing.TB, res Result, id string) {
	tb.Helper()
	if res.Session == nil || res.Session.User.ID != id {
		tb.Fatalf("got %s, want user %s", describe(res), id)
	}
}

// A valid access token authenticates with no call to allauth; the user is
// sub with the token's claims.
func TestJWT_VerifiedLocally(t *testing.T) {
	t.Parallel()
	for _, alg := range []string{"RS256", "HS256"} {
		t.Run(alg, func(t *testing.T) {
			t.Parallel()
			srv := newJWTAllauth(t, allauthtest.JWTConfig{Algorithm: alg}, nil)
			jc := &introspect.JWTConfig{PublicKey: srv.JWTPublicKeyPEM(), Secret: srv.JWTSecret()}
			a := newCore(t, srv, Config{Sources: jwtSources, JWT: jc})
			access, _ := srv.IssueJWT("bob")
			srv.ResetCounters()
			for range 3 {
				if got := line(auth(a, bearer(access))); got != "2  "+jtiOf(t, access) {
					t.Fatalf("got %q, want bob's ID and jti with no username", got)
				}
			}
			wantCalls(t, srv, 0)
			wantUserID(t, auth(a, get("Authorization", "bearer "+access)), "2")
			// A session token still goes to allauth.
			if got := line(auth(a, withToken(srv.IssueToken("alice")))); got != "1 alice " {
				t.Errorf("session token: %q", got)
			}
			wantCalls(t, srv, 1)
		})
	}
}

// Every bad JWT is a 401 with a Bearer challenge, and allauth never hears
// of it.
func TestJWT_RejectedLocally(t *testing.T) {
	t.Parallel()
	srv := newJWTAllauth(t, allauthtest.JWTConfig{}, nil)
	other := newJWTAllauth(t, allauthtest.JWTConfig{PrivateKey: jwtKey(t, 1)}, nil)
	a := newCore(t, srv, Config{Sources: jwtSources, JWT: &introspect.JWTConfig{PublicKey: srv.JWTPublicKeyPEM()}})
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
		h := wantError(t, a.Authenticate(bearer(tok), true), http.StatusUnauthorized, CodeNotAuthenticated)
		if got := h.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
			t.Errorf("%s: WWW-Authenticate = %q", name, got)
		}
	}
	wantCalls(t, srv, 0)
	// Optional still lets the anonymous through.
	wantAnonymous(t, a.Authenticate(get(), true))
}

// In stateful mode allauth is asked once per CacheTTL, so a logout ends a
// still-unexpired token within CacheTTL.
func TestJWT_StatefulLogout(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	srv := newJWTAllauth(t, allauthtest.JWTConfig{}, clock)
	const ttl = time.Second
	a := newCore(t, srv, Config{
		Sources: jwtSources, JWT: &introspect.JWTConfig{PublicKey: srv.JWTPublicKeyPEM(), Now: clock.Now},
		JWTStateful: true, CacheTTL: ttl, RefreshAhead: -1, now: clock.Now,
	})
	access, _ := srv.IssueJWT("alice")
	want := "1 alice " + jtiOf(t, access) // allauth's user, the token's claims
	srv.ResetCounters()
	for range 3 {
		if got := line(auth(a, bearer(access))); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	wantCalls(t, srv, 1)

	srv.Logout(access)
	// Until CacheTTL runs out the cached answer stands: that is the trade.
	clock.Add(ttl - 10*time.Millisecond)
	wantUserID(t, auth(a, bearer(access)), "1")
	clock.Add(20 * time.Millisecond)
	wantError(t, auth(a, bearer(access)), http.StatusGone, CodeSessionGone)
	wantCalls(t, srv, 2)
	// The 410 is cached negatively like any other.
	wantError(t, auth(a, bearer(access)), http.StatusGone, CodeSessionGone)
	wantCalls(t, srv, 2)
	// An invalid token still never reaches allauth in stateful mode.
	_, refresh := srv.IssueJWT("bob")
	wantError(t, auth(a, bearer(refresh)), http.StatusUnauthorized, CodeNotAuthenticated)
	wantCalls(t, srv, 2)
}

// allauth's answer for a token is not kept past the token's exp, even with
// a long CacheTTL and a lenient skew.
func TestJWT_StatefulNeverCachedPastExp(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	srv := newJWTAllauth(t, allauthtest.JWTConfig{AccessTokenTTL: time.Second}, clock)
	a := newCore(t, srv, Config{
		Sources: jwtSources, JWT: &introspect.JWTConfig{PublicKey: srv.JWTPublicKeyPEM(), ClockSkew: time.Minute, Now: clock.Now},
		JWTStateful: true, CacheTTL: time.Hour, now: clock.Now,
	})
	// exp is iat+1 with iat in whole seconds: start just past a second
	// boundary, so that the token lives about a second.
	clock.ns.Store(time.Now().Truncate(time.Second).Add(10 * time.Millisecond).UnixNano())
	access, _ := srv.IssueJWT("alice")
	srv.ResetCounters()
	wantUserID(t, auth(a, bearer(access)), "1")
	wantUserID(t, auth(a, bearer(access)), "1")
	wantCalls(t, srv, 1)
	clock.Add(time.Second + 200*time.Millisecond)
	// Locally still within the skew, but the cache entry died at exp: allauth
	// is asked again and, with no leeway of its own, refuses the token.
	wantError(t, auth(a, bearer(access)), http.StatusUnauthorized, CodeNotAuthenticated)
	wantCalls(t, srv, 2)
}

// allauth's session must belong to sub.
func TestJWT_StatefulSubMismatch(t *testing.T) {
	t.Parallel()
	srv := newJWTAllauth(t, allauthtest.JWTConfig{}, nil)
	a := newCore(t, srv, Config{Sources: jwtSources, JWT: &introspect.JWTConfig{PublicKey: srv.JWTPublicKeyPEM()}, JWTStateful: true})
	access, _ := srv.IssueJWT("alice")
	c := claimsOf(t, access)
	c["sub"] = "2" // alice's session, bob's id
	wantError(t, auth(a, bearer(srv.SignJWT(c))), http.StatusUnauthorized, CodeNotAuthenticated)
	// allauth's failure is a 503, as for any lookup.
	srv.SetFault(allauthtest.Fault{Status: http.StatusBadGateway})
	other, _ := srv.IssueJWT("bob")
	wantError(t, auth(a, bearer(other)), http.StatusServiceUnavailable, CodeUpstreamUnavailable)
}

// What New refuses about JWT.
func TestJWT_Config(t *testing.T) {
	t.Parallel()
	srv := newJWTAllauth(t, allauthtest.JWTConfig{}, nil)
	pub := srv.JWTPublicKeyPEM()
	for name, tc := range map[string]struct {
		cfg  Config
		want string
	}{
		"JWT without an Authorization source": {Config{JWT: &introspect.JWTConfig{PublicKey: pub}}, "Authorization header"},
		"JWTStateful without JWT":             {Config{Sources: jwtSources, JWTStateful: true}, "JWTStateful needs"},
		"no key":                              {Config{Sources: jwtSources, JWT: &introspect.JWTConfig{}}, "headless: introspect: JWTConfig needs"},
		"alg none":                            {Config{Sources: jwtSources, JWT: &introspect.JWTConfig{PublicKey: pub, Algorithms: []string{"none"}}}, "not allowed"},
	} {
		tc.cfg.BaseURL = srv.URL
		if a, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			if a != nil {
				_ = a.Close()
			}
			t.Errorf("%s: New = %v, want an error saying %q", name, err, tc.want)
		}
	}

	access, _ := srv.IssueJWT("alice")
	srv.ResetCounters()
	a := newCore(t, srv, Config{Sources: bearerSource, JWT: &introspect.JWTConfig{PublicKey: pub}})
	wantUserID(t, auth(a, bearer(access)), "1")
	wantCalls(t, srv, 0)
}

// Under allauth's JWT strategy a Bearer value that is not a valid access
// token can never be valid, so with Config.JWT set no Bearer value reaches
// allauth, however close to a JWT it looks (an empty signature, four
// segments, base64 padding) or far from one (an opaque token). Session
// tokens and cookies are still asked of allauth.
func TestJWT_EveryBearerAnsweredLocally(t *testing.T) {
	t.Parallel()
	for _, stateful := range []bool{false, true} {
		t.Run(map[bool]string{false: "stateless", true: "stateful"}[stateful], func(t *testing.T) {
			t.Parallel()
			srv := newJWTAllauth(t, allauthtest.JWTConfig{}, nil)
			a := newCore(t, srv, Config{
				Sources:     []Source{FromAuthHeader("Bearer"), FromHeader(HeaderSessionToken), FromCookie("sessionid")},
				JWT:         &introspect.JWTConfig{PublicKey: srv.JWTPublicKeyPEM()},
				JWTStateful: stateful,
			})
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
				"not a b64token":        "tök.en",
			} {
				h := wantError(t, auth(a, bearer(tok)), http.StatusUnauthorized, CodeNotAuthenticated)
				if got := h.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
					t.Errorf("%s: WWW-Authenticate = %q", name, got)
				}
			}
			wantCalls(t, srv, 0)

			// The real token still works (asked of allauth only when stateful).
			wantUserID(t, auth(a, bearer(access)), "1")
			calls := map[bool]int64{false: 0, true: 1}[stateful]
			wantCalls(t, srv, calls)
			// Session tokens and cookies are unaffected: allauth decides.
			wantUserID(t, auth(a, withToken(srv.IssueToken("bob"))), "2")
			wantUserID(t, auth(a, withCookie("sessionid", srv.IssueCookie("alice"))), "1")
			wantError(t, auth(a, withToken("opaque-token")), http.StatusGone, CodeSessionGone)
			wantCalls(t, srv, calls+3)
		})
	}
}

// A verified JWT is kept in process: a repeat is a cache hit (no signature
// check), never past the token's exp, and Evict drops it.
func TestJWT_VerifiedTokenCached(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	srv := newJWTAllauth(t, allauthtest.JWTConfig{AccessTokenTTL: 2 * time.Second}, clock)
	jc := &introspect.JWTConfig{PublicKey: srv.JWTPublicKeyPEM(), ClockSkew: -1, Now: clock.Now}
	a := newCore(t, srv, Config{Sources: jwtSources, JWT: jc, CacheTTL: time.Minute, now: clock.Now})
	access, _ := srv.IssueJWT("bob")
	srv.ResetCounters()
	for range 3 {
		if got := line(auth(a, bearer(access))); got != "2  "+jtiOf(t, access) {
			t.Fatalf("got %q", got)
		}
	}
	wantCalls(t, srv, 0)
	if s := a.Metrics().Cache; s.Hits != 2 || s.Misses != 1 {
		t.Errorf("stats %+v, want 1 miss (verified) then 2 hits", s)
	}

	if err := a.Evict(t.Context(), access); err != nil {
		t.Fatal(err)
	}
	wantUserID(t, auth(a, bearer(access)), "2")
	if s := a.Metrics().Cache; s.Misses != 2 {
		t.Errorf("Evict did not drop the verified token: %+v", s)
	}

	// CacheTTL is a minute; exp comes first and ends the cached answer.
	exp := time.Unix(int64(claimsOf(t, access)["exp"].(float64)), 0) //nolint:errcheck // test tokens carry a numeric exp
	clock.Add(exp.Sub(clock.Now()) + 50*time.Millisecond)
	wantError(t, auth(a, bearer(access)), http.StatusUnauthorized, CodeNotAuthenticated)
	wantCalls(t, srv, 0)
}
