package allauthtest

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
)

// Logging in, as allauth's app and browser clients do.

// badRequest is Django's answer to a body that is not JSON: 400, empty.
func badRequest(w http.ResponseWriter, r *http.Request) {
	writeRaw(w, r, http.StatusBadRequest, "text/html; charset=utf-8", nil)
}

// readLoginInput parses a login body as allauth does: an empty body is {}.
func readLoginInput(w http.ResponseWriter, r *http.Request) (map[string]any, bool) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		return nil, false
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return map[string]any{}, true
	}
	var in map[string]any
	if err := json.Unmarshal(raw, &in); err != nil || in == nil {
		return nil, false
	}
	return in, true
}

func stringField(in map[string]any, k string) string {
	v, _ := in[k].(string)
	return v
}

// login answers POST {mount}/{client}/v1/auth/login.
func (s *Server) login(w http.ResponseWriter, r *http.Request, client, token string) {
	// The credential this request already carries.
	current := token
	if client == clientBrowser {
		if !csrfOK(r) {
			s.csrfFailure(w, r)
			return
		}
		current = parseCookies(r)[s.cookieName]
	} else if current != "" {
		s.mu.Lock()
		_, known := s.sessions[current]
		s.mu.Unlock()
		if !known {
			s.writeJSON(w, r, http.StatusGone, body410)
			return
		}
	}

	in, ok := readLoginInput(w, r)
	if !ok {
		badRequest(w, r)
		return
	}
	username, email, password := stringField(in, "username"), stringField(in, "email"), stringField(in, "password")
	var errs []object
	if username == "" && email == "" {
		errs = append(errs, requiredErr("username"))
	}
	if password == "" {
		errs = append(errs, requiredErr("password"))
	}
	if len(errs) > 0 {
		s.loginAnswer(w, r, client, http.StatusBadRequest, errorsBody(errs...))
		return
	}

	s.mu.Lock()
	var rec *userRec
	byEmail := username == ""
	if byEmail {
		rec = s.byEmailLocked(email)
	} else {
		rec = s.users[username]
	}
	if rec == nil || rec.u.Password == "" ||
		subtle.ConstantTimeCompare([]byte(rec.u.Password), []byte(password)) != 1 {
		s.mu.Unlock()
		s.loginAnswer(w, r, client, http.StatusBadRequest, errorsBody(mismatchErr))
		return
	}
	if current != "" {
		if v, _, _ := s.lookupLocked(current); v == vAuthenticated {
			s.mu.Unlock()
			s.loginAnswer(w, r, client, http.StatusConflict, pyJSON(object{{"status", http.StatusConflict}}))
			return
		}
		delete(s.sessions, current) // Django cycles the session key on login
	}
	var (
		key    string
		status = http.StatusUnauthorized
		body   []byte
	)
	appToken := func(k string) string {
		if client == clientApp {
			return k
		}
		return ""
	}
	switch {
	case rec.u.Inactive:
		key = s.newSessionLocked(&session{state: stateAnonymous})
		body = unauthBody(status, false, false, appToken(key))
	case rec.u.PendingEmailVerification:
		key = s.issueLocked(rec, byEmail)
		body = unauthBody(status, true, false, appToken(key))
	default:
		key = s.issueLocked(rec, byEmail)
		sess := s.sessions[key]
		status = http.StatusOK
		body = authBody(userObject(rec.u), sess.method, appToken(key), s.loginTokensLocked(client, rec, key)...)
	}
	s.mu.Unlock()
	if client == clientBrowser {
		s.browserCookies(w, r, true)
		s.setSessionCookie(w, key)
	}
	s.writeJSON(w, r, status, body)
}

// loginAnswer writes a login answer that creates no session.
func (s *Server) loginAnswer(w http.ResponseWriter, r *http.Request, client string, status int, body []byte) {
	if client == clientBrowser {
		s.browserCookies(w, r, false)
	}
	s.writeJSON(w, r, status, body)
}
