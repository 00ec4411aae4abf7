package allauth

import (
	"context"
	"errors"
	"time"

	"github.com/allauthgo/headless/introspect"
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

// Protection returns the state of the client's overload protections. It is
// safe to call at any time, from any goroutine.
func (c *Client) Protection() introspect.Protection {
	p := introspect.Protection{
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
	var auth *introspect.AuthError
	if errors.As(err, &auth) {
		if IsLocal(err) {
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
// into a slot, or refuses it with an *introspect.UpstreamError, without a request (but
// for the half-open breaker's ping). On success the caller must call done
// with the lookup's outcome. parent is the caller's context, before
// Timeout was applied to ctx.
func (c *Client) admit(parent, ctx context.Context, k introspect.Kind) (done func(outcome), err error) {
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
		return &introspect.UpstreamError{
			Reason:     "no free lookup slot before the deadline (MaxConcurrentLookups)",
			RetryAfter: slotRetryAfter,
			Err:        introspect.ErrTooManyLookups,
		}
	}
}
