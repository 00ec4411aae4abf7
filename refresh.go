package headless

import (
	"context"

	"github.com/allauthgo/headless/internal/allauth"
	"github.com/allauthgo/headless/internal/cache"
	"github.com/allauthgo/headless/introspect"
)

// maxRefreshes is how many background refreshes (Config.RefreshAhead) may be
// in flight: half the lookup slots, so that refreshes never take the slots
// that misses (requests that do wait) need.
func maxRefreshes(maxLookups int) int {
	if maxLookups <= 0 {
		return cache.DefaultMaxRefreshes
	}
	return max(1, maxLookups/2)
}

// refreshAhead starts the background refresh a cache hit asked for. value
// aliases the request's buffer: it is copied, since the refresh outlives the
// request. Nothing is refreshed while the breaker is not closed: allauth is
// failing, and the entry can wait for its expiry as it would have.
func (a *Authenticator) refreshAhead(src *Source, key cache.Key, value []byte, hit cache.Result) {
	cred := allauth.Credential{Kind: src.kind, Token: string(value)}
	kind := src.kind
	a.cache.Refresh(key, hit, a.breakerClosed, func(ctx context.Context) (*introspect.Session, error) {
		return a.ask(ctx, kind, key, cred) // records, logs and traces the call (lookup.go)
	})
}

// breakerClosed reports whether the client's circuit breaker lets lookups
// through (it is closed, or off).
func (a *Authenticator) breakerClosed() bool {
	return a.client.Protection().Breaker == introspect.BreakerClosed
}
