package allauthtest

import "sync/atomic"

// inFlight counts the session lookups being served, and the most at once.
type inFlight struct {
	now, peak atomic.Int64
}

// enter counts a lookup in; the returned func counts it out.
func (f *inFlight) enter() func() {
	n := f.now.Add(1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	return func() { f.now.Add(-1) }
}

// InFlight reports how many session lookups (the requests SessionCalls
// counts) are being served now, a Fault's Delay included.
func (s *Server) InFlight() int64 { return s.inFlight.now.Load() }

// MaxInFlight reports the most session lookups served at once since
// creation or the last ResetCounters: how much concurrency a client put on
// allauth.
func (s *Server) MaxInFlight() int64 { return s.inFlight.peak.Load() }
