package allauth

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/allauthgo/headless/introspect"
)

// The answers for credentials judged without asking allauth: what allauth
// gives such a value. They carry no flows, so sharing them is safe; IsLocal
// tells them (and errors wrapping them) from allauth's own answers.
var (
	ErrNoCredential          = &introspect.AuthError{Status: http.StatusUnauthorized}
	ErrMalformedSessionToken = &introspect.AuthError{Status: http.StatusGone}
	ErrMalformedOther        = &introspect.AuthError{Status: http.StatusUnauthorized}
)

// Malformed is the answer for a malformed credential of kind k: 410 for a
// session token (allauth's answer for an unknown one), 401 otherwise.
func Malformed(k introspect.Kind) error {
	if k == introspect.SessionToken {
		return ErrMalformedSessionToken
	}
	return ErrMalformedOther
}

// IsLocal reports whether err is (or wraps) one of the answers decided
// without asking allauth: a missing or malformed credential, or a JWT the
// verifier refused.
func IsLocal(err error) bool {
	return errors.Is(err, ErrNoCredential) || errors.Is(err, ErrMalformedSessionToken) || errors.Is(err, ErrMalformedOther)
}

// maxRetryAfter caps a Retry-After delay, as RFC 9111 (1.2.2) has
// recipients cap delta-seconds they cannot represent: 2^31-1 seconds, which
// also fits a client's 32-bit integer.
const maxRetryAfter = (1<<31 - 1) * time.Second

// parseRetryAfter reads a Retry-After value: delay seconds or an HTTP date,
// at most maxRetryAfter. Anything else, or a negative delay, is 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		if secs < 0 {
			return 0
		}
		if secs > int(maxRetryAfter/time.Second) {
			return maxRetryAfter // time.Duration(secs) * time.Second would overflow
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), maxRetryAfter)
	}
	return 0
}
