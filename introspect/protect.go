package introspect

import (
	"context"
	"errors"
	"time"
)

// Defaults for the protections of [Config]: MaxConcurrentLookups and
// Breaker.
const (
	// defaultMaxConcurrentLookups bounds the lookups in flight at allauth.
	// A typical Django deployment runs a few gunicorn workers of a few
	// threads each, answering about 130 session checks a second per worker;
	// 64 concurrent lookups already queue at such a server, and more only
	// lengthen its queue until every request times out.
	defaultMaxConcurrentLookups = 64
	// defaultBreakerFailures is the fewest failed lookups within the window
	// that open the breaker: a few, so that a quiet instance still notices
	// an outage, and not one or two, which any blip gives.
	defaultBreakerFailures = 5
	// defaultBreakerFailureRatio is the share of the window's lookups that
	// must have failed: at least half, as most breakers default to. Real
	// traffic that allauth answers keeps a few clients' failing lookups
	// below it.
	defaultBreakerFailureRatio = 0.5
	// defaultBreakerWindow is how far back lookups are counted: long enough
	// to hold several lookups that each failed after Timeout (2 s), short
	// enough that failures long past do not weigh on the verdict.
	defaultBreakerWindow = 10 * time.Second
	// defaultBreakerCoolDown is how long an open breaker answers at once
	// before it pings allauth, and how long a good ping stands: a second
	// keeps the pings cheap (allauth answers them without a lookup) and
	// notices recovery soon.
	defaultBreakerCoolDown = time.Second
	// breakerBuckets is how many slices of the window are counted apart: the
	// window slides by a tenth of itself.
	breakerBuckets = 10
	// slotRetryAfter is the Retry-After of a lookup refused for want of a
	// slot: allauth is busy, not down.
	slotRetryAfter = time.Second
)

var (
	// ErrTooManyLookups is the Err of an [*UpstreamError] for a lookup that
	// found no free slot (Config.MaxConcurrentLookups) before its deadline.
	// No request was made.
	ErrTooManyLookups = errors.New("introspect: too many concurrent lookups")
	// ErrBreakerOpen is the Err of an [*UpstreamError] for a lookup refused
	// by the open circuit breaker (Config.Breaker), by a half-open one
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
// makes it ping allauth first ([Client.Ping]: the session endpoint without
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
	// Now is the clock; tests inject one.
	//
	// Optional. Default: time.Now
	Now func() time.Time
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
// slots (Config.MaxConcurrentLookups) and the circuit breaker
// (Config.Breaker).
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
	// BreakerDisabled is true when Config.Breaker.Disabled.
	BreakerDisabled bool
}

// Protection returns the state of the client's overload protections. It is
// safe to call at any time, from any goroutine.
func (c *Client) Protection() Protection {
	p := Protection{
		MaxConcurrentLookups: -1,
		InFlight:             c.inFlight.Load(),
		Waiting:              c.waiting.Load(),
		SlotRejections:       c.slotRejections.Load(),
		BreakerDisabled:      c.breaker == nil,
	}
	if c.slots != nil {
		p.MaxConcurrentLookups = cap(c.slots)
	}
	if b := c.breaker; b != nil {
		p.Breaker, p.BreakerRetryAfter, p.BreakerFailures, p.BreakerLookups = b.snapshot()
		p.BreakerRejections = b.rejections.Load()
		p.BreakerPings = b.pings.Load()
		p.BreakerOpens = b.opens.Load()
	}
	return p
}

// outcome is what a lookup says about allauth's health.
type outcome uint8

const (
	outcomeNeutral outcome = iota // no request made, or the caller cancelled
	outcomeSuccess                // one of allauth's own answers: 200, 401, 410
	outcomeFailure                // no answer in time, refused, 429, 5xx, garbage
)

// classify says what a lookup's result says about allauth. parent is the
// caller's context (before Timeout was applied to it).
func classify(parent context.Context, err error) outcome {
	if err == nil {
		return outcomeSuccess
	}
	var auth *AuthError
	if errors.As(err, &auth) {
		if auth.Local {
			return outcomeNeutral
		}
		return outcomeSuccess
	}
	// The caller went away: that says nothing about allauth. A deadline,
	// the caller's or Timeout, is a lookup allauth did not answer in time.
	if errors.Is(parent.Err(), context.Canceled) {
		return outcomeNeutral
	}
	return outcomeFailure
}

// admit lets a lookup for a credential of kind k through the breaker and
// into a slot, or refuses it with an *UpstreamError, without a request (but
// for the half-open breaker's ping). On success the caller must call done
// with the lookup's outcome. parent is the caller's context, before
// Timeout was applied to ctx.
func (c *Client) admit(parent, ctx context.Context, k Kind) (done func(outcome), err error) {
	if b := c.breaker; b != nil {
		probe, err := b.allow()
		if err != nil {
			return nil, err
		}
		if probe {
			// The breaker's own probe: the endpoint of this lookup's kind
			// (one the project serves), without its credential.
			if err := b.probe(parent, func() error { return c.Ping(ctx, k) }); err != nil {
				return nil, err
			}
		}
	}
	if c.slots != nil {
		if err := c.acquire(ctx); err != nil {
			return nil, err
		}
	}
	c.inFlight.Add(1)
	return func(o outcome) {
		c.inFlight.Add(-1)
		if c.slots != nil {
			<-c.slots
		}
		if c.breaker != nil {
			c.breaker.record(o)
		}
	}, nil
}

// acquire takes a slot, waiting at most until ctx ends.
func (c *Client) acquire(ctx context.Context) error {
	select {
	case c.slots <- struct{}{}:
		return nil
	default:
	}
	c.waiting.Add(1)
	defer c.waiting.Add(-1)
	select {
	case c.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		c.slotRejections.Add(1)
		return &UpstreamError{
			Reason:     "no free lookup slot before the deadline (MaxConcurrentLookups)",
			RetryAfter: slotRetryAfter,
			Err:        ErrTooManyLookups,
		}
	}
}
