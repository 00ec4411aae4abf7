package allauthtest

import (
	"net/http"
	"strconv"
	"time"
)

// Fault makes the session endpoints (GET and HEAD of
// {mount}/app/v1/auth/session and {mount}/browser/v1/auth/session)
// misbehave, to test a client's error handling. Other endpoints are never
// affected. The zero Fault is no fault. The parts apply in this order:
// Delay, then Drop, then Body, then Status; a Fault with only Delay set
// answers normally after the delay.
type Fault struct {
	// Status, if non-zero, answers this HTTP status with an allauth-like body
	// {"status": N} (Content-Type application/json and allauth's
	// Cache-Control) instead of looking at the credential.
	Status int
	// RetryAfter, if non-empty, is sent as the Retry-After header with
	// Status or Body.
	RetryAfter string
	// Delay waits this long before answering. If the client goes away or the
	// Server is closed first, the wait ends at once and the connection is
	// closed without an answer, so Close never hangs. A Delay longer than
	// any client's timeout (e.g. time.Hour) is an allauth that hangs; a
	// short one (e.g. 100 ms) a slow allauth, whose concurrency the client
	// sets (see MaxInFlight).
	Delay time.Duration
	// Drop closes the connection without answering (the client sees EOF or a
	// connection reset).
	Drop bool
	// Body, if non-empty, is sent verbatim with status Status (200 if Status
	// is 0) and Content-Type ContentType: for garbage, HTML or truncated
	// bodies.
	Body string
	// ContentType is the Content-Type of Body; "" means "application/json".
	ContentType string
}

// SetFault replaces the current fault; SetFault(Fault{}) switches faults off.
// It is safe to call while requests are being served; requests already past
// the fault check are not affected.
func (s *Server) SetFault(f Fault) {
	if f == (Fault{}) {
		s.fault.Store(nil)
		return
	}
	s.fault.Store(&f)
}

// credFault is a Fault for chosen credentials (SetCredentialFault).
type credFault struct {
	match func(credential string) bool
	fault Fault
}

// SetCredentialFault makes f apply only to the session lookups whose
// credential (the X-Session-Token, the Bearer token, or the session cookie
// on the browser endpoint) match reports true for, e.g. one client's tokens
// that make allauth hang or fail while everyone else is answered. It is
// checked before the fault of SetFault. A request without a credential (a
// ping) is never matched. SetCredentialFault(nil, Fault{}) switches it off;
// match is called concurrently and must be safe for that.
func (s *Server) SetCredentialFault(match func(credential string) bool, f Fault) {
	if match == nil {
		s.credFault.Store(nil)
		return
	}
	s.credFault.Store(&credFault{match: match, fault: f})
}

// faultFor returns the fault for a session lookup carrying token (its
// X-Session-Token), or nil.
func (s *Server) faultFor(r *http.Request, token string) *Fault {
	if cf := s.credFault.Load(); cf != nil {
		cred := token
		if cred == "" {
			cred, _ = bearerToken(r)
		}
		if cred == "" {
			cred = parseCookies(r)[s.cookieName]
		}
		if cred != "" && cf.match(cred) {
			return &cf.fault
		}
	}
	return s.fault.Load()
}

// CurrentFault returns the fault in force (the zero Fault if none).
func (s *Server) CurrentFault() Fault {
	if f := s.fault.Load(); f != nil {
		return *f
	}
	return Fault{}
}

// applyFault runs the fault f, if any. It reports whether the request was
// fully handled (answered, dropped, or abandoned).
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, f *Fault) bool {
	if f == nil || *f == (Fault{}) {
		return false
	}
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			dropConn(w) // the client is gone; make sure nothing is answered
			return true
		case <-s.closing:
			t.Stop()
			dropConn(w)
			return true
		}
	}
	switch {
	case f.Drop:
		dropConn(w)
		return true
	case f.Body != "":
		st := f.Status
		if st == 0 {
			st = http.StatusOK
		}
		ct := f.ContentType
		if ct == "" {
			ct = "application/json"
		}
		h := w.Header()
		h.Set("Content-Type", ct)
		h.Set("Content-Length", strconv.Itoa(len(f.Body)))
		if f.RetryAfter != "" {
			h.Set("Retry-After", f.RetryAfter)
		}
		w.WriteHeader(st)
		_, _ = w.Write([]byte(f.Body))
		return true
	case f.Status != 0:
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		s.writeJSON(w, r, f.Status, pyJSON(object{{"status", f.Status}}))
		return true
	}
	return false
}

// dropConn closes the client connection without an answer. When the writer
// cannot be hijacked (e.g. Handler mounted under HTTP/2 or a recorder) it
// aborts the handler with http.ErrAbortHandler, which net/http turns into a
// broken connection or stream.
func dropConn(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			_ = c.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}
