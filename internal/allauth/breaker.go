package allauth

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/allauthgo/headless/introspect"
)

// breaker is a failure-rate circuit breaker whose half-open probe is its own
// credential-less ping (see [introspect.BreakerConfig]). It holds a small mutex for a
// few instructions per lookup at allauth (never on a cache hit) and starts
// no goroutine: the cool-down is checked when a lookup arrives, and the
// lookup that finds it over carries the ping.
type breaker struct {
	minFailures int           // the fewest failures in the window that open it
	ratio       float64       // the share of the window's lookups that must have failed
	width       time.Duration // of one bucket: Window / breakerBuckets
	coolDown    time.Duration // how long it stays open
	now         func() time.Time
	onChange    func(from, to introspect.BreakerState)

	mu        sync.Mutex
	open      bool      // open or half-open
	openUntil time.Time // end of the cool-down, while open
	pingDue   bool      // closed, but the failures tripped it: the next lookup pings
	probing   bool      // a ping is in flight
	trusted   time.Time // until then, a ping allauth answered stands: no trip
	buckets   [breakerBuckets]breakerBucket
	newest    int64 // the number (time / width) of the newest bucket

	rejections atomic.Uint64
	opens      atomic.Uint64
	pings      atomic.Uint64
}

// breakerBucket counts the lookups of one slice of the window.
type breakerBucket struct{ failures, lookups int }

func newBreaker(cfg introspect.BreakerConfig, now func() time.Time) *breaker {
	if cfg.Disabled {
		return nil
	}
	b := &breaker{
		minFailures: cfg.Failures,
		ratio:       cfg.FailureRatio,
		coolDown:    cfg.CoolDown,
		now:         now,
		onChange:    cfg.OnStateChange,
	}
	if b.minFailures <= 0 {
		b.minFailures = defaultBreakerFailures
	}
	if !(b.ratio > 0) { // also NaN
		b.ratio = defaultBreakerFailureRatio
	}
	b.ratio = min(b.ratio, 1)
	window := cfg.Window
	if window <= 0 {
		window = defaultBreakerWindow
	}
	b.width = max(window/breakerBuckets, time.Nanosecond)
	if b.coolDown <= 0 {
		b.coolDown = defaultBreakerCoolDown
	}
	if b.now == nil {
		b.now = time.Now
	}
	return b
}

// stateLocked is the state at now.
func (b *breaker) stateLocked(now time.Time) introspect.BreakerState {
	switch {
	case !b.open:
		return introspect.BreakerClosed
	case now.Before(b.openUntil):
		return introspect.BreakerOpen
	default:
		return introspect.BreakerHalfOpen
	}
}

// slideLocked moves the window to now: buckets older than the window are
// emptied. A clock that went back leaves the window where it is.
func (b *breaker) slideLocked(now time.Time) {
	n := now.UnixNano() / int64(b.width)
	if n <= b.newest {
		return
	}
	if n-b.newest >= breakerBuckets {
		b.buckets = [breakerBuckets]breakerBucket{}
	} else {
		for i := b.newest + 1; i <= n; i++ {
			b.buckets[i%breakerBuckets] = breakerBucket{}
		}
	}
	b.newest = n
}

// countsLocked returns the failures and lookups within the window.
func (b *breaker) countsLocked() (failures, lookups int) {
	for _, k := range b.buckets {
		failures += k.failures
		lookups += k.lookups
	}
	return failures, lookups
}

func (b *breaker) snapshot() (st introspect.BreakerState, left time.Duration, failures, lookups int) {
	now := b.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	st = b.stateLocked(now)
	if st == introspect.BreakerOpen {
		left = b.openUntil.Sub(now)
	}
	b.slideLocked(now)
	failures, lookups = b.countsLocked()
	return st, left, failures, lookups
}

// allow decides whether a lookup may ask allauth. probe is true for the one
// lookup that must carry the breaker's ping before its own request: the
// first after the failures tripped the breaker (while others go on), or the
// first after the cool-down (while others fail at once).
func (b *breaker) allow() (probe bool, err error) {
	now := b.now()
	b.mu.Lock()
	switch st := b.stateLocked(now); {
	case st == introspect.BreakerClosed:
		probe = b.pingDue && !b.probing
		b.probing = b.probing || probe
		b.mu.Unlock()
		return probe, nil
	case st == introspect.BreakerOpen:
		left := b.openUntil.Sub(now)
		b.mu.Unlock()
		b.rejections.Add(1)
		return false, &introspect.UpstreamError{Reason: "circuit breaker open", RetryAfter: left, Err: introspect.ErrBreakerOpen}
	case b.probing:
		b.mu.Unlock()
		b.rejections.Add(1)
		// The ping ends within Timeout; a cool-down is what a client should
		// wait before it asks again.
		return false, &introspect.UpstreamError{Reason: "circuit breaker half-open, ping in flight", RetryAfter: b.coolDown, Err: introspect.ErrBreakerOpen}
	default:
		b.probing = true
		b.mu.Unlock()
		return true, nil
	}
}

// probe runs the breaker's ping and takes its verdict: allauth answered
// (nil: the breaker is closed, with an empty window, and the lookup goes
// on), the caller went away (its error; the next lookup pings instead), or
// allauth did not answer (an *introspect.UpstreamError wrapping introspect.ErrBreakerOpen; the
// breaker is open for CoolDown). parent is the caller's context.
func (b *breaker) probe(parent context.Context, ping func() error) error {
	err := ping()
	b.pings.Add(1)
	now := b.now()
	b.mu.Lock()
	from := b.stateLocked(now)
	b.probing = false
	cancelled := err != nil && errors.Is(parent.Err(), context.Canceled)
	switch {
	case err == nil:
		b.open, b.pingDue = false, false
		b.buckets = [breakerBuckets]breakerBucket{}
		b.trusted = now.Add(b.coolDown)
	case cancelled:
		// Says nothing about allauth: the next lookup pings again.
	default:
		b.openLocked(now)
	}
	to := b.stateLocked(now)
	b.mu.Unlock()
	if from != to && b.onChange != nil {
		b.onChange(from, to)
	}
	switch {
	case err == nil, cancelled:
		return err
	default:
		b.rejections.Add(1)
		return &introspect.UpstreamError{Reason: "circuit breaker open: allauth did not answer its ping", RetryAfter: b.coolDown, Err: introspect.ErrBreakerOpen}
	}
}

// record counts a lookup's outcome. When the window holds enough failures,
// the breaker does not open yet: the next lookup pings allauth (the others
// go on meanwhile), and it opens only if allauth does not answer the ping. Failures of some lookups while allauth answers (tokens that make it
// fail) so never open it; and after a ping it answered, failures do not
// trip it again for CoolDown, so that allauth sees at most one such ping
// per CoolDown. Outcomes that arrive while it is not closed (of lookups
// admitted before it tripped) are left out: it already knows.
func (b *breaker) record(o outcome) {
	if o == outcomeNeutral {
		return
	}
	now := b.now()
	b.mu.Lock()
	from := b.stateLocked(now)
	if from != introspect.BreakerClosed {
		b.mu.Unlock()
		return
	}
	b.slideLocked(now)
	k := &b.buckets[b.newest%breakerBuckets]
	k.lookups++
	if o == outcomeFailure {
		k.failures++
		f, n := b.countsLocked()
		if f >= b.minFailures && float64(f) >= b.ratio*float64(n) && !now.Before(b.trusted) {
			b.pingDue = true
			b.buckets = [breakerBuckets]breakerBucket{}
		}
	}
	to := b.stateLocked(now)
	b.mu.Unlock()
	if from != to && b.onChange != nil {
		b.onChange(from, to)
	}
}

func (b *breaker) openLocked(now time.Time) {
	b.open, b.pingDue = true, false
	b.openUntil = now.Add(b.coolDown)
	b.buckets = [breakerBuckets]breakerBucket{}
	b.opens.Add(1)
}
