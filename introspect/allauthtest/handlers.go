package allauthtest

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	maxBodyBytes   = 64 << 10
	cacheControl   = "max-age=0, no-cache, no-store, must-revalidate, private"
	csrfCookieName = "csrftoken"
	csrfMaxAge     = 31449600 // Django's CSRF_COOKIE_AGE: one year
	sessionMaxAge  = 1209600  // Django's SESSION_COOKIE_AGE: two weeks
	clientApp      = "app"
	clientBrowser  = "browser"
)

// configBody is GET {mount}/{client}/v1/config as recorded.
var configBody = []byte(`{"status": 200, "data": {"account": {"login_methods": ["email", "username"], "is_open_for_signup": true, "email_verification_by_code_enabled": false, "login_by_code_enabled": false, "password_reset_by_code_enabled": false, "authentication_method": "username_email"}}}`)

func flows(pending bool) []object {
	f := []object{{{"id", "login"}}, {{"id", "signup"}}}
	if pending {
		f = append(f, object{{"id", "verify_email"}, {"is_pending", true}})
	}
	return f
}

// unauthBody is a 401 (isAuth false) or 410 (isAuth nil) answer listing the
// flows, with meta.session_token if token is non-empty.
func unauthBody(status int, pending bool, isAuth any, token string) []byte {
	meta := object{{"is_authenticated", isAuth}}
	if token != "" {
		meta = append(meta, field{"session_token", token})
	}
	return pyJSON(object{
		{"status", status},
		{"data", object{{"flows", flows(pending)}}},
		{"meta", meta},
	})
}

var (
	body401 = unauthBody(http.StatusUnauthorized, false, false, "")
	body410 = unauthBody(http.StatusGone, false, nil, "")
)

// authBody is the 200 answer for an authenticated session; extra goes to
// meta after session_token (a login's JWTs).
func authBody(user, method object, token string, extra ...field) []byte {
	meta := object{{"is_authenticated", true}}
	if token != "" {
		meta = append(meta, field{"session_token", token})
	}
	meta = append(meta, extra...)
	return pyJSON(object{
		{"status", http.StatusOK},
		{"data", object{{"user", user}, {"methods", []object{method}}}},
		{"meta", meta},
	})
}

// errorsBody is a 400 answer with allauth's errors list.
func errorsBody(errs ...object) []byte {
	return pyJSON(object{{"status", http.StatusBadRequest}, {"errors", errs}})
}

var mismatchErr = object{
	{"message", "The username and/or password you specified are not correct."},
	{"code", "username_password_mismatch"},
	{"param", "password"},
}

func requiredErr(param string) object {
	return object{{"message", "This field is required."}, {"code", "required"}, {"param", param}}
}

// serveHTTP routes a request.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	// Always consume the raw header record, so later requests on the same
	// connection stay aligned with theirs.
	token := sessionTokenHeader(r)

	rest, ok := strings.CutPrefix(r.URL.Path, s.mount+"/")
	if !ok {
		s.notFound(w, r)
		return
	}
	client, endpoint, ok := strings.Cut(rest, "/v1/")
	if !ok || (client != clientApp && client != clientBrowser) {
		s.notFound(w, r)
		return
	}
	switch endpoint {
	case "config":
		if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
			return
		}
		if client == clientBrowser {
			s.browserCookies(w, r, false)
		}
		s.writeJSON(w, r, http.StatusOK, configBody)
	case "auth/login":
		if !allowMethods(w, r, http.MethodPost) {
			return
		}
		s.login(w, r, client, token)
	case "auth/session":
		if !allowMethods(w, r, http.MethodGet, http.MethodHead, http.MethodDelete) {
			return
		}
		if r.Method == http.MethodDelete {
			s.logout(w, r, client, token)
			return
		}
		s.sessionCalls.Add(1)
		h := r.Header.Clone()
		s.lastHeader.Store(&h)
		leave := s.inFlight.enter()
		defer leave()
		if s.applyFault(w, r, s.faultFor(r, token)) {
			return
		}
		if client == clientApp {
			s.appSession(w, r, token)
		} else {
			s.browserSession(w, r)
		}
	case "tokens/refresh":
		if client != clientApp || s.jwt == nil {
			s.notFound(w, r)
			return
		}
		if !allowMethods(w, r, http.MethodPost) {
			return
		}
		s.refreshTokens(w, r)
	default:
		s.notFound(w, r)
	}
}

// allowMethods answers 405 (empty body, Allow header, as Django's View does)
// unless r uses one of methods.
func allowMethods(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeRaw(w, r, http.StatusMethodNotAllowed, "text/html; charset=utf-8", nil)
	return false
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	writeRaw(w, r, http.StatusNotFound, "text/html; charset=utf-8", []byte(notFoundHTML))
}

// securityHeaders are those Django's SecurityMiddleware adds to every answer.
func securityHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

func writeRaw(w http.ResponseWriter, r *http.Request, status int, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	securityHeaders(h)
	w.WriteHeader(status)
	if r.Method != http.MethodHead && len(body) > 0 {
		_, _ = w.Write(body)
	}
}

// writeJSON writes an allauth JSON answer with its never-cache headers.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	h := w.Header()
	h.Set("Expires", time.Now().UTC().Format(http.TimeFormat))
	h.Set("Cache-Control", cacheControl)
	writeRaw(w, r, status, "application/json", body)
}

func bearerToken(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// appSession answers GET/HEAD {mount}/app/v1/auth/session.
func (s *Server) appSession(w http.ResponseWriter, r *http.Request, token string) {
	if token == "" {
		if bt, ok := bearerToken(r); ok {
			if key, valid := s.bearerSession(bt); valid {
				token = key
			}
		}
	}
	if token == "" {
		s.writeJSON(w, r, http.StatusUnauthorized, body401)
		return
	}
	s.mu.Lock()
	v, user, method := s.lookupLocked(token)
	s.mu.Unlock()
	switch v {
	case vUnknown:
		s.writeJSON(w, r, http.StatusGone, body410)
	case vAuthenticated:
		s.writeJSON(w, r, http.StatusOK, authBody(user, method, ""))
	case vPending:
		s.writeJSON(w, r, http.StatusUnauthorized, unauthBody(http.StatusUnauthorized, true, false, ""))
	default:
		s.writeJSON(w, r, http.StatusUnauthorized, body401)
	}
}

// browserSession answers GET/HEAD {mount}/browser/v1/auth/session.
func (s *Server) browserSession(w http.ResponseWriter, r *http.Request) {
	s.browserCookies(w, r, false)
	key, present := parseCookies(r)[s.cookieName]
	if !present {
		s.writeJSON(w, r, http.StatusUnauthorized, body401)
		return
	}
	s.mu.Lock()
	v, user, method := s.lookupLocked(key)
	s.mu.Unlock()
	switch v {
	case vAuthenticated:
		s.writeJSON(w, r, http.StatusOK, authBody(user, method, ""))
	case vPending:
		s.writeJSON(w, r, http.StatusUnauthorized, unauthBody(http.StatusUnauthorized, true, false, ""))
	case vUnknown, vFlushed:
		s.clearSessionCookie(w)
		s.writeJSON(w, r, http.StatusUnauthorized, body401)
	default:
		s.writeJSON(w, r, http.StatusUnauthorized, body401)
	}
}

// logout answers DELETE {mount}/{client}/v1/auth/session.
func (s *Server) logout(w http.ResponseWriter, r *http.Request, client, token string) {
	if client == clientBrowser {
		if !csrfOK(r) {
			s.csrfFailure(w, r)
			return
		}
		s.browserCookies(w, r, false)
		key, present := parseCookies(r)[s.cookieName]
		if present {
			s.Logout(key)
			s.clearSessionCookie(w)
		}
		s.writeJSON(w, r, http.StatusUnauthorized, body401)
		return
	}
	if token == "" {
		if bt, ok := bearerToken(r); ok {
			token, _ = s.bearerSession(bt)
		}
	}
	if token == "" {
		s.writeJSON(w, r, http.StatusUnauthorized, body401)
		return
	}
	s.mu.Lock()
	_, known := s.sessions[token]
	delete(s.sessions, token)
	s.mu.Unlock()
	if !known {
		s.writeJSON(w, r, http.StatusGone, body410)
		return
	}
	s.writeJSON(w, r, http.StatusUnauthorized, body401)
}
