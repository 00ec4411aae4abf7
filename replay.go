package headless

import (
	"crypto/sha256"
	"sync"
)

// replaySet remembers accepted signatures until they would be stale anyway.
// It is bounded: when full, the oldest signature is forgotten first.
type replaySet struct {
	mu   sync.Mutex
	max  int
	seen map[[sha256.Size]byte]int64 // signature → expiry, Unix nanoseconds
	fifo []replayRec                 // a ring, in insertion order
	head int
	n    int
}

type replayRec struct {
	sig     [sha256.Size]byte
	expires int64
}

func newReplaySet(maxEntries int) *replaySet {
	return &replaySet{max: maxEntries, seen: make(map[[sha256.Size]byte]int64)}
}

// has reports whether sig is recorded and not expired at now.
func (r *replaySet) has(sig [sha256.Size]byte, now int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	exp, ok := r.seen[sig]
	return ok && exp > now
}

// add records sig until expires and reports whether it was new (or its
// earlier record had expired).
func (r *replaySet) add(sig [sha256.Size]byte, expires, now int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Records are about in expiry order (timestamps are within ±MaxSkew of
	// now): drop the expired ones at the head.
	for r.n > 0 && r.fifo[r.head].expires <= now {
		r.pop()
	}
	if exp, ok := r.seen[sig]; ok && exp > now {
		return false
	}
	if r.n == r.max {
		r.pop()
	}
	if r.n == len(r.fifo) { // grow the ring, up to max
		grown := make([]replayRec, min(max(2*len(r.fifo), 64), r.max))
		for i := range r.n {
			grown[i] = r.fifo[(r.head+i)%len(r.fifo)]
		}
		r.fifo, r.head = grown, 0
	}
	r.fifo[(r.head+r.n)%len(r.fifo)] = replayRec{sig: sig, expires: expires}
	r.n++
	r.seen[sig] = expires
	return true
}

func (r *replaySet) pop() {
	rec := r.fifo[r.head]
	if r.seen[rec.sig] == rec.expires { // not re-added since
		delete(r.seen, rec.sig)
	}
	r.head = (r.head + 1) % len(r.fifo)
	r.n--
}
