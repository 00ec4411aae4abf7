package cache

import "sync/atomic"

// Stats are running totals since the Cache was made.
type Stats struct {
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
	// EvictionsHeard counts eviction messages from other instances applied:
	// their keys dropped from the in-process tier and deleted from the
	// shared tier again (each message holds one or more keys).
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
	// in flight, or the caller's ready said no).
	Refreshes, RefreshSkips int64
}

type counters struct {
	// Lookups are counted on every request, from every core: spread by the
	// key's first byte over padded slots, as the in-process store is, so
	// parallel hits of different tokens do not write one cache line.
	lookups                                                              [numShards]lookupCounters
	sharedReads, fetches, coalesced, staleServes, evictions, storeErrors atomic.Int64
	refreshes, refreshSkips                                              atomic.Int64
}

type lookupCounters struct {
	hits, negativeHits, misses atomic.Int64
	_                          [40]byte
}

// Stats returns the running totals.
func (c *Cache) Stats() Stats {
	s := Stats{
		SharedReads: c.stats.sharedReads.Load(),
		Fetches:     c.stats.fetches.Load(),
		Coalesced:   c.stats.coalesced.Load(),
		StaleServes: c.stats.staleServes.Load(),
		Evictions:   c.stats.evictions.Load(),
		StoreErrors: c.stats.storeErrors.Load(),
		Rejected:    c.local.Rejected(),
		Entries:     c.local.Len(),

		Refreshes:    c.stats.refreshes.Load(),
		RefreshSkips: c.stats.refreshSkips.Load(),
	}
	for i := range c.stats.lookups {
		s.Hits += c.stats.lookups[i].hits.Load()
		s.NegativeHits += c.stats.lookups[i].negativeHits.Load()
		s.Misses += c.stats.lookups[i].misses.Load()
	}
	if c.pending != nil {
		s.PendingEvictions = c.pending.len()
		s.PendingDropped = c.pending.dropped.Load()
	}
	if c.bus != nil {
		s.Subscribed = c.bus.subscribed(c.nanos(), c.recheck)
		s.EvictionsHeard = c.bus.applied.Load()
	}
	return s
}
