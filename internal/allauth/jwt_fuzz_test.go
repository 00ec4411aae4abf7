package allauth_test

import (
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/allauth"

	"github.com/golang-jwt/jwt/v5"

	"github.com/allauthgo/headless/introspect"
)

// FuzzJWTVerify feeds arbitrary strings to an RS256+HS256 verifier. It must
// never panic, and whatever it accepts must carry a signature that checks
// out, by the standard library alone, with the configured key of the
// header's algorithm, and claims that obey the rules.
func FuzzJWTVerify(f *testing.F) {
	key := testKey(f, 0)
	pub := publicPEM(f, key)
	v := newVerifier(f, introspect.JWTConfig{PublicKey: pub, Secret: testSecret, Algorithms: []string{"RS256", "HS256"}})
	c := allauthClaims()
	f.Add(signRS(f, jwt.SigningMethodRS256, key, "", c))
	f.Add(signRS(f, jwt.SigningMethodRS256, key, "-", c))
	f.Add(signHS(f, jwt.SigningMethodHS256, testSecret, c))
	f.Add(signHS(f, jwt.SigningMethodHS256, pub, c))
	f.Add(signRS(f, jwt.SigningMethodRS384, key, "", c))
	c["token_use"] = "refresh"
	f.Add(signHS(f, jwt.SigningMethodHS256, testSecret, c))
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, tok string) {
		s, err := v.Verify(tok)
		if err != nil {
			if !strings.Contains(err.Error(), "not authenticated") {
				t.Fatalf("error %q is not a rejection", err)
			}
			if strings.Contains(err.Error(), tok) && len(tok) > 8 {
				t.Fatalf("error %q holds the token", err)
			}
			return
		}
		parts := strings.Split(strings.Trim(tok, " \t"), ".")
		if len(parts) != 3 {
			t.Fatalf("accepted a token of %d segments", len(parts))
		}
		hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
		sig, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil {
			t.Fatalf("accepted an undecodable signature")
		}
		var h struct{ Alg string }
		_ = json.Unmarshal(hb, &h)
		input := parts[0] + "." + parts[1]
		switch h.Alg {
		case "RS256":
			sum := sha256.Sum256([]byte(input))
			if rsa.VerifyPKCS1v15(&key.PublicKey, crypto.SHA256, sum[:], sig) != nil {
				t.Fatalf("accepted an RS256 token the key did not sign")
			}
		case "HS256":
			mac := hmac.New(sha256.New, testSecret)
			mac.Write([]byte(input))
			if !hmac.Equal(sig, mac.Sum(nil)) {
				t.Fatalf("accepted an HS256 token the secret did not sign")
			}
		default:
			t.Fatalf("accepted alg %q", h.Alg)
		}
		checkAccepted(t, s)
	})
}

// FuzzJWTClaims signs arbitrary claims JSON with the right key: whatever the
// verifier accepts must be an unexpired access token with string sub, sid
// and jti, and User.ID must be sub.
func FuzzJWTClaims(f *testing.F) {
	v := newVerifier(f, introspect.JWTConfig{Secret: testSecret})
	for _, s := range []string{
		`{"iat":1795711648,"exp":1795711948,"sid":"s","jti":"j","token_use":"access","sub":"1"}`,
		`{"exp":1795711948,"sid":"s","jti":"j","token_use":"access","sub":"1","SUB":"2"}`,
		`{"exp":"1795711948","sid":"s","jti":"j","token_use":"access","sub":"1"}`,
		`{"exp":1e400,"sid":"s","jti":"j","token_use":"access","sub":"1"}`,
		`{"exp":1795711948,"sid":"s","jti":"j","token_use":"access","sub":"\u0000"}`,
		`{"exp":1795711948,"sid":"s","jti":"j","token_use":"access","sub":1}`,
		`{"exp":1795711948,"sid":"s","jti":"j","token_use":"access","sub":"1","sub":"2"}`,
		`[]`, `null`, `{}`, `{"exp":-1}`,
	} {
		f.Add([]byte(s))
	}
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	f.Fuzz(func(t *testing.T, claims []byte) {
		input := header + "." + base64.RawURLEncoding.EncodeToString(claims)
		mac := hmac.New(sha256.New, testSecret)
		mac.Write([]byte(input))
		s, err := v.Verify(input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)))
		if err != nil {
			return
		}
		checkAccepted(t, s)
	})
}

// checkAccepted holds an accepted session to the claim rules, read back with
// exact key matching from its Claims.
func checkAccepted(t *testing.T, s *introspect.Session) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(s.User.Claims, &m); err != nil {
		t.Fatalf("accepted claims that are not a JSON object: %v", err)
	}
	if m["token_use"] != "access" {
		t.Fatalf("accepted token_use %v", m["token_use"])
	}
	for _, k := range []string{"sub", "sid", "jti"} {
		if v, ok := m[k].(string); !ok || v == "" {
			t.Fatalf("accepted %s = %#v", k, m[k])
		}
	}
	if s.User.ID != m["sub"] {
		t.Fatalf("ID %q is not sub %q", s.User.ID, m["sub"])
	}
	exp, ok := m["exp"].(float64)
	if !ok || time.Unix(int64(exp), 0).Add(time.Minute).Before(t0) {
		t.Fatalf("accepted exp %v at %v", m["exp"], t0.Unix())
	}
}

// BenchmarkJWTVerify is what checking an allauth access token locally costs
// per request; compare allauth's own check of a Bearer token, about 128 ms.
//
//	go test -run '^$' -bench JWTVerify -benchmem ./introspect/
func BenchmarkJWTVerify(b *testing.B) {
	key := testKey(b, 0)
	c := allauthClaims()
	c["iat"], c["exp"] = time.Now().Unix(), time.Now().Add(time.Hour).Unix()
	for _, bc := range []struct {
		name string
		cfg  introspect.JWTConfig
		tok  string
	}{
		{"RS256", introspect.JWTConfig{PublicKey: publicPEM(b, key)}, signRS(b, jwt.SigningMethodRS256, key, "", c)},
		{"HS256", introspect.JWTConfig{Secret: testSecret}, signHS(b, jwt.SigningMethodHS256, testSecret, c)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			v, err := allauth.NewJWTVerifier(bc.cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(bc.tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
