package allauth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/allauth"

	"github.com/golang-jwt/jwt/v5"

	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// Test keys, generated once: RSA key generation costs tens of milliseconds.
var (
	keysOnce sync.Once
	rsaKeys  [3]*rsa.PrivateKey
)

func testKey(tb testing.TB, i int) *rsa.PrivateKey {
	tb.Helper()
	keysOnce.Do(func() {
		for j := range rsaKeys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaKeys[j] = k
		}
	})
	return rsaKeys[i]
}

func publicPEM(tb testing.TB, k *rsa.PrivateKey) []byte {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// jwkJSON is k's public JWK, with kid if not empty.
func jwkJSON(k *rsa.PrivateKey, kid string) string {
	m := map[string]string{
		"kty": "RSA",
		"n":   base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
		"e":   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
	}
	if kid != "" {
		m["kid"] = kid
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

var testSecret = []byte("a-shared-secret-of-at-least-32-bytes!")

// t0 is the injected "now" of the claim tests.
var t0 = time.Unix(1795711648, 0)

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// allauthClaims are the claims allauth puts in an access token issued at t0.
func allauthClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"iat":       t0.Unix(),
		"exp":       t0.Unix() + 300,
		"sid":       "8NeY5SNWi9jzzfIJdnvJn7bqrI9OD8z9tRC+xGiWWpA2rVMQBVXfIK8UjkIQ4eQu",
		"jti":       "9a0e1270-8b44-4235-a599-1b2b65f249ef",
		"token_use": "access",
		"sub":       "1",
	}
}

// signRS signs claims with key under alg, with allauth's kid (the key's
// thumbprint) unless kid says otherwise ("-" for none).
func signRS(tb testing.TB, alg jwt.SigningMethod, key *rsa.PrivateKey, kid string, claims jwt.Claims) string {
	tb.Helper()
	tok := jwt.NewWithClaims(alg, claims)
	switch kid {
	case "":
		tok.Header["kid"] = allauth.JWKThumbprint(&key.PublicKey)
	case "-":
	default:
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func signHS(tb testing.TB, alg jwt.SigningMethod, secret []byte, claims jwt.Claims) string {
	tb.Helper()
	s, err := jwt.NewWithClaims(alg, claims).SignedString(secret)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func newVerifier(tb testing.TB, cfg introspect.JWTConfig) *allauth.JWTVerifier {
	tb.Helper()
	if cfg.Now == nil {
		cfg.Now = fixedClock(t0)
	}
	v, err := allauth.NewJWTVerifier(cfg)
	if err != nil {
		tb.Fatalf("NewJWTVerifier: %v", err)
	}
	return v
}

// wantReject checks that err is the local 401 of a refused token, and that
// its text names reason.
func wantReject(tb testing.TB, s *introspect.Session, err error, reason string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("token accepted (user %q), want it refused for %q", s.User.ID, reason)
	}
	var ae *introspect.AuthError
	if !errors.Is(err, introspect.ErrUnauthenticated) || errors.Is(err, introspect.ErrSessionGone) ||
		!errors.As(err, &ae) || ae.Status != 401 || !allauth.IsLocal(ae) {
		tb.Fatalf("err = %v (%T), want a local 401 *AuthError", err, err)
	}
	if !strings.Contains(err.Error(), reason) {
		tb.Fatalf("err = %q, want it to say %q", err, reason)
	}
}

func TestJWTVerify_AllauthToken(t *testing.T) {
	key := testKey(t, 0)
	v := newVerifier(t, introspect.JWTConfig{PublicKey: publicPEM(t, key)})
	claims := allauthClaims()
	claims["tenant"] = "acme" // a project's get_claims
	claims["roles"] = []string{"admin"}
	s, err := v.Verify(signRS(t, jwt.SigningMethodRS256, key, "", claims))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if s.User.ID != "1" || s.User.Username != "" || len(s.User.Raw) != 0 || s.Methods != nil {
		t.Errorf("user = %+v, want only ID 1", s.User)
	}
	if !s.ExpiresAt.Equal(t0.Add(300 * time.Second)) {
		t.Errorf("ExpiresAt = %v, want %v", s.ExpiresAt, t0.Add(300*time.Second))
	}
	var got struct {
		Sub      string   `json:"sub"`
		SID      string   `json:"sid"`
		JTI      string   `json:"jti"`
		TokenUse string   `json:"token_use"`
		Tenant   string   `json:"tenant"`
		Roles    []string `json:"roles"`
		Exp      int64    `json:"exp"`
	}
	if err := s.User.DecodeClaims(&got); err != nil {
		t.Fatalf("DecodeClaims: %v", err)
	}
	if got.Sub != "1" || got.SID != claims["sid"] || got.JTI != claims["jti"] || got.TokenUse != "access" ||
		got.Tenant != "acme" || len(got.Roles) != 1 || got.Exp != t0.Unix()+300 {
		t.Errorf("claims = %+v", got)
	}
	if err := (&introspect.User{ID: "1"}).DecodeClaims(&got); err == nil {
		t.Error("DecodeClaims of a user without claims succeeded")
	}
}

// TestJWTVerify_ClaimRules covers every claim rule, with a correct RS256
// signature each time: only the claims decide.
func TestJWTVerify_ClaimRules(t *testing.T) {
	key := testKey(t, 0)
	v := newVerifier(t, introspect.JWTConfig{PublicKey: publicPEM(t, key)})
	now := t0.Unix()
	tests := []struct {
		name   string
		edit   func(jwt.MapClaims)
		reason string // "" means valid
	}{
		{"valid", func(jwt.MapClaims) {}, ""},
		{"token_use refresh", func(c jwt.MapClaims) { c["token_use"] = "refresh" }, "token_use"},
		{"token_use missing", func(c jwt.MapClaims) { delete(c, "token_use") }, "token_use"},
		{"token_use other", func(c jwt.MapClaims) { c["token_use"] = "id" }, "token_use"},
		{"token_use upper case", func(c jwt.MapClaims) { c["token_use"] = "ACCESS" }, "token_use"},
		{"token_use not a string", func(c jwt.MapClaims) { c["token_use"] = 1 }, "token_use"},
		{"exp missing", func(c jwt.MapClaims) { delete(c, "exp") }, "without exp"},
		{"exp past", func(c jwt.MapClaims) { c["exp"] = now - 3600 }, "expired"},
		{"exp past within skew", func(c jwt.MapClaims) { c["exp"] = now - 29 }, ""},
		{"exp past by exactly the skew", func(c jwt.MapClaims) { c["exp"] = now - 30 }, "expired"},
		{"exp past beyond skew", func(c jwt.MapClaims) { c["exp"] = now - 31 }, "expired"},
		{"exp a string", func(c jwt.MapClaims) { c["exp"] = "1795711948" }, "malformed"},
		{"exp null", func(c jwt.MapClaims) { c["exp"] = nil }, "malformed"},
		{"exp a float", func(c jwt.MapClaims) { c["exp"] = float64(now) + 300.5 }, ""},
		{"exp absurdly far", func(c jwt.MapClaims) { c["exp"] = 1e16 }, "malformed"},
		{"exp before 1970", func(c jwt.MapClaims) { c["exp"] = -1 }, "expired"},
		{"sub missing", func(c jwt.MapClaims) { delete(c, "sub") }, "sub"},
		{"sub an integer", func(c jwt.MapClaims) { c["sub"] = 1 }, "sub"},
		{"sub empty", func(c jwt.MapClaims) { c["sub"] = "" }, "sub"},
		{"sub null", func(c jwt.MapClaims) { c["sub"] = nil }, "sub"},
		{"sub only in another case", func(c jwt.MapClaims) { delete(c, "sub"); c["SUB"] = "1" }, "sub"},
		{"sub a UUID", func(c jwt.MapClaims) { c["sub"] = "0b7f6c1e-8b44-4235-a599-1b2b65f249ef" }, ""},
		{"sid missing", func(c jwt.MapClaims) { delete(c, "sid") }, "sid"},
		{"sid not a string", func(c jwt.MapClaims) { c["sid"] = []int{1} }, "sid"},
		{"jti missing", func(c jwt.MapClaims) { delete(c, "jti") }, "jti"},
		{"jti not a string", func(c jwt.MapClaims) { c["jti"] = 7 }, "jti"},
		{"iat missing", func(c jwt.MapClaims) { delete(c, "iat") }, ""},
		{"iat in the future within skew", func(c jwt.MapClaims) { c["iat"] = now + 30 }, ""},
		{"iat in the future beyond skew", func(c jwt.MapClaims) { c["iat"] = now + 31 }, "not valid yet"},
		{"nbf in the future beyond skew", func(c jwt.MapClaims) { c["nbf"] = now + 31 }, "not valid yet"},
		{"nbf in the past", func(c jwt.MapClaims) { c["nbf"] = now - 1 }, ""},
		{"iss and aud are ignored, as by allauth", func(c jwt.MapClaims) { c["iss"] = "x"; c["aud"] = "y" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := allauthClaims()
			tt.edit(c)
			s, err := v.Verify(signRS(t, jwt.SigningMethodRS256, key, "", c))
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if want, _ := c["sub"].(string); s.User.ID != want {
					t.Fatalf("ID = %q, want %q", s.User.ID, want)
				}
				return
			}
			wantReject(t, s, err, tt.reason)
		})
	}
}

func TestJWTVerify_Malformed(t *testing.T) {
	key := testKey(t, 0)
	v := newVerifier(t, introspect.JWTConfig{PublicKey: publicPEM(t, key)})
	good := signRS(t, jwt.SigningMethodRS256, key, "", allauthClaims())
	parts := strings.Split(good, ".")
	enc := base64.RawURLEncoding.EncodeToString
	for name, tok := range map[string]string{
		"garbage":              "garbage",
		"two segments":         parts[0] + "." + parts[1],
		"four segments":        good + ".x",
		"padded segment":       parts[0] + "=." + parts[1] + "." + parts[2],
		"header not JSON":      enc([]byte("{")) + "." + parts[1] + "." + parts[2],
		"claims not JSON":      parts[0] + "." + enc([]byte("nope")) + "." + parts[2],
		"claims an array":      parts[0] + "." + enc([]byte("[1]")) + "." + parts[2],
		"claims null":          parts[0] + "." + enc([]byte("null")) + "." + parts[2],
		"signature not b64":    parts[0] + "." + parts[1] + ".!!",
		"signature cut":        good[:len(good)-4],
		"claims edited":        parts[0] + "." + enc([]byte(`{"iat":1795711648,"exp":1795711948,"sid":"x","jti":"y","token_use":"access","sub":"2"}`)) + "." + parts[2],
		"too long":             good + strings.Repeat("A", 5000),
		"whitespace only":      "  ",
		"empty signature":      parts[0] + "." + parts[1] + ".",
		"signature of another": parts[0] + "." + parts[1] + "." + strings.Split(signRS(t, jwt.SigningMethodRS256, key, "", jwt.MapClaims{"sub": "2"}), ".")[2],
	} {
		t.Run(name, func(t *testing.T) {
			s, err := v.Verify(tok)
			wantReject(t, s, err, "")
		})
	}
	if _, err := v.Verify(" " + good + "\t"); err != nil {
		t.Errorf("surrounding blanks: %v", err)
	}
}

// TestJWTVerify_AlgorithmConfusion: a token is only ever checked with a key
// of its own algorithm family, and only allowed algorithms are checked.
func TestJWTVerify_AlgorithmConfusion(t *testing.T) {
	key := testKey(t, 0)
	pub := publicPEM(t, key)
	rsOnly := newVerifier(t, introspect.JWTConfig{PublicKey: pub})
	both := newVerifier(t, introspect.JWTConfig{PublicKey: pub, Secret: testSecret, Algorithms: []string{"RS256", "HS256"}})
	hsOnly := newVerifier(t, introspect.JWTConfig{Secret: testSecret})
	c := allauthClaims()

	// The classic attack: HS256 with the (public) PEM as the HMAC secret.
	forged := signHS(t, jwt.SigningMethodHS256, pub, c)
	s, err := rsOnly.Verify(forged)
	wantReject(t, s, err, "algorithm")
	s, err = both.Verify(forged)
	wantReject(t, s, err, "signature")
	// The same with the DER bytes and the JWK as the secret.
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	for _, secret := range [][]byte{der, []byte(jwkJSON(key, ""))} {
		s, err = both.Verify(signHS(t, jwt.SigningMethodHS256, secret, c))
		wantReject(t, s, err, "signature")
	}

	// alg none, with and without a signature.
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []*allauth.JWTVerifier{rsOnly, both, hsOnly} {
		s, err = v.Verify(none)
		wantReject(t, s, err, "")
		s, err = v.Verify(none + "c2ln")
		wantReject(t, s, err, "")
	}
	// An alg the library does not know.
	parts := strings.Split(signRS(t, jwt.SigningMethodRS256, key, "", c), ".")
	odd := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS1024","typ":"JWT"}`)) + "." + parts[1] + "." + parts[2]
	s, err = rsOnly.Verify(odd)
	wantReject(t, s, err, "algorithm")

	// RS384 and PS256 with the right key, when only RS256 is allowed.
	s, err = rsOnly.Verify(signRS(t, jwt.SigningMethodRS384, key, "", c))
	wantReject(t, s, err, "algorithm")
	s, err = rsOnly.Verify(signRS(t, jwt.SigningMethodPS256, key, "", c))
	wantReject(t, s, err, "algorithm")
	rs384 := newVerifier(t, introspect.JWTConfig{PublicKey: pub, Algorithms: []string{"RS384"}})
	if _, err := rs384.Verify(signRS(t, jwt.SigningMethodRS384, key, "", c)); err != nil {
		t.Errorf("RS384 allowed: %v", err)
	}
	s, err = rs384.Verify(signRS(t, jwt.SigningMethodRS256, key, "", c))
	wantReject(t, s, err, "algorithm")

	// Families do not cross: an RS token to an HS-only verifier and back.
	s, err = hsOnly.Verify(signRS(t, jwt.SigningMethodRS256, key, "", c))
	wantReject(t, s, err, "algorithm")
	s, err = rsOnly.Verify(signHS(t, jwt.SigningMethodHS256, testSecret, c))
	wantReject(t, s, err, "algorithm")
	// HS384 signed with the right secret, when HS256 is the one allowed.
	s, err = hsOnly.Verify(signHS(t, jwt.SigningMethodHS384, testSecret, c))
	wantReject(t, s, err, "algorithm")

	// And the genuine ones pass.
	for _, tok := range []string{signHS(t, jwt.SigningMethodHS256, testSecret, c)} {
		if _, err := hsOnly.Verify(tok); err != nil {
			t.Errorf("HS256: %v", err)
		}
		if _, err := both.Verify(tok); err != nil {
			t.Errorf("HS256 with both allowed: %v", err)
		}
	}
	if _, err := both.Verify(signRS(t, jwt.SigningMethodRS256, key, "", c)); err != nil {
		t.Errorf("RS256 with both allowed: %v", err)
	}
	s, err = hsOnly.Verify(signHS(t, jwt.SigningMethodHS256, []byte("another secret"), c))
	wantReject(t, s, err, "signature")
}

// TestJWTVerify_KeyRotation: with two keys configured, a token signed by
// either verifies, picked by kid; an unknown kid fails.
func TestJWTVerify_KeyRotation(t *testing.T) {
	old, cur, other := testKey(t, 0), testKey(t, 1), testKey(t, 2)
	c := allauthClaims()
	jwks := `{"keys": [` + jwkJSON(old, "old") + `, ` + jwkJSON(cur, "") +
		`, {"kty": "EC", "crv": "P-256", "x": "x", "y": "y"}, ` + jwkJSON(other, "enc") + `]}`
	jwks = strings.Replace(jwks, `"kid":"enc"`, `"kid":"enc","use":"enc"`, 1) // not a signing key: skipped
	pemBoth := append(publicPEM(t, old), publicPEM(t, cur)...)

	for name, cfg := range map[string]introspect.JWTConfig{
		"JWKS":     {PublicKey: []byte(jwks)},
		"two PEMs": {PublicKey: pemBoth},
	} {
		t.Run(name, func(t *testing.T) {
			v := newVerifier(t, cfg)
			for _, tc := range []struct {
				key *rsa.PrivateKey
				kid string
				ok  bool
			}{
				{old, "", true},  // allauth's kid: the thumbprint
				{cur, "", true},  // ditto
				{old, "-", true}, // no kid: every key is tried
				{cur, "-", true},
				{old, "nope", false},
				{other, "", false}, // a key not configured, its own kid
				{other, "-", false},
				{cur, allauth.JWKThumbprint(&old.PublicKey), false}, // the wrong key's kid
			} {
				s, err := v.Verify(signRS(t, jwt.SigningMethodRS256, tc.key, tc.kid, c))
				if tc.ok && err != nil {
					t.Errorf("kid %q: %v", tc.kid, err)
				}
				if !tc.ok && err == nil {
					t.Errorf("kid %q: accepted user %q", tc.kid, s.User.ID)
				}
			}
			if name == "JWKS" {
				if _, err := v.Verify(signRS(t, jwt.SigningMethodRS256, old, "old", c)); err != nil {
					t.Errorf("JWK's own kid: %v", err)
				}
			}
			s, err := v.Verify(signRS(t, jwt.SigningMethodRS256, old, "nope", c))
			wantReject(t, s, err, "unknown key")
		})
	}
}

// TestJWTVerify_ClockSkew pins the edges of exp, iat and nbf with an
// injected clock.
func TestJWTVerify_ClockSkew(t *testing.T) {
	key := testKey(t, 0)
	pub := publicPEM(t, key)
	exp := t0.Add(300 * time.Second)
	c := allauthClaims()
	tok := signRS(t, jwt.SigningMethodRS256, key, "", c)
	for _, tc := range []struct {
		skew time.Duration
		now  time.Time
		ok   bool
	}{
		{0, exp.Add(-time.Second), true},      // default skew 30 s
		{0, exp.Add(29 * time.Second), true},  // within it
		{0, exp.Add(30 * time.Second), false}, // at it
		{0, exp.Add(31 * time.Second), false}, // past it
		{0, t0.Add(-30 * time.Second), true},  // iat 30 s ahead of us
		{0, t0.Add(-31 * time.Second), false}, // iat too far ahead
		{-1, exp.Add(-time.Nanosecond), true}, // no skew
		{-1, exp, false},                      // no skew: exp itself is too late
		{-1, t0.Add(-time.Second), false},     // no skew: iat ahead
		{2 * time.Minute, exp.Add(119 * time.Second), true},
		{2 * time.Minute, exp.Add(2 * time.Minute), false},
	} {
		v := newVerifier(t, introspect.JWTConfig{PublicKey: pub, ClockSkew: tc.skew, Now: fixedClock(tc.now)})
		_, err := v.Verify(tok)
		if (err == nil) != tc.ok {
			t.Errorf("skew %v, now exp%+v: err = %v, want ok=%v", tc.skew, tc.now.Sub(exp), err, tc.ok)
		}
	}
	// The real clock is used by default.
	v, err := allauth.NewJWTVerifier(introspect.JWTConfig{PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	c["iat"], c["exp"] = time.Now().Unix(), time.Now().Unix()+300
	if _, err := v.Verify(signRS(t, jwt.SigningMethodRS256, key, "", c)); err != nil {
		t.Errorf("real clock: %v", err)
	}
}

func TestNewJWTVerifier_Config(t *testing.T) {
	key := testKey(t, 0)
	pub := publicPEM(t, key)
	small, err := rsa.GenerateKey(rand.Reader, 1024) //nolint:gosec // a small key is the point: it must be refused
	if err != nil {
		t.Fatal(err)
	}
	privDER, _ := x509.MarshalPKCS8PrivateKey(key)
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&key.PublicKey)})
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "allauth"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
	}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})
	dir := t.TempDir()
	file := filepath.Join(dir, "public.pem")
	if err := os.WriteFile(file, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	jwkFile := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwkFile, []byte(`{"keys":[`+jwkJSON(key, "")+`]}`), 0o600); err != nil {
		t.Fatal(err)
	}

	good := map[string]introspect.JWTConfig{
		"PEM":              {PublicKey: pub},
		"PKCS1 PEM":        {PublicKey: pkcs1},
		"certificate":      {PublicKey: cert},
		"single JWK":       {PublicKey: []byte(jwkJSON(key, ""))},
		"PEM file":         {PublicKeyFile: file},
		"JWKS file":        {PublicKeyFile: jwkFile},
		"secret":           {Secret: testSecret},
		"RS512 and HS512":  {PublicKey: pub, Secret: testSecret, Algorithms: []string{"RS512", "HS512"}},
		"negative skew":    {Secret: testSecret, ClockSkew: -1},
		"custom max bytes": {Secret: testSecret, MaxTokenBytes: 100},
	}
	tok := signRS(t, jwt.SigningMethodRS256, key, "", allauthClaims())
	for name, cfg := range good {
		cfg.Now = fixedClock(t0)
		v, err := allauth.NewJWTVerifier(cfg)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if cfg.Secret == nil {
			if _, err := v.Verify(tok); err != nil {
				t.Errorf("%s: Verify: %v", name, err)
			}
		}
	}

	bad := map[string]struct {
		cfg  introspect.JWTConfig
		want string
	}{
		"nothing":              {introspect.JWTConfig{}, "needs PublicKey"},
		"blank key":            {introspect.JWTConfig{PublicKey: []byte(" \n")}, "needs PublicKey"},
		"none":                 {introspect.JWTConfig{PublicKey: pub, Algorithms: []string{"none"}}, `"none" is not allowed`},
		"ES256":                {introspect.JWTConfig{PublicKey: pub, Algorithms: []string{"ES256"}}, "not allowed"},
		"lower-case rs256":     {introspect.JWTConfig{PublicKey: pub, Algorithms: []string{"rs256"}}, "not allowed"},
		"HS256 without secret": {introspect.JWTConfig{PublicKey: pub, Algorithms: []string{"HS256"}}, "needs Secret"},
		"RS256 without key":    {introspect.JWTConfig{Secret: testSecret, Algorithms: []string{"RS256"}}, "needs PublicKey"},
		"private key PEM":      {introspect.JWTConfig{PublicKey: privPEM}, "private key"},
		"private JWK":          {introspect.JWTConfig{PublicKey: []byte(`{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB"}`)}, "private key"},
		"1024-bit key":         {introspect.JWTConfig{PublicKey: publicPEM(t, small)}, "1024 bits"},
		"not PEM":              {introspect.JWTConfig{PublicKey: []byte("hello")}, "no PEM block"},
		"not JSON":             {introspect.JWTConfig{PublicKey: []byte("{nope")}, "not a JWK"},
		"JWKS without RSA":     {introspect.JWTConfig{PublicKey: []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)}, "no RSA"},
		"JWK bad n":            {introspect.JWTConfig{PublicKey: []byte(`{"kty":"RSA","n":"!!","e":"AQAB"}`)}, "bad n or e"},
		"missing file":         {introspect.JWTConfig{PublicKeyFile: filepath.Join(dir, "nope.pem")}, "PublicKeyFile"},
	}
	for name, tc := range bad {
		v, err := allauth.NewJWTVerifier(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: NewJWTVerifier = %v, %v; want an error saying %q", name, v, err, tc.want)
		}
	}
}

// TestJWKThumbprint checks the kid computation against RFC 7638's example
// (section 3.1) and against the stand-in server's independent one.
func TestJWKThumbprint(t *testing.T) {
	n, err := base64.RawURLEncoding.DecodeString("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
	if err != nil {
		t.Fatal(err)
	}
	rfc := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537}
	if got, want := allauth.JWKThumbprint(rfc), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Errorf("thumbprint = %q, want RFC 7638's %q", got, want)
	}
	key := testKey(t, 0)
	srv := allauthtest.NewServer(allauthtest.WithJWT(allauthtest.JWTConfig{PrivateKey: key}))
	defer srv.Close()
	if got, want := srv.JWTKeyID(), allauth.JWKThumbprint(&key.PublicKey); got != want {
		t.Errorf("allauthtest kid = %q, introspect's = %q", got, want)
	}
}

// TestJWTVerify_StandIn verifies the stand-in's tokens with the keys it
// publishes (PEM, JWKS, HS256 secret), and checks that allauth's answers for
// them and the local verdict agree.
func TestJWTVerify_StandIn(t *testing.T) {
	for _, alg := range []string{"RS256", "HS256"} {
		t.Run(alg, func(t *testing.T) {
			var opt allauthtest.JWTConfig
			opt.Algorithm = alg
			if alg == "RS256" {
				opt.PrivateKey = testKey(t, 1)
			}
			opt.Claims = func(u allauthtest.User) map[string]any { return map[string]any{"name": u.Username} }
			srv, c := newStandIn(t, allauth.Config{}, allauthtest.WithJWT(opt))
			srv.AddUser(allauthtest.User{Username: "alice", Email: "alice@example.com", Password: "pw"})
			var cfgs []introspect.JWTConfig
			if alg == "RS256" {
				cfgs = append(cfgs, introspect.JWTConfig{PublicKey: srv.JWTPublicKeyPEM()}, introspect.JWTConfig{PublicKey: srv.JWTJWKS()})
			} else {
				cfgs = append(cfgs, introspect.JWTConfig{Secret: srv.JWTSecret()})
			}
			access, refresh := srv.IssueJWT("alice")
			for _, cfg := range cfgs {
				v, err := allauth.NewJWTVerifier(cfg)
				if err != nil {
					t.Fatal(err)
				}
				s, err := v.Verify(access)
				if err != nil {
					t.Fatalf("Verify(stand-in access token): %v", err)
				}
				var claims struct{ Name string }
				if s.User.ID != "1" || s.User.DecodeClaims(&claims) != nil || claims.Name != "alice" {
					t.Errorf("user %+v, claims %s", s.User, s.User.Claims)
				}
				s, err = v.Verify(refresh)
				wantReject(t, s, err, "token_use")
			}
			up, err := c.Session(context.Background(), allauth.Credential{Kind: introspect.Bearer, Token: access})
			if err != nil || up.User.ID != "1" || up.User.Username != "alice" {
				t.Fatalf("allauth on the access token: %v, %v", up, err)
			}
			srv.Logout(access)
			_, err = c.Session(context.Background(), allauth.Credential{Kind: introspect.Bearer, Token: access})
			if !errors.Is(err, introspect.ErrSessionGone) {
				t.Fatalf("allauth after logout: %v, want 410", err)
			}
		})
	}
}

// TestJWTVerify_Crit: RFC 7515 §4.1.11 says a token whose crit header names
// an extension the recipient does not understand must be refused. This
// verifier understands none, so any crit header is refused, also an empty,
// null or malformed one, whatever the signature; a correctly signed token
// without crit, or with a header named only in another case, still passes.
func TestJWTVerify_Crit(t *testing.T) {
	key := testKey(t, 0)
	v := newVerifier(t, introspect.JWTConfig{PublicKey: publicPEM(t, key), Secret: testSecret, Algorithms: []string{"RS256", "HS256"}})
	withHeader := func(alg jwt.SigningMethod, k any, h map[string]any) string {
		t.Helper()
		tok := jwt.NewWithClaims(alg, allauthClaims())
		if rk, ok := k.(*rsa.PrivateKey); ok {
			tok.Header["kid"] = allauth.JWKThumbprint(&rk.PublicKey)
		}
		for name, val := range h {
			tok.Header[name] = val
		}
		s, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for name, crit := range map[string]any{
		"an unknown extension":     []string{"x-unknown"},
		"a registered claim name":  []string{"exp"},
		"b64 (RFC 7797)":           []string{"b64"},
		"empty list":               []string{},
		"null":                     nil,
		"a string, not a list":     "x-unknown",
		"a number":                 1,
		"an object":                map[string]any{"x": 1},
		"a list of non-strings":    []any{1, true},
		"an empty string in list":  []string{""},
		"names a present header":   []string{"kid"},
		"two names, one duplicate": []string{"x", "x"},
	} {
		t.Run(name, func(t *testing.T) {
			for _, tok := range []string{
				withHeader(jwt.SigningMethodRS256, key, map[string]any{"crit": crit, "x-unknown": true}),
				withHeader(jwt.SigningMethodHS256, testSecret, map[string]any{"crit": crit}),
			} {
				s, err := v.Verify(tok)
				wantReject(t, s, err, "crit")
			}
		})
	}
	if _, err := v.Verify(withHeader(jwt.SigningMethodRS256, key, map[string]any{"CRIT": []string{"x"}})); err != nil {
		t.Errorf("a header named CRIT (not crit: names are case-sensitive): %v", err)
	}
	if _, err := v.Verify(withHeader(jwt.SigningMethodRS256, key, nil)); err != nil {
		t.Errorf("no crit: %v", err)
	}
}

// TestJWTVerify_DuplicateClaims: a correctly signed token whose claims name
// sub, exp or token_use twice (encoding/json would keep the last, another
// reader the first), even in another case or escaped, is malformed.
func TestJWTVerify_DuplicateClaims(t *testing.T) {
	key := testKey(t, 0)
	v := newVerifier(t, introspect.JWTConfig{PublicKey: publicPEM(t, key)})
	enc := base64.RawURLEncoding.EncodeToString
	header := enc([]byte(`{"alg":"RS256","kid":"` + allauth.JWKThumbprint(&key.PublicKey) + `","typ":"JWT"}`))
	sign := func(claims string) string {
		t.Helper()
		signing := header + "." + enc([]byte(claims))
		sig, err := jwt.SigningMethodRS256.Sign(signing, key)
		if err != nil {
			t.Fatal(err)
		}
		return signing + "." + enc(sig)
	}
	const rest = `"iat":1795711648,"exp":1795711948,"sid":"s","jti":"j","token_use":"access"`
	if s, err := v.Verify(sign(`{` + rest + `,"sub":"1"}`)); err != nil || s.User.ID != "1" {
		t.Fatalf("the hand-made token itself: %v", err)
	}
	for name, claims := range map[string]string{
		"sub twice":                       `{` + rest + `,"sub":"1","sub":"2"}`,
		"sub twice, once in another case": `{` + rest + `,"sub":"1","SUB":"2"}`,
		"sub twice, once escaped":         `{` + rest + `,"sub":"1","s\u0075b":"2"}`,
		"exp twice":                       `{` + rest + `,"sub":"1","exp":99999999999}`,
		"token_use twice":                 `{` + rest + `,"sub":"1","token_use":"refresh"}`,
	} {
		t.Run(name, func(t *testing.T) {
			s, err := v.Verify(sign(claims))
			wantReject(t, s, err, "malformed")
		})
	}
}
