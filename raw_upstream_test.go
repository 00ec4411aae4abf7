package headless

import "github.com/allauthgo/headless/internal/rawupstream"

// A raw TCP "allauth" for the faults the stand-in cannot make, shared with
// the doors' tests (internal/rawupstream).
type rawUpstream = rawupstream.Server

var (
	newRawUpstream = rawupstream.New
	waitForPeer    = rawupstream.WaitForPeer
	refusedURL     = rawupstream.RefusedURL
	heapAfterGC    = rawupstream.HeapAfterGC
	totalAlloc     = rawupstream.TotalAlloc
)
