package allauthtest

import (
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The browser client's cookies and CSRF check, as Django sets and checks them.

// parseCookies reads the Cookie headers as Django's parse_cookie does: split
// on ";", then on the first "=", both parts stripped, quotes removed; a later
// cookie of the same name wins.
func parseCookies(r *http.Request) map[string]string {
	out := make(map[string]string)
	for _, line := range r.Header.Values("Cookie") {
		for _, chunk := range strings.Split(line, ";") {
			k, v, ok := strings.Cut(chunk, "=")
			if !ok {
				k, v = "", chunk
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if k != "" || v != "" {
				out[k] = v
			}
		}
	}
	return out
}

func cookieExpires(maxAge int) string {
	return time.Now().Add(time.Duration(maxAge) * time.Second).UTC().Format(http.TimeFormat)
}

// browserCookies adds Vary: Cookie and (re)sets the csrftoken cookie as
// Django's CsrfViewMiddleware does for allauth's browser views: the request's
// token is sent back, a fresh one if it had none or rotate is set (login).
func (s *Server) browserCookies(w http.ResponseWriter, r *http.Request, rotate bool) {
	tok := parseCookies(r)[csrfCookieName]
	if rotate || !validCSRFSecret(tok) {
		tok = randomString(32, csrfChars)
	}
	h := w.Header()
	h.Set("Vary", "Cookie")
	h.Add("Set-Cookie", csrfCookieName+"="+tok+"; expires="+cookieExpires(csrfMaxAge)+
		"; Max-Age="+strconv.Itoa(csrfMaxAge)+"; Path=/; SameSite=Lax")
}

func (s *Server) setSessionCookie(w http.ResponseWriter, key string) {
	w.Header().Add("Set-Cookie", s.cookieName+"="+key+"; expires="+cookieExpires(sessionMaxAge)+
		"; HttpOnly; Max-Age="+strconv.Itoa(sessionMaxAge)+"; Path=/; SameSite=Lax")
}

func (s *Server) clearSessionCookie(w http.ResponseWriter) {
	w.Header().Add("Set-Cookie", s.cookieName+
		`=""; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/; SameSite=Lax`)
}

func validCSRFSecret(tok string) bool {
	if len(tok) != 32 {
		return false
	}
	for i := 0; i < len(tok); i++ {
		if strings.IndexByte(csrfChars, tok[i]) < 0 {
			return false
		}
	}
	return true
}

// csrfOK reports whether the X-CSRFToken header matches the csrftoken
// cookie, either verbatim (32 characters) or masked the way Django's
// get_token masks it (64 characters).
func csrfOK(r *http.Request) bool {
	secret := parseCookies(r)[csrfCookieName]
	if !validCSRFSecret(secret) {
		return false
	}
	hdr := r.Header.Get("X-CSRFToken")
	if len(hdr) == 64 {
		mask, cipher := hdr[:32], hdr[32:]
		plain := make([]byte, 32)
		n := len(csrfChars)
		for i := range 32 {
			m, c := strings.IndexByte(csrfChars, mask[i]), strings.IndexByte(csrfChars, cipher[i])
			if m < 0 || c < 0 {
				return false
			}
			plain[i] = csrfChars[((c-m)%n+n)%n]
		}
		hdr = string(plain)
	}
	return subtle.ConstantTimeCompare([]byte(hdr), []byte(secret)) == 1
}

func (s *Server) csrfFailure(w http.ResponseWriter, r *http.Request) {
	writeRaw(w, r, http.StatusForbidden, "text/html; charset=utf-8", []byte(csrfFailureHTML))
}
