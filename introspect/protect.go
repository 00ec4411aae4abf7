package introspect

import (
	"errors"
	"time"
)

var (
	// ErrTooManyLookups is the Err of an [*UpstreamError] for a lookup that
	// found no free slot (headless.Config.MaxConcurrentLookups) before its deadline.
	// No request was made.
	ErrTooManyLookups = errors.New("introspect: too many concurrent lookups")
	// ErrBreakerOpen is the Err of an [*UpstreamError] for a lookup refused
	// by the open circuit breaker (headless.Config.Breaker), by a half-open one
	// whose ping is already in flight, or whose own ping allauth did not
	// answer. No lookup was made.
	ErrBreakerOpen = errors.New("introspect: circuit breaker open")
)

// BreakerConfig tunes the circuit breaker in front of allauth. The zero
// value is on, with the defaults.
//
// The breaker counts the lookups of the last Window, whatever their
// credential: those that failed upstream (no answer in time, refused,
// reset, a 429 or 5xx, a body that is not allauth's JSON) and the others.
// allauth's own 401 and 410 are answers: they never count as failures.
// Lookups the caller cancelled, and credentials refused locally, do not
// count at all.
//
// When at least Failures of them failed and they are at least FailureRatio
// of all, the breaker asks allauth itself before it opens: the next lookup
// makes it ping allauth first (the session endpoint without
// any credential, which allauth answers with its JSON 401 and no session
// lookup), while the other lookups go on as before. If allauth does not
// answer the ping, the breaker opens for CoolDown: every lookup then fails
// at once with an [*UpstreamError] wrapping [ErrBreakerOpen] whose
// RetryAfter is the cool-down left, and allauth sees nothing. After the
// cool-down it is half-open: the next lookup pings again, while the others
// still fail at once. Once allauth answers a ping, the breaker is closed
// with an empty window, the lookup that carried the ping goes on, and for
// CoolDown failures do not trip it again.
//
// So a client's own lookup is never the probe, and lookups that fail while
// allauth answers (one client's tokens that make allauth slow or fail)
// never open the breaker: they cost allauth one ping per CoolDown. The
// price: when allauth answers the ping but fails every lookup (its session
// store down), the breaker stays closed, and each miss waits for allauth's
// failure (bounded by Timeout and MaxConcurrentLookups).
type BreakerConfig struct {
	// Failures is the fewest failed lookups within Window that open the
	// breaker (with FailureRatio).
	//
	// Optional. Default: 5
	Failures int
	// FailureRatio is the share of the lookups within Window that must
	// have failed for the breaker to open, from 0 to 1: with 0.5, each
	// lookup allauth answered outweighs a failed one.
	//
	// Optional. Default: 0.5
	FailureRatio float64
	// Window is how far back lookups are counted. It slides by a tenth of
	// itself.
	//
	// Optional. Default: 10 * time.Second
	Window time.Duration
	// CoolDown is how long the breaker stays open before it pings allauth
	// again, and how long a ping that allauth answered stands: failures do
	// not trip the breaker again within it.
	//
	// Optional. Default: 1 * time.Second
	CoolDown time.Duration
	// Disabled turns the breaker off: every lookup asks allauth and waits
	// up to Timeout however often allauth failed before.
	//
	// Optional. Default: false
	Disabled bool
	// OnStateChange, if set, is called after each change of state, outside
	// the breaker's lock, e.g. to log it. Calls for changes that happen at
	// nearly the same time may arrive out of order.
	//
	// Optional. Default: nil
	OnStateChange func(from, to BreakerState)
}

// BreakerState is the state of the circuit breaker. Its String is a metric
// label value.
type BreakerState uint8

// The states.
const (
	// BreakerClosed: lookups go to allauth (also when the breaker is off,
	// and after failures tripped it, until its ping says allauth does not
	// answer).
	BreakerClosed BreakerState = iota
	// BreakerHalfOpen: the cool-down is over; the next lookup makes the
	// breaker ping allauth, and others fail at once while the ping runs.
	BreakerHalfOpen
	// BreakerOpen: lookups fail at once until the cool-down is over.
	BreakerOpen
)

// String returns "closed", "half_open" or "open".
func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerHalfOpen:
		return "half_open"
	case BreakerOpen:
		return "open"
	default:
		return "unknown"
	}
}

// Protection is a snapshot of the client's overload protections: the lookup
// slots (headless.Config.MaxConcurrentLookups) and the circuit breaker
// (headless.Config.Breaker).
type Protection struct {
	// MaxConcurrentLookups is the slot count, or -1 when unlimited.
	MaxConcurrentLookups int
	// InFlight is the number of lookups holding a slot (making a request)
	// now.
	InFlight int64
	// Waiting is the number of lookups waiting for a slot now.
	Waiting int64
	// SlotRejections counts lookups that found no slot before their
	// deadline (503 with Retry-After in fiberauth).
	SlotRejections uint64
	// Breaker is the breaker's state now (BreakerClosed when it is off).
	Breaker BreakerState
	// BreakerRetryAfter is the cool-down left while Breaker is BreakerOpen.
	BreakerRetryAfter time.Duration
	// BreakerFailures is the number of failed lookups within the window
	// (BreakerConfig.Window), and BreakerLookups that of all the lookups
	// counted there, failed or not.
	BreakerFailures, BreakerLookups int
	// BreakerPings counts the pings the half-open breaker sent to allauth.
	BreakerPings uint64
	// BreakerRejections counts lookups the breaker failed at once.
	BreakerRejections uint64
	// BreakerOpens counts the times the breaker opened (a failed ping
	// included).
	BreakerOpens uint64
	// BreakerDisabled is true when headless.Config.Breaker.Disabled.
	BreakerDisabled bool
}
