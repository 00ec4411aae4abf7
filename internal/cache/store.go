package cache

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/allauthgo/headless/introspect"
)

// entry is one cached answer of allauth.
type entry struct {
	// Session is set for an authenticated answer and nil for a negative one.
	Session *introspect.Session
	// Status is allauth's status: 200, 401 or 410.
	Status int
	// ObtainedAt is when allauth gave the answer (Unix nanoseconds). A
	// reader of a shared value never serves it past ObtainedAt plus its own
	// TTL, whichever instance wrote it.
	ObtainedAt int64
	// FreshUntil is when the answer stops being served as fresh (Unix
	// nanoseconds).
	FreshUntil int64
	// StaleUntil is the last moment an authenticated answer may be served as
	// stale while allauth fails (Unix nanoseconds); 0 for never.
	StaleUntil int64

	// checkedAt is when the shared tier last vouched for an in-process copy
	// (Unix nanoseconds), 0 for an entry that lives in process only (no
	// Storage, or a verified JWT). See Cache.usable.
	checkedAt int64
	// refreshAt is when a hit asks for a refresh (0: never, see refresh.go);
	// refreshing is set by the one hit that asked.
	refreshAt  int64
	refreshing atomic.Bool
	// proof is, for a verified JWT's entry (Cache.RememberToken), what a
	// hit must present: see tokenProof. Empty for every other entry.
	proof string
}

// negative reports whether the entry is allauth's 401 or 410.
func (e *entry) negative() bool { return e.Session == nil }

// keepUntil is when the entry is of no more use, fresh or stale.
func (e *entry) keepUntil() int64 { return max(e.FreshUntil, e.StaleUntil) }

// authError returns the error a negative entry stands for. The errors are
// shared and hold no flows: flows are not cached.
func (e *entry) authError() error {
	if e.Status == http.StatusGone {
		return errCachedGone
	}
	return errCachedUnauthenticated
}

var (
	errCachedGone            = &introspect.AuthError{Status: http.StatusGone}
	errCachedUnauthenticated = &introspect.AuthError{Status: http.StatusUnauthorized}
)

// Storage is the shared key-value store the Cache can use as its second
// tier: the method set of Fiber's fiber.Storage, so that every gofiber/storage
// driver (Redis, Memcached, ...) and any Fiber v2 or v3 Storage fits as is.
type Storage interface {
	// Get returns the value under key, or nil (and no error) if there is none.
	Get(key string) ([]byte, error)
	// Set stores val under key for exp (0: no expiry).
	Set(key string, val []byte, exp time.Duration) error
	// Delete removes key; a missing key is no error.
	Delete(key string) error
	// Reset removes every key.
	Reset() error
	// Close closes the storage.
	Close() error
}
