package cache

import (
	"context"
	"net/http"
	"time"

	"github.com/allauthgo/headless/introspect"
)

// Entry is one cached answer of allauth.
type Entry struct {
	// Session is set for an authenticated answer and nil for a negative one.
	Session *introspect.Session
	// Status is allauth's status: 200, 401 or 410.
	Status int
	// FreshUntil is when the answer stops being served as fresh (Unix
	// nanoseconds). An authenticated entry may still be served as stale after
	// it, within StaleIfError, while allauth fails.
	FreshUntil int64
}

// negative reports whether the entry is allauth's 401 or 410.
func (e *Entry) negative() bool { return e.Session == nil }

// authError returns the error a negative entry stands for. The errors are
// shared and hold no flows: flows are not cached.
func (e *Entry) authError() error {
	if e.Status == http.StatusGone {
		return errCachedGone
	}
	return errCachedUnauthenticated
}

var (
	errCachedGone            = &introspect.AuthError{Status: http.StatusGone}
	errCachedUnauthenticated = &introspect.AuthError{Status: http.StatusUnauthorized}
)

// Store keeps entries. Implementations must be safe for concurrent use. A
// Store reports a miss as (nil, nil); an error means the store itself
// failed, which the Cache counts and treats as a miss.
type Store interface {
	// Get returns the entry under key, or nil if there is none.
	Get(ctx context.Context, key Key) (*Entry, error)
	// Set stores e under key for at most ttl; the store may decline to keep
	// it (a full in-process store does).
	Set(ctx context.Context, key Key, e *Entry, ttl time.Duration) error
	// Delete removes the entry under key; removing a missing key is no error.
	Delete(ctx context.Context, key Key) error
	// Len returns how many entries the store holds, or -1 if it cannot tell.
	Len() int
	// Close releases what the store started (such as a janitor goroutine).
	// It does not close a fiber.Storage passed in by the caller.
	Close() error
}
