package introspect

import (
	"errors"
	"net/http"
	"strconv"
	"time"
)

var (
	// ErrUnauthenticated means allauth answered 401: no credential, an
	// inactive or deleted user, or a login flow still pending. The token may
	// become valid again (a user can be reactivated, a flow completed), so
	// apps keep it. errors.As with an [*AuthError] gives the flows.
	ErrUnauthenticated = errors.New("introspect: not authenticated")

	// ErrSessionGone means allauth answered 410: the session token is unknown,
	// logged out or expired. allauth's spec tells apps to drop such a token.
	ErrSessionGone = errors.New("introspect: session gone")
)

// Flow is one of the authentication flows allauth lists on a 401 or 410, such
// as {"id": "verify_email", "is_pending": true}.
type Flow struct {
	ID        string `json:"id"`
	IsPending bool   `json:"is_pending,omitempty"`
}

// AuthError is allauth's own "no" (401 or 410). It matches
// [ErrUnauthenticated] or [ErrSessionGone] with errors.Is.
type AuthError struct {
	// Status is 401 or 410.
	Status int
	// Flows are the flows allauth listed, if it was asked.
	Flows []Flow
	// Local is true when the answer was decided without asking allauth: the
	// credential was missing or malformed, and Status is what allauth gives
	// such a value.
	Local bool
}

func (e *AuthError) Error() string {
	if e.Status == http.StatusGone {
		return ErrSessionGone.Error()
	}
	return ErrUnauthenticated.Error()
}

// Is makes errors.Is(err, ErrUnauthenticated) and errors.Is(err,
// ErrSessionGone) work.
func (e *AuthError) Is(target error) bool {
	switch target {
	case ErrSessionGone:
		return e.Status == http.StatusGone
	case ErrUnauthenticated:
		return e.Status != http.StatusGone
	}
	return false
}

// Pending returns the flow allauth marks as pending, if any: a session that
// exists but must still, for example, verify its e-mail.
func (e *AuthError) Pending() (Flow, bool) {
	for _, f := range e.Flows {
		if f.IsPending {
			return f, true
		}
	}
	return Flow{}, false
}

// Shared answers for credentials judged without a request; they carry no
// flows, so sharing them is safe.
var (
	errNoCredential          = &AuthError{Status: http.StatusUnauthorized, Local: true}
	errMalformedSessionToken = &AuthError{Status: http.StatusGone, Local: true}
	errMalformedOther        = &AuthError{Status: http.StatusUnauthorized, Local: true}
)

func malformed(k Kind) error {
	if k == SessionToken {
		return errMalformedSessionToken
	}
	return errMalformedOther
}

// UpstreamError is every failure that is not allauth's own 401 or 410:
// allauth could not be reached, did not answer in time, was overloaded, or
// answered something that is not its session JSON. It says nothing about the
// credential, so callers must not treat it as a rejection (the middleware
// answers 503, never 401 or 410).
type UpstreamError struct {
	// Status is the HTTP status allauth (or a proxy in front of it) answered,
	// or 0 when no answer arrived.
	Status int
	// RetryAfter is the delay from a Retry-After header, as sent (at most
	// 2^31-1 s), or 0 if none. It is not bounded further: fiberauth clamps
	// what it tells its clients to 1..300 s; other callers should bound it
	// too before they pass it on or sleep on it.
	RetryAfter time.Duration
	// Reason says briefly what was wrong, e.g. "body is not allauth JSON".
	Reason string
	// URL is the URL that was asked, when allauth answered a status it
	// should not (a 404 says BaseURL or Mount is wrong); "" otherwise. It
	// never holds a credential: those travel in headers.
	URL string
	// Err is the underlying transport or decoding error, if any.
	Err error
}

func (e *UpstreamError) Error() string {
	msg := "introspect: allauth unavailable"
	switch {
	case e.Status != 0 && e.URL != "":
		msg += " (status " + strconv.Itoa(e.Status) + " from " + e.URL + ")"
	case e.Status != 0:
		msg += " (status " + strconv.Itoa(e.Status) + ")"
	}
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *UpstreamError) Unwrap() error { return e.Err }

// Timeout reports whether the failure was a timeout, of the client or of the
// caller's context.
func (e *UpstreamError) Timeout() bool {
	var t interface{ Timeout() bool }
	return errors.As(e.Err, &t) && t.Timeout()
}

func upstreamf(status int, reason string) *UpstreamError {
	return &UpstreamError{Status: status, Reason: reason}
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
