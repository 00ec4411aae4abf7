// Package authprom exports the metrics of a [headless.Authenticator] (the
// one inside any front door's middleware) to Prometheus. It lives apart so
// that only programs that import it depend on the Prometheus client.
//
//	m, err := fiberauth.NewMiddleware(fiberauth.Config{BaseURL: "http://127.0.0.1:8000"})
//	// handle err
//	prometheus.MustRegister(authprom.New(m.Authenticator))
//
// The Collector reads the Authenticator's counters
// ([headless.Authenticator.Metrics], its cache's counters included) at
// scrape time, so it adds nothing to a request. Its metrics (with the default namespace "allauthgo"):
//
//	allauthgo_requests_total{outcome}                   requests by outcome: authenticated, anonymous,
//	                                                    unauthenticated, gone, upstream_error, skipped
//	allauthgo_cache_hits_total                          authenticated answers served from the cache
//	allauthgo_cache_negative_hits_total                 401/410 answers served from the cache
//	allauthgo_cache_misses_total                        lookups that found nothing fresh in the cache
//	allauthgo_cache_coalesced_total                     misses that waited on another request's lookup
//	allauthgo_cache_stale_serves_total                  expired sessions served because allauth failed
//	allauthgo_cache_evictions_total                     Evict calls (per credential kind)
//	allauthgo_cache_store_errors_total                  failures of the cache store (e.g. Redis)
//	allauthgo_cache_rejected_total                      entries the full in-process cache declined
//	allauthgo_cache_shared_reads_total                  reads of the shared cache (Storage)
//	allauthgo_cache_refreshes_total                     background refreshes started (RefreshAhead)
//	allauthgo_cache_refresh_skips_total                 refreshes not started (too many in flight, breaker)
//	allauthgo_cache_entries                             entries held in process now
//	allauthgo_cache_eviction_subscribed                 1 while evictions arrive by Redis pub/sub
//	allauthgo_upstream_request_duration_seconds{class}  lookups at allauth by status class:
//	                                                    2xx, 3xx, 4xx, 5xx, error (no answer)
//	allauthgo_upstream_errors_total                     lookups that failed (no answer, or not
//	                                                    allauth's JSON 200/401/410)
//	allauthgo_upstream_last_answer_timestamp_seconds    when allauth last gave one of its own answers
//	allauthgo_upstream_in_flight                        lookups at allauth now (at most MaxConcurrentLookups)
//	allauthgo_upstream_waiting                          lookups waiting for a slot now
//	allauthgo_upstream_rejected_total{reason}           lookups refused without a request: no_slot (none
//	                                                    free before the deadline), breaker_open
//	allauthgo_upstream_breaker_state                    the circuit breaker: 0 closed, 1 half-open, 2 open
//	allauthgo_upstream_breaker_opens_total              times the circuit breaker opened
//
// No label holds a token, a user or a path. Two Authenticators in one
// process are told apart with ConstLabels.
package authprom

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/allauthgo/headless"
)

// Config tunes a Collector. The zero value uses the defaults.
type Config struct {
	// Namespace is the first part of every metric name.
	//
	// Optional. Default: "allauthgo"
	Namespace string

	// ConstLabels are added to every metric, e.g. {"middleware": "api"}
	// to tell two middlewares of one process apart.
	//
	// Optional. Default: nil
	ConstLabels prometheus.Labels
}

// DefaultNamespace is the default Config.Namespace.
const DefaultNamespace = "allauthgo"

// Collector is a prometheus.Collector over one middleware's counters.
type Collector struct {
	a *headless.Authenticator

	requests, upstream, upstreamErrors, lastAnswer, entries, subscribed *prometheus.Desc
	inFlight, waiting, rejected, breakerState, breakerOpens             *prometheus.Desc
	counters                                                            []cacheCounter
}

type cacheCounter struct {
	desc  *prometheus.Desc
	value func(s *headless.CacheStats) int64
}

// New returns a Collector for m; register it with a prometheus.Registerer.
func New(a *headless.Authenticator, config ...Config) *Collector {
	var cfg Config
	if len(config) > 0 {
		cfg = config[0]
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	desc := func(subsystem, name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(cfg.Namespace, subsystem, name), help, labels, cfg.ConstLabels)
	}
	c := &Collector{
		a: a,
		requests: desc("", "requests_total",
			"Requests seen by the middleware, by outcome: authenticated, anonymous, unauthenticated (401), gone (410), upstream_error (503), skipped (Config.Next).",
			"outcome"),
		upstream: desc("upstream", "request_duration_seconds",
			"Duration of session lookups at allauth (cache misses, one per coalesced miss), by status class: 2xx, 3xx, 4xx, 5xx, error (no answer).",
			"class"),
		upstreamErrors: desc("upstream", "errors_total",
			"Session lookups at allauth that failed: no answer, or anything but allauth's JSON 200, 401 or 410."),
		lastAnswer: desc("upstream", "last_answer_timestamp_seconds",
			"Unix time of allauth's last own answer (JSON 200, 401 or 410) to a lookup or readiness probe."),
		entries: desc("cache", "entries",
			"Entries held by the in-process cache (authenticated and negative)."),
		subscribed: desc("cache", "eviction_subscribed",
			"1 while evictions from other instances arrive by Redis pub/sub and the subscription has proven itself within Recheck; 0 otherwise (in-process copies of shared answers are then rechecked every Recheck)."),
		inFlight: desc("upstream", "in_flight",
			"Session lookups at allauth in flight now (at most MaxConcurrentLookups)."),
		waiting: desc("upstream", "waiting",
			"Session lookups waiting for a free slot (MaxConcurrentLookups) now."),
		rejected: desc("upstream", "rejected_total",
			"Session lookups refused without a request to allauth, by reason: no_slot (none free before the deadline), breaker_open (the circuit breaker was open, or half-open with its probe in flight).",
			"reason"),
		breakerState: desc("upstream", "breaker_state",
			"State of the circuit breaker in front of allauth: 0 closed, 1 half-open (cool-down over, probing), 2 open (misses answered at once)."),
		breakerOpens: desc("upstream", "breaker_opens_total",
			"Times the circuit breaker opened (allauth failed its ping, after failed lookups or a cool-down)."),
	}
	counter := func(name, help string, value func(s *headless.CacheStats) int64) {
		c.counters = append(c.counters, cacheCounter{desc: desc("cache", name, help), value: value})
	}
	counter("hits_total", "Authenticated answers served from the cache.", func(s *headless.CacheStats) int64 { return s.Hits })
	counter("negative_hits_total", "allauth's 401 or 410 answers served from the cache.", func(s *headless.CacheStats) int64 { return s.NegativeHits })
	counter("misses_total", "In-process cache lookups that found nothing usable.", func(s *headless.CacheStats) int64 { return s.Misses })
	counter("shared_reads_total", "Reads of the shared cache (Storage), one per coalesced in-process miss.", func(s *headless.CacheStats) int64 { return s.SharedReads })
	counter("coalesced_total", "Misses that waited on another request's lookup of the same credential instead of asking allauth.", func(s *headless.CacheStats) int64 { return s.Coalesced })
	counter("stale_serves_total", "Expired sessions served because allauth failed (StaleIfError).", func(s *headless.CacheStats) int64 { return s.StaleServes })
	counter("evictions_total", "Cache deletions (Evict drops a token once per credential kind).", func(s *headless.CacheStats) int64 { return s.Evictions })
	counter("store_errors_total", "Failures of the shared cache (e.g. Redis down) and unreadable, forged or future-dated values in it; each is a miss.", func(s *headless.CacheStats) int64 { return s.StoreErrors })
	counter("refreshes_total", "Background refreshes of sessions in use near their expiry (RefreshAhead).", func(s *headless.CacheStats) int64 { return s.Refreshes })
	counter("refresh_skips_total", "Refreshes a hit asked for that did not start: too many in flight, or the breaker not closed.", func(s *headless.CacheStats) int64 { return s.RefreshSkips })
	counter("rejected_total", "Entries the full in-process cache declined (MaxEntries).", func(s *headless.CacheStats) int64 { return s.Rejected })
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.requests
	ch <- c.upstream
	ch <- c.upstreamErrors
	ch <- c.lastAnswer
	ch <- c.entries
	ch <- c.subscribed
	ch <- c.inFlight
	ch <- c.waiting
	ch <- c.rejected
	ch <- c.breakerState
	ch <- c.breakerOpens
	for _, cc := range c.counters {
		ch <- cc.desc
	}
}

// Collect implements prometheus.Collector: it reads the middleware's
// counters.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	m := c.a.Metrics()
	for o := range m.Requests {
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue,
			float64(m.Requests[o]), headless.Outcome(o).String())
	}
	bounds := headless.UpstreamBuckets()
	for class := range m.Upstream {
		h := &m.Upstream[class]
		buckets := make(map[float64]uint64, len(bounds))
		for i, b := range bounds {
			buckets[b.Seconds()] = h.Buckets[i]
		}
		ch <- prometheus.MustNewConstHistogram(c.upstream, h.Count, h.Sum.Seconds(), buckets,
			headless.StatusClass(class).String())
	}
	ch <- prometheus.MustNewConstMetric(c.upstreamErrors, prometheus.CounterValue, float64(m.UpstreamErrors))
	if !m.LastAnswer.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.lastAnswer, prometheus.GaugeValue,
			float64(m.LastAnswer.UnixNano())/1e9)
	}
	p := &m.Protection
	ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(p.InFlight))
	ch <- prometheus.MustNewConstMetric(c.waiting, prometheus.GaugeValue, float64(p.Waiting))
	ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(p.SlotRejections), "no_slot")
	ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(p.BreakerRejections), "breaker_open")
	ch <- prometheus.MustNewConstMetric(c.breakerState, prometheus.GaugeValue, float64(p.Breaker))
	ch <- prometheus.MustNewConstMetric(c.breakerOpens, prometheus.CounterValue, float64(p.BreakerOpens))

	s := m.Cache
	for _, cc := range c.counters {
		ch <- prometheus.MustNewConstMetric(cc.desc, prometheus.CounterValue, float64(cc.value(&s)))
	}
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(s.Entries))
	subscribed := 0.0
	if s.Subscribed {
		subscribed = 1
	}
	ch <- prometheus.MustNewConstMetric(c.subscribed, prometheus.GaugeValue, subscribed)
}
