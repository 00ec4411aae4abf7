package headless

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/allauthgo/headless/internal/allauth"
	"github.com/allauthgo/headless/introspect"
)

// Error is a refusal: the status the contract answers and why. The front
// doors hand it to their ErrorHandler, which renders it with Header and
// Body, so that every door answers alike.
type Error struct {
	// Status is the HTTP status to answer: 401, 410 or 503.
	Status int
	// Code is a short machine-readable reason, e.g. "not_authenticated".
	Code string
	// Message is a short human-readable reason.
	Message string
	// RetryAfter is how long a client should wait, for a 503: allauth's (or
	// its proxy's) Retry-After, or 1 s without one, in whole seconds and
	// clamped to 1 s..5 min, so that an absurd value such as 2147483647
	// never reaches clients. The cause (Err) keeps the value as sent.
	RetryAfter time.Duration
	// Bearer is set when KeyLookup reads the Authorization header (or the
	// credential was a Bearer token), so a 401 carries a WWW-Authenticate
	// challenge, as RFC 7235 requires.
	Bearer bool
	// InvalidToken is set when a credential was presented and refused.
	InvalidToken bool
	// Kind is the kind of the refused credential, or 0 when there was none.
	Kind introspect.Kind
	// Err is the cause: an *introspect.AuthError, *introspect.UpstreamError or
	// a context error. Its text never holds the token.
	Err error
}

func (e *Error) Error() string { return "headless: " + e.Message }

func (e *Error) Unwrap() error { return e.Err }

// Codes in error bodies.
const (
	CodeNotAuthenticated    = "not_authenticated"
	CodeSessionGone         = "session_gone"
	CodeUpstreamUnavailable = "upstream_unavailable"
)

// The common errors are built once, since they are answered at the rate
// clients send bad tokens.
var (
	errNoCredential       = &Error{Status: http.StatusUnauthorized, Code: CodeNotAuthenticated, Message: "No credential was provided.", Err: errAllauthNoCredential}
	errNoCredentialBearer = &Error{Status: http.StatusUnauthorized, Code: CodeNotAuthenticated, Message: "No credential was provided.", Err: errAllauthNoCredential, Bearer: true}

	// What allauth answers, decided here without asking it: 401 for no
	// credential; for one that cannot be valid, 410 for a session token and
	// 401 for a Bearer token or a cookie.
	errAllauthNoCredential   = allauth.ErrNoCredential
	errAllauthMalformedToken = allauth.ErrMalformedSessionToken
	errAllauthMalformedOther = allauth.ErrMalformedOther
)

// malformed is allauth's answer to a credential of kind k that cannot be
// valid.
func malformed(k introspect.Kind) error {
	if k == introspect.SessionToken {
		return errAllauthMalformedToken
	}
	return errAllauthMalformedOther
}

func (a *Authenticator) errNoCredential() *Error {
	if a.wantsBearer {
		return errNoCredentialBearer
	}
	return errNoCredential
}

// rejection is the error for allauth's 401 or 410 (cached, live, or decided
// locally for a malformed credential).
func (a *Authenticator) rejection(kind introspect.Kind, cause error) *Error {
	if errors.Is(cause, introspect.ErrSessionGone) {
		return &Error{
			Status: http.StatusGone, Code: CodeSessionGone, Message: "The session is gone; log in again.",
			InvalidToken: true, Kind: kind, Err: cause,
		}
	}
	return &Error{
		Status: http.StatusUnauthorized, Code: CodeNotAuthenticated, Message: "The credential is not valid.",
		InvalidToken: true, Kind: kind, Bearer: a.wantsBearer || kind == introspect.Bearer, Err: cause,
	}
}

// outcomeError maps a failed lookup to the error answered.
func (a *Authenticator) outcomeError(kind introspect.Kind, err error) *Error {
	var auth *introspect.AuthError
	if errors.As(err, &auth) {
		return a.rejection(kind, err)
	}
	retry := time.Second
	var up *introspect.UpstreamError
	if errors.As(err, &up) && up.RetryAfter > 0 {
		retry = up.RetryAfter
	}
	return &Error{
		Status: http.StatusServiceUnavailable, Code: CodeUpstreamUnavailable,
		Message:    "Authentication is unavailable; try again shortly.",
		RetryAfter: time.Duration(retrySeconds(retry)) * time.Second, Err: err,
	}
}

// Header calls set with every header the answer to e carries:
// Cache-Control: no-store, Retry-After on a 503 (1 to 300 s), and
// WWW-Authenticate (RFC 6750) on a 401 when Bearer is set. Content-Type is
// the caller's: Body is JSON.
func (e *Error) Header(set func(key, value string)) {
	set("Cache-Control", "no-store")
	if e.Status == http.StatusServiceUnavailable {
		set("Retry-After", strconv.Itoa(retrySeconds(e.RetryAfter)))
	}
	if e.Status == http.StatusUnauthorized && e.Bearer {
		if e.InvalidToken && e.Kind == introspect.Bearer {
			set("WWW-Authenticate", `Bearer error="invalid_token"`)
		} else {
			set("WWW-Authenticate", "Bearer")
		}
	}
}

// Body renders allauth's error envelope:
//
//	{"status": 401, "errors": [{"code": "not_authenticated", "message": "..."}]}
func (e *Error) Body() []byte {
	b := make([]byte, 0, 128)
	b = append(b, `{"status": `...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `, "errors": [{"code": `...)
	b = strconv.AppendQuote(b, e.Code)
	b = append(b, `, "message": `...)
	b = strconv.AppendQuote(b, e.Message)
	b = append(b, `}]}`...)
	return b
}

// ErrorFrom returns the *Error in err's chain, or, for any other error a
// door's error handler is handed, a 500 that does not show err's text.
func ErrorFrom(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return errInternal
}

var errInternal = &Error{Status: http.StatusInternalServerError, Code: "internal_error", Message: "Internal error."}

// maxRetrySeconds bounds the Retry-After clients are told: past a few
// minutes a client is better off trying again than trusting the number.
const maxRetrySeconds = 300

// retrySeconds is the one place a delay becomes what clients are told: whole
// seconds (rounded up), clamped to 1..maxRetrySeconds.
func retrySeconds(d time.Duration) int {
	s := math.Ceil(d.Seconds())
	return int(min(max(s, 1), maxRetrySeconds))
}
