package allauth

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
	"math/big"
	"strings"
)

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
