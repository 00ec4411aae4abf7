package allauth

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/allauthgo/headless/internal/jsonobj"
)

// accessClaims reads allauth's claims by their exact names (encoding/json
// alone would also match "SUB" to sub, and keep the last of two) and keeps
// the JSON for introspect.User.Claims.
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
	if err := jsonobj.ObjectMembers(b, claimNames, m[:]); err != nil {
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
	if len(raw) >= 2 && raw[len(raw)-1] == '"' && jsonobj.PlainString(raw[1:len(raw)-1]) {
		// The common case, without a second decode.
		return string(raw[1 : len(raw)-1]), len(raw) > 2
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || s == "" {
		return "", false
	}
	return s, true
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
