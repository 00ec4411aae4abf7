package headless

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/allauthgo/headless/introspect"
)

// Outcome is how the middleware answered a request, as counted in
// [Metrics.Requests]. Its String is the metric label value.
type Outcome uint8

// The outcomes. Every request the middleware sees is exactly one of them.
const (
	// OutcomeAuthenticated: a user was stored and the request went on (a
	// cache hit, a lookup at allauth, a JWT, or a stale session served
	// under StaleIfError).
	OutcomeAuthenticated Outcome = iota
	// OutcomeAnonymous: no credential, let through as anonymous
	// (Authenticate with optional: a door's Optional handler or setting).
	OutcomeAnonymous
	// OutcomeUnauthenticated: answered 401 (no credential, allauth's 401
	// live or cached, a malformed credential, an invalid JWT).
	OutcomeUnauthenticated
	// OutcomeGone: answered 410 (allauth's 410 live or cached, a malformed
	// session token).
	OutcomeGone
	// OutcomeUpstreamError: answered 503, because allauth failed.
	OutcomeUpstreamError
	// OutcomeSkipped: the door skipped authentication (its Config.Next),
	// as told by Skip.
	OutcomeSkipped

	numOutcomes = iota
)

// String returns the label value: "authenticated", "anonymous",
// "unauthenticated", "gone", "upstream_error" or "skipped".
func (o Outcome) String() string {
	switch o {
	case OutcomeAuthenticated:
		return "authenticated"
	case OutcomeAnonymous:
		return "anonymous"
	case OutcomeUnauthenticated:
		return "unauthenticated"
	case OutcomeGone:
		return "gone"
	case OutcomeUpstreamError:
		return "upstream_error"
	case OutcomeSkipped:
		return "skipped"
	default:
		return "unknown"
	}
}

// StatusClass groups allauth's answers to lookups by HTTP status, as in
// [Metrics.Upstream]. Its String is the metric label value.
type StatusClass uint8

// The classes. allauth's own answers are 2xx (200) and 4xx (401, 410); a
// 429 is 4xx too, which is why [Metrics.UpstreamErrors] counts failures
// separately.
const (
	// ClassError: no answer (refused, reset, timed out) or a status outside
	// 200-599.
	ClassError StatusClass = iota
	Class2xx
	Class3xx
	Class4xx
	Class5xx

	numClasses = iota
)

// ClassOf returns the class of an HTTP status; 0 (no answer) is ClassError.
func ClassOf(status int) StatusClass {
	switch {
	case status >= 200 && status < 300:
		return Class2xx
	case status >= 300 && status < 400:
		return Class3xx
	case status >= 400 && status < 500:
		return Class4xx
	case status >= 500 && status < 600:
		return Class5xx
	default:
		return ClassError
	}
}

// String returns the label value: "2xx", "3xx", "4xx", "5xx" or "error".
func (c StatusClass) String() string {
	switch c {
	case Class2xx:
		return "2xx"
	case Class3xx:
		return "3xx"
	case Class4xx:
		return "4xx"
	case Class5xx:
		return "5xx"
	default:
		return "error"
	}
}

// upstreamBuckets are the upper bounds of the lookup duration histogram:
// allauth answers in a few milliseconds when healthy, and Timeout (2 s by
// default) bounds the slow end.
var upstreamBuckets = [...]time.Duration{
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

const numBuckets = len(upstreamBuckets)

// UpstreamBuckets returns the upper bounds of [Histogram.Buckets]: 1 ms to
// 10 s.
func UpstreamBuckets() []time.Duration {
	out := make([]time.Duration, numBuckets)
	copy(out, upstreamBuckets[:])
	return out
}

// Histogram is the distribution of lookup durations for one status class.
type Histogram struct {
	// Count is the number of lookups.
	Count uint64
	// Sum is their total duration.
	Sum time.Duration
	// Buckets[i] is the number of lookups that took at most
	// UpstreamBuckets()[i] (cumulative, as Prometheus wants it); Count
	// includes the slower ones.
	Buckets [numBuckets]uint64
}

// Metrics is a snapshot of what the Authenticator counted since it was made,
// its cache's counters included. Reading it costs a few
// atomic loads, so a metrics exporter reads it at scrape time (see package
// authprom).
type Metrics struct {
	// Requests counts requests by outcome: Requests[OutcomeGone] is the
	// number answered 410.
	Requests [numOutcomes]uint64
	// Upstream is the duration of lookups at allauth (cache misses; one per
	// coalesced miss) by the class of allauth's status:
	// Upstream[Class5xx].Count is the number of lookups allauth answered
	// with a 5xx.
	Upstream [numClasses]Histogram
	// UpstreamErrors counts the lookups that failed: no answer, or anything
	// but allauth's JSON 200, 401 or 410 (a 429, a 5xx, a proxy's HTML...).
	// Each one is logged.
	UpstreamErrors uint64
	// LastAnswer is when allauth last gave one of its own answers (JSON 200,
	// 401 or 410) to a lookup or a readiness probe; zero if never.
	LastAnswer time.Time
	// LastError is when a lookup or a readiness probe last failed; zero if
	// never.
	LastError time.Time
	// Cache is the cache's running totals: hits, misses, shared reads,
	// fetches, evictions, store errors, entries, and whether evictions from
	// other instances arrive by Redis pub/sub.
	Cache CacheStats
	// Protection is the state of the client's overload protections: lookups
	// in flight and waiting for a slot, those refused for want of one, and
	// the circuit breaker's state and refusals. Refused lookups made no
	// request: they are not in Upstream or UpstreamErrors, nor logged one by
	// one. It is the Client's, shared by every middleware using it.
	Protection introspect.Protection
}

// Metrics returns the Authenticator's counters. It is safe to call at any time,
// from any goroutine.
func (a *Authenticator) Metrics() Metrics {
	o := &a.obs
	var s Metrics
	for i := range s.Requests {
		s.Requests[i] = o.requests[i].n.Load()
	}
	for i := range s.Upstream {
		h := &o.upstream[i]
		out := &s.Upstream[i]
		var cum uint64
		for b := range out.Buckets {
			cum += h.counts[b].Load()
			out.Buckets[b] = cum
		}
		// Count is derived from the same loads as the buckets, so the two
		// agree even while lookups are being recorded.
		out.Count = cum + h.counts[numBuckets].Load()
		out.Sum = time.Duration(h.sum.Load())
	}
	s.UpstreamErrors = o.upstreamErrors.Load()
	s.LastAnswer = unixTime(o.lastAnswer.Load())
	s.LastError = unixTime(o.lastError.Load())
	s.Protection = a.client.Protection()
	s.Cache = CacheStats(a.cache.Stats())
	return s
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// observer holds the Authenticator's counters. It is the last field of
// Authenticator and starts with a cache line of padding, so that counting a
// request never writes to a cache line that the read-mostly fields before it
// (cfg, sources...) sit on; each outcome has its own line too.
type observer struct {
	_              [64]byte
	requests       [numOutcomes]paddedCounter
	upstream       [numClasses]histogram
	upstreamErrors atomic.Uint64
	lastAnswer     atomic.Int64 // Unix ns of allauth's last own answer, or 0
	lastError      atomic.Int64 // Unix ns of the last failed lookup or probe, or 0
}

type paddedCounter struct {
	n atomic.Uint64
	_ [56]byte
}

type histogram struct {
	counts [numBuckets + 1]atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sum    atomic.Int64                  // ns
}

func (h *histogram) observe(d time.Duration) {
	i := 0
	for i < numBuckets && d > upstreamBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// count records a request's outcome: one atomic add.
func (a *Authenticator) count(o Outcome) { a.obs.requests[o].n.Add(1) }

// outcomeOf is the outcome of a failure answered with e.
func outcomeOf(e *Error) Outcome {
	switch e.Status {
	case http.StatusGone:
		return OutcomeGone
	case http.StatusUnauthorized:
		return OutcomeUnauthenticated
	default:
		return OutcomeUpstreamError
	}
}

// answered records that allauth gave one of its own answers, or failed.
func (o *observer) answered(ok bool, at time.Time) {
	if ok {
		o.lastAnswer.Store(at.UnixNano())
	} else {
		o.lastError.Store(at.UnixNano())
	}
}
