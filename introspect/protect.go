package introspect

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
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
	// defaultBreakerFailures is how many consecutive failed lookups open the
	// breaker.
	defaultBreakerFailures = 5
	// defaultBreakerCoolDown is how long an open breaker answers at once
	// before it lets one probe through.
	defaultBreakerCoolDown = time.Second
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
	// by the open circuit breaker (Config.Breaker), or by a half-open one
	// whose single probe is already in flight. No request was made.
	ErrBreakerOpen = errors.New("introspect: circuit breaker open")
)

// BreakerConfig tunes the circuit breaker in front of allauth. The zero
// value is on, with the defaults.
//
// After Failures consecutive lookups that failed upstream (no answer in
// time, refused, reset, a 429 or 5xx, a body that is not allauth's JSON),
// the breaker opens for CoolDown: every lookup then fails at once with an
// [*UpstreamError] wrapping [ErrBreakerOpen] whose RetryAfter is the
// cool-down left, and allauth sees nothing. When the cool-down is over the
// breaker is half-open: one lookup at a time is let through as a probe
// (the others still fail at once); its success closes the breaker, its
// failure opens it for another CoolDown. allauth's own 401 and 410 are
// successes: they never open it. Lookups the caller cancelled, and
// credentials refused locally, do not count either way.
type BreakerConfig struct {
	// Failures is how many consecutive failed lookups open the breaker.
	//
	// Optional. Default: 5
	Failures int
	// CoolDown is how long the breaker stays open before a probe.
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
	// BreakerClosed: lookups go to allauth (also when the breaker is off).
	BreakerClosed BreakerState = iota
	// BreakerHalfOpen: the cool-down is over; the next lookup is a probe,
	// and others fail at once while it runs.
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
	// BreakerFailures is the current run of consecutive failed lookups.
	BreakerFailures int
	// BreakerRejections counts lookups the breaker failed at once.
	BreakerRejections uint64
	// BreakerOpens counts the times the breaker opened (a failed probe
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
		p.Breaker, p.BreakerRetryAfter, p.BreakerFailures = b.snapshot()
		p.BreakerRejections = b.rejections.Load()
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

// admit lets a lookup through the breaker and into a slot, or refuses it
// with an *UpstreamError, without a request. On success the caller must
// call done with the lookup's outcome.
func (c *Client) admit(ctx context.Context) (done func(outcome), err error) {
	probe := false
	if c.breaker != nil {
		if probe, err = c.breaker.allow(); err != nil {
			return nil, err
		}
	}
	if c.slots != nil {
		if err := c.acquire(ctx); err != nil {
			if c.breaker != nil {
				c.breaker.record(probe, outcomeNeutral)
			}
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
			c.breaker.record(probe, o)
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

// breaker is a consecutive-failure circuit breaker. It holds a small mutex
// for a few instructions per lookup at allauth (never on a cache hit) and
// starts no goroutine: the cool-down is checked when a lookup arrives.
type breaker struct {
	failures int           // consecutive failures that open it
	coolDown time.Duration // how long it stays open
	now      func() time.Time
	onChange func(from, to BreakerState)

	mu        sync.Mutex
	open      bool      // open or half-open
	openUntil time.Time // end of the cool-down, while open
	probing   bool      // a half-open probe is in flight
	run       int       // consecutive failures while closed

	rejections atomic.Uint64
	opens      atomic.Uint64
}

func newBreaker(cfg BreakerConfig) *breaker {
	if cfg.Disabled {
		return nil
	}
	b := &breaker{
		failures: cfg.Failures,
		coolDown: cfg.CoolDown,
		now:      cfg.Now,
		onChange: cfg.OnStateChange,
	}
	if b.failures <= 0 {
		b.failures = defaultBreakerFailures
	}
	if b.coolDown <= 0 {
		b.coolDown = defaultBreakerCoolDown
	}
	if b.now == nil {
		b.now = time.Now
	}
	return b
}

// stateLocked is the state at now.
func (b *breaker) stateLocked(now time.Time) BreakerState {
	switch {
	case !b.open:
		return BreakerClosed
	case now.Before(b.openUntil):
		return BreakerOpen
	default:
		return BreakerHalfOpen
	}
}

func (b *breaker) snapshot() (BreakerState, time.Duration, int) {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.stateLocked(now)
	var left time.Duration
	if st == BreakerOpen {
		left = b.openUntil.Sub(now)
	}
	return st, left, b.run
}

// allow decides whether a lookup may ask allauth. probe is true for the one
// lookup let through while half-open.
func (b *breaker) allow() (probe bool, err error) {
	now := b.now()
	b.mu.Lock()
	switch st := b.stateLocked(now); {
	case st == BreakerClosed:
		b.mu.Unlock()
		return false, nil
	case st == BreakerOpen:
		left := b.openUntil.Sub(now)
		b.mu.Unlock()
		b.rejections.Add(1)
		return false, &UpstreamError{Reason: "circuit breaker open", RetryAfter: left, Err: ErrBreakerOpen}
	case b.probing:
		b.mu.Unlock()
		b.rejections.Add(1)
		// The probe ends within Timeout; a second is what a client should
		// wait before it asks again.
		return false, &UpstreamError{Reason: "circuit breaker half-open, probe in flight", RetryAfter: b.coolDown, Err: ErrBreakerOpen}
	default:
		b.probing = true
		b.mu.Unlock()
		return true, nil
	}
}

// record takes a lookup's outcome into account.
func (b *breaker) record(probe bool, o outcome) {
	now := b.now()
	b.mu.Lock()
	from := b.stateLocked(now)
	if probe {
		b.probing = false
	}
	switch o {
	case outcomeSuccess:
		// Any answer of allauth's own closes the breaker: the first success
		// after the cool-down (a probe), or a lookup that started before it
		// opened and was answered after.
		b.run = 0
		b.open = false
	case outcomeFailure:
		switch {
		case from == BreakerClosed:
			b.run++
			if b.run >= b.failures {
				b.openLocked(now)
			}
		case probe && from == BreakerHalfOpen:
			b.openLocked(now)
		default:
			// A lookup admitted before the breaker opened, failing after:
			// the breaker already knows.
		}
	case outcomeNeutral:
	}
	to := b.stateLocked(now)
	b.mu.Unlock()
	if from != to && b.onChange != nil {
		b.onChange(from, to)
	}
}

func (b *breaker) openLocked(now time.Time) {
	b.open = true
	b.openUntil = now.Add(b.coolDown)
	b.run = 0
	b.opens.Add(1)
}
