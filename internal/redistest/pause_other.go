//go:build !unix

package redistest

import "testing"

// Pause skips the test: stopping a process needs SIGSTOP.
func (s *Server) Pause(tb testing.TB) { tb.Skip("redistest: Pause needs SIGSTOP (unix)") }

// Resume skips the test, as Pause does.
func (s *Server) Resume(tb testing.TB) { tb.Skip("redistest: Resume needs SIGCONT (unix)") }
