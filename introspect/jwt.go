package introspect

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// defaultJWTClockSkew is how far apart allauth's clock and ours may be
// before a token's exp, nbf or iat is held against it.
const defaultJWTClockSkew = 30 * time.Second

// minRSABits is the smallest RSA key accepted for verification.
const minRSABits = 2048

// maxNumericDate bounds exp, iat and nbf (in seconds, about 31 million
// years), so that converting them to a time never overflows.
const maxNumericDate = 1e15

// JWTConfig says how to verify the access tokens of allauth's JWT token
// strategy (HEADLESS_TOKEN_STRATEGY = "...jwt.JWTTokenStrategy") without
// asking allauth. Give the public key (RS256, allauth's default) or the
// shared secret (HS256), or both.
type JWTConfig struct {
	// PublicKey is the public half of allauth's HEADLESS_JWT_PRIVATE_KEY, for
	// RS256: PEM ("PUBLIC KEY", "RSA PUBLIC KEY" or "CERTIFICATE" blocks,
	// several for a rotation), a JWK, or a JWK Set ({"keys": [...]}, whose
	// non-RSA or non-signing keys are skipped). A token's kid header picks
	// the key: it may name a JWK's own "kid" or any key's RFC 7638 thumbprint,
	// which is what allauth puts there. RSA keys under 2048 bits are refused.
	//
	// Make the PEM from allauth's private key with
	// `openssl rsa -in private.pem -pubout -out public.pem`. A private key is
	// refused: services that only verify must not be able to sign.
	PublicKey []byte
	// PublicKeyFile is read into PublicKey by NewJWTVerifier (appended to
	// it when both are set).
	PublicKeyFile string
	// Secret is the HS256 key: allauth's HEADLESS_JWT_PRIVATE_KEY or, when
	// that is unset, Django's SECRET_KEY, as UTF-8 bytes.
	Secret []byte
	// Algorithms are the "alg" values accepted. "none" is never accepted, an
	// RS algorithm needs PublicKey and an HS one needs Secret, and a token's
	// signature is only ever checked with a key of its own family: an HS256
	// token is never checked against the RSA public key (algorithm
	// confusion). Default: RS256 when a public key is given, HS256 when a
	// secret is given.
	Algorithms []string
	// ClockSkew is the tolerance on exp, nbf and iat. 0 means
	// 30 s; a negative value means none.
	ClockSkew time.Duration
	// MaxTokenBytes bounds a token; a longer one is refused without being
	// decoded. Default 4 KiB.
	MaxTokenBytes int
	// Now is the clock. Default time.Now; tests inject one.
	Now func() time.Time
}

// JWTVerifier checks allauth JWT access tokens locally. It is safe for
// concurrent use.
type JWTVerifier struct {
	parser   *jwt.Parser
	byKID    map[string]*rsa.PublicKey
	rsaKeys  []jwt.VerificationKey
	secret   []byte
	maxBytes int
}

// rsaAlgs and hmacAlgs are the algorithms allauth can be configured with
// (it supports RS* and HS*), and so the only ones a config may allow.
var (
	rsaAlgs  = []string{"RS256", "RS384", "RS512"}
	hmacAlgs = []string{"HS256", "HS384", "HS512"}
)

// NewJWTVerifier checks cfg, loads its keys and returns a verifier. It fails
// when no key is given, a key cannot be read or is a private key, or an
// algorithm is unknown, "none", or lacks a key of its family.
func NewJWTVerifier(cfg JWTConfig) (*JWTVerifier, error) {
	keyData := cfg.PublicKey
	if cfg.PublicKeyFile != "" {
		b, err := os.ReadFile(cfg.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("introspect: JWT PublicKeyFile: %w", err)
		}
		keyData = append(append(slices.Clip(keyData), '\n'), b...)
	}
	v := &JWTVerifier{byKID: map[string]*rsa.PublicKey{}, maxBytes: orDefaultInt(cfg.MaxTokenBytes, defaultMaxCredentialBytes)}
	if len(bytes.TrimSpace(keyData)) > 0 {
		keys, err := parsePublicKeys(keyData)
		if err != nil {
			return nil, fmt.Errorf("introspect: JWT PublicKey: %w", err)
		}
		for _, k := range keys {
			v.rsaKeys = append(v.rsaKeys, k.key)
			v.byKID[thumbprint(k.key)] = k.key
			if k.kid != "" {
				v.byKID[k.kid] = k.key
			}
		}
	}
	if len(cfg.Secret) > 0 {
		v.secret = slices.Clone(cfg.Secret)
	}
	if v.rsaKeys == nil && v.secret == nil {
		return nil, errors.New("introspect: JWTConfig needs PublicKey (RS256) or Secret (HS256)")
	}

	algs := cfg.Algorithms
	if len(algs) == 0 {
		if v.rsaKeys != nil {
			algs = append(algs, "RS256")
		}
		if v.secret != nil {
			algs = append(algs, "HS256")
		}
	}
	for _, a := range algs {
		switch {
		case slices.Contains(rsaAlgs, a):
			if v.rsaKeys == nil {
				return nil, fmt.Errorf("introspect: JWT algorithm %s needs PublicKey", a)
			}
		case slices.Contains(hmacAlgs, a):
			if v.secret == nil {
				return nil, fmt.Errorf("introspect: JWT algorithm %s needs Secret", a)
			}
		default:
			return nil, fmt.Errorf("introspect: JWT algorithm %q is not allowed (use RS256, RS384, RS512, HS256, HS384 or HS512)", a)
		}
	}

	skew := cfg.ClockSkew
	if skew == 0 {
		skew = defaultJWTClockSkew
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(slices.Clone(algs)),
		jwt.WithLeeway(max(skew, 0)),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithStrictDecoding(),
	}
	if cfg.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(cfg.Now))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// Verify checks an access token: no crit header, its signature with a
// configured key of an allowed algorithm, exp in the future (within the
// clock skew), iat and nbf not in the future, token_use "access", and
// non-empty string sub, sid and jti. It never asks allauth.
//
// A valid token gives a Session whose User has ID = sub and Claims = the
// token's claims as JSON, and whose ExpiresAt is exp. Any other token gives
// an error matching [ErrUnauthenticated]; errors.As finds an [*AuthError]
// with Status 401 and Local set, as allauth answers a bad Bearer token. The
// error's text says what was wrong, never the token.
func (v *JWTVerifier) Verify(token string) (*Session, error) {
	token = trimSpace(token)
	if token == "" {
		return nil, errNoCredential
	}
	if len(token) > v.maxBytes {
		return nil, errJWTTooLong
	}
	var c accessClaims
	if _, err := v.parser.ParseWithClaims(token, &c, v.key); err != nil {
		return nil, tokenRejection(err)
	}
	return &Session{
		User:      User{ID: c.sub, Claims: c.raw},
		ExpiresAt: c.exp.Time,
	}, nil
}

// key is the jwt.Keyfunc: it hands out only keys of the token's own
// algorithm family, so an HS token never meets the RSA public key. It runs
// before the signature is checked, and refuses a token with a crit header:
// RFC 7515 (4.1.11) has a recipient refuse extensions it does not
// understand, and this verifier (like allauth) understands none. An empty,
// null or malformed crit is refused alike.
func (v *JWTVerifier) key(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, errJWTCrit
	}
	switch t.Method.(type) {
	case *jwt.SigningMethodRSA:
		if len(v.rsaKeys) == 0 {
			return nil, errJWTAlgorithm
		}
		if raw, ok := t.Header["kid"]; ok {
			kid, _ := raw.(string)
			if k := v.byKID[kid]; k != nil {
				return k, nil
			}
			return nil, errJWTUnknownKID
		}
		if len(v.rsaKeys) == 1 {
			return v.rsaKeys[0], nil
		}
		return jwt.VerificationKeySet{Keys: v.rsaKeys}, nil
	case *jwt.SigningMethodHMAC:
		if v.secret == nil {
			return nil, errJWTAlgorithm
		}
		return v.secret, nil
	default:
		return nil, errJWTAlgorithm
	}
}

// tokenError is a rejected token: it reads as ErrUnauthenticated plus why,
// and unwraps to the shared local 401.
type tokenError struct{ reason string }

func (e *tokenError) Error() string { return ErrUnauthenticated.Error() + ": JWT " + e.reason }
func (e *tokenError) Unwrap() error { return errMalformedOther }

// The rejections, made once: bad tokens arrive at an attacker's rate.
var (
	errJWTMalformed  = &tokenError{"malformed"}
	errJWTTooLong    = &tokenError{"too long"}
	errJWTAlgorithm  = &tokenError{"algorithm not allowed"}
	errJWTUnknownKID = &tokenError{"signed by an unknown key (kid)"}
	errJWTCrit       = &tokenError{"with a crit header (no extension is understood)"}
	errJWTSignature  = &tokenError{"signature invalid"}
	errJWTExpired    = &tokenError{"expired"}
	errJWTNotYet     = &tokenError{"not valid yet (nbf or iat in the future)"}
	errJWTNoExp      = &tokenError{"without exp"}
	errJWTClaims     = &tokenError{"claims invalid"}
	errJWTTokenUse   = &tokenError{"is not an access token (token_use)"}
	errJWTSub        = &tokenError{"without a string sub"}
	errJWTSID        = &tokenError{"without a string sid"}
	errJWTJTI        = &tokenError{"without a string jti"}
)

// tokenRejection turns the parser's error into one of the rejections.
func tokenRejection(err error) error {
	var te *tokenError
	switch {
	case errors.As(err, &te):
		return te
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errJWTMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if errors.Is(err, rsa.ErrVerification) || errors.Is(err, jwt.ErrSignatureInvalid) {
			return errJWTSignature
		}
		return errJWTAlgorithm // the parser's "signing method X is invalid"
	case errors.Is(err, jwt.ErrTokenExpired):
		return errJWTExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return errJWTNotYet
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return errJWTNoExp
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return errJWTAlgorithm // an alg the library does not know, or none
	default:
		return errJWTClaims
	}
}

// accessClaims reads allauth's claims by their exact names (encoding/json
// alone would also match "SUB" to sub, and keep the last of two) and keeps
// the JSON for User.Claims.
type accessClaims struct {
	raw                  json.RawMessage
	exp, iat, nbf        *jwt.NumericDate
	sub, sid, jti, usage string
	subOK, sidOK, jtiOK  bool
}

// claimNames are the claims read, in the order of accessClaims' fields.
var claimNames = []string{"exp", "iat", "nbf", "sub", "sid", "jti", "token_use"}

// UnmarshalJSON is called by the parser before the signature is checked:
// whatever it finds wrong makes the token malformed, and everything it
// reads is judged again, after the signature, by Validate. A claim it reads
// named twice (even in another case) makes the token malformed.
func (c *accessClaims) UnmarshalJSON(b []byte) error {
	var m [7]json.RawMessage
	if err := objectMembers(b, claimNames, m[:]); err != nil {
		return fmt.Errorf("claims: %w", err)
	}
	c.raw = slices.Clone(b)
	for i, dst := range [...]**jwt.NumericDate{&c.exp, &c.iat, &c.nbf} {
		if raw := m[i]; raw != nil {
			if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
				// encoding/json would take "123" (a string) as a number.
				return fmt.Errorf("claim %s is not a number", claimNames[i])
			}
			f, err := strconv.ParseFloat(string(raw), 64)
			if err != nil || math.Abs(f) > maxNumericDate {
				return fmt.Errorf("claim %s is not a time", claimNames[i])
			}
			sec, frac := math.Modf(f)
			*dst = jwt.NewNumericDate(time.Unix(int64(sec), int64(frac*1e9)))
		}
	}
	c.sub, c.subOK = stringClaim(m[3])
	c.sid, c.sidOK = stringClaim(m[4])
	c.jti, c.jtiOK = stringClaim(m[5])
	c.usage, _ = stringClaim(m[6])
	return nil
}

// stringClaim returns a claim that is a non-empty JSON string.
func stringClaim(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	if len(raw) >= 2 && raw[len(raw)-1] == '"' && plainString(raw[1:len(raw)-1]) {
		// The common case, without a second decode.
		return string(raw[1 : len(raw)-1]), len(raw) > 2
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || s == "" {
		return "", false
	}
	return s, true
}

// plainString reports whether a JSON string's content needs no unescaping.
func plainString(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == '\\' || c == '"' {
			return false
		}
	}
	return utf8.Valid(b)
}

// Validate is run by the parser after the signature and time checks.
func (c *accessClaims) Validate() error {
	switch {
	case c.usage != "access":
		return errJWTTokenUse
	case !c.subOK:
		return errJWTSub
	case !c.sidOK:
		return errJWTSID
	case !c.jtiOK:
		return errJWTJTI
	}
	return nil
}

// The jwt.Claims interface; iss and aud are not used by allauth.

func (c *accessClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.exp, nil }
func (c *accessClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return c.iat, nil }
func (c *accessClaims) GetNotBefore() (*jwt.NumericDate, error)      { return c.nbf, nil }
func (c *accessClaims) GetIssuer() (string, error)                   { return "", nil }
func (c *accessClaims) GetSubject() (string, error)                  { return c.sub, nil }
func (c *accessClaims) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }

// publicKey is a loaded RSA public key and the kid its JWK gave, if any.
type publicKey struct {
	key *rsa.PublicKey
	kid string
}

// parsePublicKeys reads PEM blocks, a JWK or a JWK Set.
func parsePublicKeys(data []byte) ([]publicKey, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		return parseJWKs(trimmed)
	}
	var out []publicKey
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		k, err := pemPublicKey(block)
		if err != nil {
			return nil, err
		}
		if err := checkRSA(k); err != nil {
			return nil, err
		}
		out = append(out, publicKey{key: k})
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM block or JWK found")
	}
	return out, nil
}

func pemPublicKey(block *pem.Block) (*rsa.PublicKey, error) {
	var (
		k   any
		err error
	)
	switch block.Type {
	case "PUBLIC KEY":
		k, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		k, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			k = cert.PublicKey
		}
	default:
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return nil, fmt.Errorf("%q is a private key; give the public key (openssl rsa -in private.pem -pubout)", block.Type)
		}
		return nil, fmt.Errorf("PEM block %q is not a public key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("PEM block %q: %w", block.Type, err)
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("PEM block %q holds a %T, not an RSA key", block.Type, k)
	}
	return rk, nil
}

// jwk is the part of a JSON Web Key (RFC 7517) that matters here.
type jwk struct {
	Kty string `json:"kty"`
	Use string `json:"use"`
	Kid string `json:"kid"`
	N   string `json:"n"`
	E   string `json:"e"`
	D   string `json:"d"`
}

func parseJWKs(data []byte) ([]publicKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("not a JWK or JWK Set: %w", err)
	}
	raws := set.Keys
	if raws == nil {
		raws = []json.RawMessage{data} // a single JWK
	}
	var out []publicKey
	for i, raw := range raws {
		var k jwk
		if err := json.Unmarshal(raw, &k); err != nil {
			return nil, fmt.Errorf("JWK %d: %w", i, err)
		}
		if k.Kty != "RSA" || (k.Use != "" && k.Use != "sig") {
			continue
		}
		if k.D != "" {
			return nil, fmt.Errorf("JWK %d is a private key; give only its public members (kty, n, e)", i)
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err := errors.Join(err1, err2); err != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return nil, fmt.Errorf("JWK %d: bad n or e", i)
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if err := checkRSA(pub); err != nil {
			return nil, fmt.Errorf("JWK %d: %w", i, err)
		}
		out = append(out, publicKey{key: pub, kid: k.Kid})
	}
	if len(out) == 0 {
		return nil, errors.New("JWK Set holds no RSA signing key")
	}
	return out, nil
}

func checkRSA(k *rsa.PublicKey) error {
	if k.N.BitLen() < minRSABits {
		return fmt.Errorf("RSA key of %d bits; at least %d are needed", k.N.BitLen(), minRSABits)
	}
	if k.E < 3 || k.E%2 == 0 {
		return fmt.Errorf("RSA public exponent %d is not valid", k.E)
	}
	return nil
}

// thumbprint is the RFC 7638 JWK thumbprint of k, which allauth uses as kid:
// base64url(SHA-256({"e":...,"kty":"RSA","n":...})).
func thumbprint(k *rsa.PublicKey) string {
	e := big.NewInt(int64(k.E)).Bytes()
	canon := `{"e":"` + base64.RawURLEncoding.EncodeToString(e) +
		`","kty":"RSA","n":"` + base64.RawURLEncoding.EncodeToString(k.N.Bytes()) + `"}`
	sum := sha256.Sum256([]byte(canon))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
