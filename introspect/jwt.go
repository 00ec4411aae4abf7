package introspect

import "time"

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
	// PublicKeyFile is read into PublicKey by headless.New (appended to
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
