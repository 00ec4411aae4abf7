package headless

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/allauthgo/headless/internal/allauth"
	"github.com/allauthgo/headless/internal/cache"

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
		// No request's context: the state belongs to the client.
		log := logger.Warn
		if to == introspect.BreakerClosed {
			log = logger.Info
		}
		log("allauth circuit breaker", "from", from.String(), "to", to.String())
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

// ask is the cache's fetch: it asks allauth about cred (a cache miss, one
// per coalesced miss) and records the lookup: its duration by status class,
// when allauth last answered or failed, the status on the lookup's span in
// ctx, and, on failure, one log line with the status, its class and the
// duration, naming the credential by a hash prefix of its cache key, never
// by the token.
func (a *Authenticator) ask(ctx context.Context, kind introspect.Kind, key cache.Key, cred allauth.Credential) (*introspect.Session, error) {
	start := time.Now()
	s, err := a.client.Session(ctx, cred)
	end := time.Now()
	took := end.Sub(start)
	traceCall(ctx, err)

	var auth *introspect.AuthError
	var up *introspect.UpstreamError
	switch {
	case err != nil && refusedLocally(err):
		// No request was made: counted in Metrics.Protection.
	case err == nil:
		a.obs.upstream[Class2xx].observe(took)
		a.obs.answered(true, end)
	case errors.As(err, &auth):
		if allauth.IsLocal(err) {
			break // decided without a request
		}
		a.obs.upstream[ClassOf(auth.Status)].observe(took)
		a.obs.answered(true, end)
	case errors.As(err, &up):
		class := ClassOf(up.Status)
		a.obs.upstream[class].observe(took)
		a.obs.upstreamErrors.Add(1)
		a.obs.answered(false, end)
		a.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "allauth lookup failed",
			slog.String("kind", kind.String()),
			slog.String("key", key.Short()),
			slog.Int("status", up.Status),
			slog.String("class", class.String()),
			slog.Duration("duration", took),
			slog.String("error", up.Error()))
	}
	return s, err
}
