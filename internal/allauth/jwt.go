package allauth

import (
	"bytes"
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/allauthgo/headless/introspect"
)

// defaultJWTClockSkew is how far apart allauth's clock and ours may be
// before a token's exp, nbf or iat is held against it.
const defaultJWTClockSkew = 30 * time.Second

// minRSABits is the smallest RSA key accepted for verification.
const minRSABits = 2048

// maxNumericDate bounds exp, iat and nbf (in seconds, about 31 million
// years), so that converting them to a time never overflows.
const maxNumericDate = 1e15

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
func NewJWTVerifier(cfg introspect.JWTConfig) (*JWTVerifier, error) {
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
// an error matching [introspect.ErrUnauthenticated]; errors.As finds an [*introspect.AuthError]
// with Status 401, local (IsLocal), as allauth answers a bad Bearer token. The
// error's text says what was wrong, never the token.
func (v *JWTVerifier) Verify(token string) (*introspect.Session, error) {
	token = trimSpace(token)
	if token == "" {
		return nil, ErrNoCredential
	}
	if len(token) > v.maxBytes {
		return nil, errJWTTooLong
	}
	var c accessClaims
	if _, err := v.parser.ParseWithClaims(token, &c, v.key); err != nil {
		return nil, tokenRejection(err)
	}
	return &introspect.Session{
		User:      introspect.User{ID: c.sub, Claims: c.raw},
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

// tokenError is a rejected token: it reads as introspect.ErrUnauthenticated plus why,
// and unwraps to the shared local 401.
type tokenError struct{ reason string }

func (e *tokenError) Error() string {
	return introspect.ErrUnauthenticated.Error() + ": JWT " + e.reason
}
func (e *tokenError) Unwrap() error { return ErrMalformedOther }

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
