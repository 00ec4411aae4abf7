package headless

import (
	"github.com/allauthgo/headless/internal/allauth"
	"github.com/allauthgo/headless/internal/cache"
)

// The defaults Config (and every front door's ConfigDefault) fills in.
const (
	DefaultTimeout      = allauth.DefaultTimeout    // Config.Timeout: one allauth lookup
	DefaultCacheTTL     = cache.DefaultTTL          // Config.CacheTTL
	DefaultNegativeTTL  = cache.DefaultNegativeTTL  // Config.NegativeTTL
	DefaultMaxEntries   = cache.DefaultMaxEntries   // Config.MaxEntries
	DefaultRecheck      = cache.DefaultRecheck      // Config.Recheck
	DefaultPrefix       = cache.DefaultPrefix       // Config.Prefix
	DefaultStoreTimeout = cache.DefaultStoreTimeout // Config.StoreTimeout
)

// MaxKeysPerUser bounds how many cached sessions the user index
// (Config.UserIndex) keeps for one user: when a user's sessions fill it, the
// one that expires first is forgotten by the index, so EvictUser no longer
// drops it (it ends at its TTL).
const MaxKeysPerUser = cache.MaxKeysPerUser

// ErrNoUserIndex is returned by EvictUser when Config.UserIndex is off.
var ErrNoUserIndex = cache.ErrNoUserIndex
