package allauthtest

import (
	"crypto/rand"
	"time"
)

// sessionState is what a session row says about its owner.
type sessionState int

const (
	stateAuthenticated sessionState = iota // logged in
	stateAnonymous                         // a row without a user (e.g. an inactive user's failed login)
	statePending                           // login stopped at e-mail verification
)

// session is one Django session row; its key is both the app session token
// and the browser session cookie value.
type session struct {
	user   *userRec // nil for stateAnonymous
	state  sessionState
	pwGen  int
	method object // the data.methods entry
}

// verdict is what a session lookup found.
type verdict int

const (
	vUnknown       verdict = iota // no such row: app 410, browser 401 and cookie cleared
	vAuthenticated                // 200
	vAnonymous                    // 401 plain flows, row kept
	vPending                      // 401 with the pending verify_email flow
	vFlushed                      // 401 plain flows, row deleted now (password changed)
)

const (
	keyChars  = "abcdefghijklmnopqrstuvwxyz0123456789"
	csrfChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
)

// randomString returns n characters from alphabet, read from crypto/rand
// without modulo bias (as Django's get_random_string).
func randomString(n int, alphabet string) string {
	out := make([]byte, 0, n)
	limit := 256 - 256%len(alphabet)
	buf := make([]byte, n+n/2)
	for len(out) < n {
		_, _ = rand.Read(buf) // crypto/rand.Read never fails (Go 1.24+ it aborts the program instead)
		for _, c := range buf {
			if int(c) < limit {
				out = append(out, alphabet[int(c)%len(alphabet)])
				if len(out) == n {
					break
				}
			}
		}
	}
	return string(out)
}

// unixFloat is time.time() of Python: Unix seconds as a float.
func unixFloat(t time.Time) float64 {
	return float64(t.UnixNano()) / 1e9
}

// passwordMethod is the data.methods entry of a password login; byEmail
// says whether the login named the user by e-mail.
func passwordMethod(u User, byEmail bool) object {
	m := object{{"method", "password"}, {"at", unixFloat(time.Now())}}
	if byEmail || u.Username == "" {
		return append(m, field{"email", u.Email})
	}
	return append(m, field{"username", u.Username})
}

// newSessionLocked stores a new session row and returns its key.
func (s *Server) newSessionLocked(sess *session) string {
	for {
		key := randomString(32, keyChars)
		if _, taken := s.sessions[key]; !taken {
			s.sessions[key] = sess
			return key
		}
	}
}

// lookupLocked classifies the session row key and, for vAuthenticated,
// returns a snapshot of the data the 200 answer needs.
func (s *Server) lookupLocked(key string) (v verdict, user, method object) {
	sess, ok := s.sessions[key]
	if !ok {
		return vUnknown, nil, nil
	}
	switch sess.state {
	case stateAnonymous:
		return vAnonymous, nil, nil
	case statePending:
		if sess.user.deleted {
			return vAnonymous, nil, nil
		}
		return vPending, nil, nil
	default:
	}
	rec := sess.user
	switch {
	case rec.deleted:
		return vAnonymous, nil, nil
	case rec.pwGen != sess.pwGen:
		delete(s.sessions, key)
		return vFlushed, nil, nil
	case rec.u.Inactive:
		return vAnonymous, nil, nil
	}
	return vAuthenticated, userObject(rec.u), sess.method
}

// issueLocked creates a password-login session for rec, pending if the user
// awaits e-mail verification.
func (s *Server) issueLocked(rec *userRec, byEmail bool) string {
	st := stateAuthenticated
	if rec.u.PendingEmailVerification {
		st = statePending
	}
	return s.newSessionLocked(&session{user: rec, state: st, pwGen: rec.pwGen, method: passwordMethod(rec.u, byEmail)})
}

// IssueToken creates a session for the user as if it had logged in with its
// password by username, and returns the app session token (32 characters of
// [a-z0-9]). The same value works as a browser session cookie. For a user
// with PendingEmailVerification the session is pending (401 with the
// verify_email flow); for an inactive user it answers 401 until SetActive
// reactivates it. It returns "" if there is no user with that username (or
// e-mail).
func (s *Server) IssueToken(username string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.findLocked(username)
	if rec == nil {
		return ""
	}
	return s.issueLocked(rec, false)
}

// IssueCookie is IssueToken for the browser client: it returns a value for
// the session cookie (see SessionCookieName). Django uses one session key for
// both, so the value also works as an X-Session-Token. It returns "" if there
// is no such user.
func (s *Server) IssueCookie(username string) string {
	return s.IssueToken(username)
}

// Logout ends the session with that token or cookie value: afterwards the app
// endpoint answers 410 and the browser endpoint 401 for it. Under WithJWT a
// valid access or refresh token ends the session it names (its access
// tokens then answer 410). An unknown value is ignored.
func (s *Server) Logout(token string) {
	if key, ok := s.jwtSessionKey(token); ok {
		token = key
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, token)
}

// Sessions reports how many session rows exist (including those of inactive
// or deleted users and pending logins).
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}
