package headless

// CacheStats are the cache's running totals since New, in [Metrics]. The
// in-process tier is this instance's; the shared tier is Config.Storage.
type CacheStats struct {
	Hits         int64 // fresh authenticated answers served from the in-process tier
	NegativeHits int64 // fresh 401/410 answers served from the in-process tier
	Misses       int64 // in-process lookups that found nothing usable
	SharedReads  int64 // reads of the shared tier (one per coalesced miss)
	Fetches      int64 // calls made to allauth (one per coalesced miss)
	Coalesced    int64 // Loads that waited on another's fetch instead of fetching
	StaleServes  int64 // expired sessions served because allauth failed
	Evictions    int64 // keys dropped by Evict and EvictUser
	StoreErrors  int64 // shared-store failures and unreadable, forged or future values, each a miss
	Rejected     int64 // entries the full in-process tier declined
	Entries      int   // entries held in the in-process tier now
	// Subscribed is true while evictions from other instances arrive by
	// Redis pub/sub and the subscription has proven itself within Recheck.
	Subscribed bool
	// EvictionsHeard counts eviction messages from other instances applied
	// to the in-process tier (each drops one or more keys).
	EvictionsHeard int64
	// PendingEvictions is how many keys wait in the retry queue now: evictions
	// whose delete from the shared store or message to the other instances
	// failed, and deletes that allauth's 401/410 asked for while the store
	// failed. They are retried every Recheck/4 until Redis takes them.
	PendingEvictions int
	// PendingDropped counts keys the full retry queue could not keep
	// (100,000 evictions, 10,000 other deletes): those end at their TTL.
	PendingDropped int64
	// Refreshes counts background refreshes started (Config.RefreshAhead);
	// RefreshSkips those a hit asked for but that did not start (too many
	// in flight, or the circuit breaker not closed).
	Refreshes, RefreshSkips int64
}
