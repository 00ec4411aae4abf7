package fiberauth

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/allauthgo/headless/introspect"
)

// breakerConfig is cfg.Breaker with a log line on every change of state
// added in front of the caller's own OnStateChange, if any:
//
//	level=WARN msg="allauth circuit breaker" from=closed to=open
//	level=INFO msg="allauth circuit breaker" from=half_open to=closed
func breakerConfig(cfg Config) introspect.BreakerConfig {
	b := cfg.Breaker
	next, logger := b.OnStateChange, cfg.Logger
	b.OnStateChange = func(from, to introspect.BreakerState) {
		level := slog.LevelWarn
		if to == introspect.BreakerClosed {
			level = slog.LevelInfo
		}
		logger.LogAttrs(context.Background(), level, "allauth circuit breaker",
			slog.String("from", from.String()), slog.String("to", to.String()))
		if next != nil {
			next(from, to)
		}
	}
	return b
}

// refusedLocally reports whether a lookup was refused by the client's
// overload protection (no slot, breaker open) without a request to allauth:
// such refusals are counted in [Metrics.Protection], not as lookups, and not
// logged one by one (a flood would log a line per request).
func refusedLocally(err error) bool {
	return errors.Is(err, introspect.ErrBreakerOpen) || errors.Is(err, introspect.ErrTooManyLookups)
}

// errBreakerOpen is Ready's verdict while the breaker is open.
var errBreakerOpen = &introspect.UpstreamError{Reason: "circuit breaker open", Err: introspect.ErrBreakerOpen}

// sinceUnix is now minus a Unix-nanosecond time, or 0 for none.
func sinceUnix(now time.Time, ns int64) time.Duration {
	if ns == 0 {
		return 0
	}
	return now.Sub(time.Unix(0, ns))
}
