package allauthtest

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// Defaults of allauth's JWT token strategy.
const (
	DefaultAccessTokenTTL  = 300 * time.Second   // HEADLESS_JWT_ACCESS_TOKEN_EXPIRES_IN
	DefaultRefreshTokenTTL = 86400 * time.Second // HEADLESS_JWT_REFRESH_TOKEN_EXPIRES_IN
)

// JWTConfig turns on allauth's JWT token strategy (see WithJWT). The zero
// value signs RS256 with a fresh 2048-bit key, as allauth's default
// HEADLESS_JWT_ALGORITHM does.
type JWTConfig struct {
	// Algorithm is "RS256" (default) or "HS256".
	Algorithm string
	// PrivateKey signs RS256 tokens. nil generates a 2048-bit key when the
	// server is made (tens of milliseconds; share one key between the servers
	// of a test suite to save that).
	PrivateKey *rsa.PrivateKey
	// Secret signs HS256 tokens. nil generates 32 random bytes.
	Secret []byte
	// AccessTokenTTL is an access token's life. Default 300 s.
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is a refresh token's life. Default 86,400 s.
	RefreshTokenTTL time.Duration
	// Claims, if set, returns extra claims for a user's access tokens, as a
	// project's JWTTokenStrategy.get_claims does. The reserved claims (iat,
	// exp, sid, jti, token_use, sub) always win.
	Claims func(User) map[string]any
	// Now is the clock for iat, exp and their checks. Default time.Now.
	Now func() time.Time
}

// jwtState is a Server's JWT strategy. Only refresh changes after creation,
// under Server.mu.
type jwtState struct {
	alg        string
	key        *rsa.PrivateKey
	kid        string
	secret     []byte
	sidCipher  cipher.Block // encrypts session keys into sid, as allauth does
	accessTTL  time.Duration
	refreshTTL time.Duration
	claims     func(User) map[string]any
	now        func() time.Time
	refresh    map[string]string // valid refresh token jti → session key
}

// WithJWT turns on allauth's JWT token strategy: app logins also answer
// meta.access_token and meta.refresh_token, GET and DELETE
// {mount}/app/v1/auth/session accept Authorization: Bearer <access token>
// (X-Session-Token wins when both are sent), and POST
// {mount}/app/v1/tokens/refresh trades a refresh token for a new pair. It
// panics on an algorithm other than RS256 or HS256.
func WithJWT(cfg JWTConfig) Option {
	return func(s *Server) {
		j := &jwtState{
			alg:        cfg.Algorithm,
			key:        cfg.PrivateKey,
			secret:     bytes.Clone(cfg.Secret),
			accessTTL:  cfg.AccessTokenTTL,
			refreshTTL: cfg.RefreshTokenTTL,
			claims:     cfg.Claims,
			now:        cfg.Now,
			refresh:    make(map[string]string),
		}
		if j.alg == "" {
			j.alg = "RS256"
		}
		switch j.alg {
		case "RS256":
			if j.key == nil {
				k, err := rsa.GenerateKey(rand.Reader, 2048)
				if err != nil {
					panic("allauthtest: generating the JWT key: " + err.Error())
				}
				j.key = k
			}
			j.kid = thumbprint(&j.key.PublicKey)
		case "HS256":
			if len(j.secret) == 0 {
				j.secret = make([]byte, 32)
				_, _ = rand.Read(j.secret)
			}
		default:
			panic("allauthtest: JWT algorithm " + j.alg + " is not supported (RS256 or HS256)")
		}
		if j.accessTTL <= 0 {
			j.accessTTL = DefaultAccessTokenTTL
		}
		if j.refreshTTL <= 0 {
			j.refreshTTL = DefaultRefreshTokenTTL
		}
		if j.now == nil {
			j.now = time.Now
		}
		djangoSecret := make([]byte, 32) // stands for Django's SECRET_KEY
		_, _ = rand.Read(djangoSecret)
		sum := sha256.Sum256(djangoSecret)
		j.sidCipher, _ = aes.NewCipher(sum[:]) // a 32-byte key never fails
		s.jwt = j
	}
}

func (s *Server) mustJWT(what string) *jwtState {
	if s.jwt == nil {
		panic("allauthtest: " + what + " needs a Server made WithJWT")
	}
	return s.jwt
}

// IssueJWT logs the user in as IssueToken does and returns the access and
// refresh tokens allauth's JWT strategy hands out for that session. It
// returns "", "" for an unknown, inactive or pending user (allauth only
// issues tokens to a fully authenticated one). It panics without WithJWT.
func (s *Server) IssueJWT(username string) (access, refresh string) {
	j := s.mustJWT("IssueJWT")
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.findLocked(username)
	if rec == nil || rec.u.Inactive || rec.u.PendingEmailVerification {
		return "", ""
	}
	key := s.issueLocked(rec, false)
	return s.tokenPairLocked(j, rec.u, key)
}

// SignJWT signs claims as they are, with the server's key, algorithm and
// header ({"alg", "kid", "typ"}), for tests of tokens allauth would not
// issue: expired, refresh, missing claims. An access token needs a sid from
// a token IssueJWT made to name a session. It panics without WithJWT.
func (s *Server) SignJWT(claims map[string]any) string {
	return s.mustJWT("SignJWT").sign(sortedObject(claims))
}

// JWTPublicKeyPEM returns the RS256 public key as a PEM "PUBLIC KEY" block,
// or nil for HS256. It panics without WithJWT.
func (s *Server) JWTPublicKeyPEM() []byte {
	j := s.mustJWT("JWTPublicKeyPEM")
	if j.key == nil {
		return nil
	}
	der, err := x509.MarshalPKIXPublicKey(&j.key.PublicKey)
	if err != nil {
		panic("allauthtest: " + err.Error())
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// JWTJWKS returns the RS256 public key as a JWK Set with one key whose kid
// is the key's RFC 7638 thumbprint, or nil for HS256. (allauth serves no
// JWKS endpoint; this is what a project would publish by hand.) It panics
// without WithJWT.
func (s *Server) JWTJWKS() []byte {
	j := s.mustJWT("JWTJWKS")
	if j.key == nil {
		return nil
	}
	k := jwkObject(&j.key.PublicKey)
	k = append(object{{"kid", j.kid}, {"use", "sig"}, {"alg", "RS256"}}, k...)
	return compactJSON(object{{"keys", []object{k}}})
}

// JWTKeyID returns the kid put in RS256 token headers ("" for HS256). It
// panics without WithJWT.
func (s *Server) JWTKeyID() string { return s.mustJWT("JWTKeyID").kid }

// JWTSecret returns a copy of the HS256 secret, or nil for RS256. It panics
// without WithJWT.
func (s *Server) JWTSecret() []byte { return bytes.Clone(s.mustJWT("JWTSecret").secret) }

// tokenPairLocked makes an access and a refresh token for the session key,
// and records the refresh token as the session's valid one.
func (s *Server) tokenPairLocked(j *jwtState, u User, key string) (access, refresh string) {
	sub := fmt.Sprint(u.ID)
	var extra map[string]any
	if j.claims != nil {
		extra = j.claims(u.clone())
	}
	access, _ = j.token("access", sub, key, extra, j.accessTTL)
	refresh, jti := j.token("refresh", sub, key, nil, j.refreshTTL)
	j.refresh[jti] = key
	return access, refresh
}

// token signs a token of the given use; claims are ordered as PyJWT writes
// allauth's payload: the project's claims first, then the reserved ones.
func (j *jwtState) token(use, sub, sessionKey string, extra map[string]any, ttl time.Duration) (tok, jti string) {
	now := j.now().Unix()
	jti = uuid4()
	claims := sortedObject(extra)
	for _, f := range []field{
		{"iat", now},
		{"exp", now + int64(ttl/time.Second)},
		{"sid", j.sid(sessionKey)},
		{"jti", jti},
		{"token_use", use},
		{"sub", sub},
	} {
		claims = setField(claims, f)
	}
	return j.sign(claims), jti
}

// setField sets f in o like a Python dict assignment: in place if the key
// is there, else at the end.
func setField(o object, f field) object {
	for i := range o {
		if o[i].k == f.k {
			o[i].v = f.v
			return o
		}
	}
	return append(o, f)
}

// sign writes header.claims.signature; the header's keys are sorted, as
// PyJWT writes them.
func (j *jwtState) sign(claims object) string {
	header := object{{"alg", j.alg}}
	if j.kid != "" {
		header = append(header, field{"kid", j.kid})
	}
	header = append(header, field{"typ", "JWT"})
	input := b64(compactJSON(header)) + "." + b64(compactJSON(claims))
	return input + "." + b64(j.signature(input))
}

func (j *jwtState) signature(input string) []byte {
	if j.key != nil {
		sum := sha256.Sum256([]byte(input))
		sig, err := rsa.SignPKCS1v15(nil, j.key, crypto.SHA256, sum[:])
		if err != nil {
			panic("allauthtest: signing: " + err.Error())
		}
		return sig
	}
	mac := hmac.New(sha256.New, j.secret)
	mac.Write([]byte(input))
	return mac.Sum(nil)
}

// verify checks a token as allauth's decode_token does (PyJWT with the
// configured algorithm and key, exp checked if present, no leeway), then
// token_use and string jti, sub and sid. It returns the claims.
func (j *jwtState) verify(tok, use string) (map[string]any, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, false
	}
	var header struct {
		Alg string `json:"alg"`
	}
	hb, err1 := unb64(parts[0])
	sig, err2 := unb64(parts[2])
	if err1 != nil || err2 != nil || json.Unmarshal(hb, &header) != nil || header.Alg != j.alg {
		return nil, false
	}
	input := parts[0] + "." + parts[1]
	if j.key != nil {
		sum := sha256.Sum256([]byte(input))
		if rsa.VerifyPKCS1v15(&j.key.PublicKey, crypto.SHA256, sum[:], sig) != nil {
			return nil, false
		}
	} else if !hmac.Equal(sig, j.signature(input)) {
		return nil, false
	}
	cb, err := unb64(parts[1])
	if err != nil {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(cb))
	dec.UseNumber()
	var claims map[string]any
	if dec.Decode(&claims) != nil || claims == nil {
		return nil, false
	}
	now := float64(j.now().Unix())
	if exp, ok := claims["exp"]; ok {
		n, isNum := exp.(json.Number)
		f, err := n.Float64()
		if !isNum || err != nil || f <= now {
			return nil, false
		}
	}
	if nbf, ok := claims["nbf"]; ok {
		n, isNum := nbf.(json.Number)
		f, err := n.Float64()
		if !isNum || err != nil || f > now {
			return nil, false
		}
	}
	if claims["token_use"] != use {
		return nil, false
	}
	for _, k := range []string{"jti", "sub", "sid"} {
		if _, ok := claims[k].(string); !ok {
			return nil, false
		}
	}
	return claims, true
}

// bearerSession is the hook for Authorization: Bearer under the JWT
// strategy: the session key an access token's sid names, if the token is a
// valid access token whose sid decrypts (allauth treats anything else as no
// token at all: 401). A key naming no session then answers 410.
func (s *Server) bearerSession(tok string) (string, bool) {
	if s.jwt == nil {
		return "", false
	}
	claims, ok := s.jwt.verify(tok, "access")
	if !ok {
		return "", false
	}
	sid, _ := claims["sid"].(string)
	return s.jwt.sessionKey(sid)
}

// sid encrypts a session key as allauth's session_key_to_sid does:
// base64(iv + AES-CTR(key)), so a leaked token does not reveal the key.
func (j *jwtState) sid(sessionKey string) string {
	iv := make([]byte, aes.BlockSize)
	_, _ = rand.Read(iv)
	out := make([]byte, len(iv)+len(sessionKey))
	copy(out, iv)
	cipher.NewCTR(j.sidCipher, iv).XORKeyStream(out[len(iv):], []byte(sessionKey))
	return base64.StdEncoding.EncodeToString(out)
}

// sessionKey is allauth's session_key_from_sid.
func (j *jwtState) sessionKey(sid string) (string, bool) {
	raw, err := base64.StdEncoding.DecodeString(sid)
	if err != nil || len(raw) <= aes.BlockSize {
		return "", false
	}
	msg := make([]byte, len(raw)-aes.BlockSize)
	cipher.NewCTR(j.sidCipher, raw[:aes.BlockSize]).XORKeyStream(msg, raw[aes.BlockSize:])
	if !utf8.Valid(msg) {
		return "", false
	}
	return string(msg), true
}

// jwtSessionKey returns the session key a valid access or refresh token
// names, for Logout.
func (s *Server) jwtSessionKey(tok string) (string, bool) {
	if s.jwt == nil || strings.Count(tok, ".") != 2 {
		return "", false
	}
	for _, use := range []string{"access", "refresh"} {
		if claims, ok := s.jwt.verify(tok, use); ok {
			sid, _ := claims["sid"].(string)
			return s.jwt.sessionKey(sid)
		}
	}
	return "", false
}

// loginTokensLocked returns the meta fields of an app login that
// authenticated the session key: none, or access_token and refresh_token
// under the JWT strategy.
func (s *Server) loginTokensLocked(client string, rec *userRec, key string) []field {
	if s.jwt == nil || client != clientApp {
		return nil
	}
	access, refresh := s.tokenPairLocked(s.jwt, rec.u, key)
	return []field{{"access_token", access}, {"refresh_token", refresh}}
}

// refreshTokens answers POST {mount}/app/v1/tokens/refresh: a valid refresh
// token of a live session gets a new access token and a new refresh token
// (the old one is rotated out); anything else is 400 {"status": 400}.
func (s *Server) refreshTokens(w http.ResponseWriter, r *http.Request) {
	in, ok := readLoginInput(w, r)
	if !ok {
		badRequest(w, r)
		return
	}
	tok := stringField(in, "refresh_token")
	if tok == "" {
		s.writeJSON(w, r, http.StatusBadRequest, errorsBody(requiredErr("refresh_token")))
		return
	}
	j := s.jwt
	claims, valid := j.verify(tok, "refresh")
	var key string
	if valid {
		sid, _ := claims["sid"].(string)
		key, valid = j.sessionKey(sid)
	}
	jti, _ := claims["jti"].(string)
	s.mu.Lock()
	if valid && j.refresh[jti] == key {
		if v, _, _ := s.lookupLocked(key); v == vAuthenticated {
			rec := s.sessions[key].user
			if fmt.Sprint(rec.u.ID) == claims["sub"] {
				delete(j.refresh, jti)
				access, refresh := s.tokenPairLocked(j, rec.u, key)
				s.mu.Unlock()
				s.writeJSON(w, r, http.StatusOK, pyJSON(object{
					{"status", http.StatusOK},
					{"data", object{{"access_token", access}, {"refresh_token", refresh}}},
				}))
				return
			}
		}
	}
	s.mu.Unlock()
	s.writeJSON(w, r, http.StatusBadRequest, pyJSON(object{{"status", http.StatusBadRequest}}))
}

// compactJSON is pyJSON with PyJWT's separators (",", ":").
func compactJSON(v any) []byte {
	var b bytes.Buffer
	_ = json.Compact(&b, pyJSON(v)) // pyJSON always writes valid JSON
	return b.Bytes()
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func unb64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// uuid4 is Python's str(uuid.uuid4()).
func uuid4() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	h := fmt.Sprintf("%x", u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// jwkObject is the RFC 7638 members of an RSA public key, in their order.
func jwkObject(k *rsa.PublicKey) object {
	return object{
		{"e", b64(big.NewInt(int64(k.E)).Bytes())},
		{"kty", "RSA"},
		{"n", b64(k.N.Bytes())},
	}
}

// thumbprint is the RFC 7638 thumbprint allauth uses as kid.
func thumbprint(k *rsa.PublicKey) string {
	sum := sha256.Sum256(compactJSON(jwkObject(k)))
	return b64(sum[:])
}
