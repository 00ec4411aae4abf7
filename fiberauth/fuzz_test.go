package fiberauth_test

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// fuzzLookup reads every kind of credential, so that one input can carry
// them all at once.
const fuzzLookup = "header:X-Session-Token,header:Authorization,cookie:sessionid"

// FuzzMiddleware sends random header blocks (any bytes: repeated, odd-case
// or unknown headers, several credentials at once, CR/LF injections) through
// a server's request parser and the whole middleware, against the allauth
// stand-in. In the input, {A} and {B} stand for session keys of alice and
// bob (valid as X-Session-Token and as the sessionid cookie), {J} and {K}
// for their JWT access tokens (valid as Bearer). Whatever the input:
//
//   - nothing panics;
//   - a 200 comes only with a valid credential, in the source KeyLookup
//     picks (the first holding a non-blank value; the last sessionid
//     cookie), and names that credential's user, never another;
//   - every other answer is 401, 410 or 503 in allauth's envelope, naming
//     no user.
//
// The seed corpus runs with go test; to fuzz:
//
//	go test -run '^$' -fuzz FuzzMiddleware -fuzztime 1m ./fiberauth/
func FuzzMiddleware(f *testing.F) {
	srv := allauthtest.NewServer(allauthtest.WithJWT(allauthtest.JWTConfig{Algorithm: "HS256"}))
	f.Cleanup(srv.Close)
	srv.AddUser(allauthtest.User{ID: 1, Username: "alice"})
	srv.AddUser(allauthtest.User{ID: 2, Username: "bob"})
	a, b := srv.IssueToken("alice"), srv.IssueToken("bob")
	j, _ := srv.IssueJWT("alice")
	k, _ := srv.IssueJWT("bob")
	sessions := map[string]string{a: "alice", b: "bob"}
	jwts := map[string]string{j: "alice", k: "bob"}
	expand := strings.NewReplacer("{A}", a, "{B}", b, "{J}", j, "{K}", k)

	m := newMiddleware(f, srv, fiberauth.Config{KeyLookup: fuzzLookup})
	h := handlerApp(f, m.Handler)

	for _, seed := range []string{
		"",
		"X-Session-Token: {A}",
		"X-Session-Token: {A}\r\nX-Session-Token: {B}",
		"X-Session-Token: {A}\x00",
		"X-Session-Token: {J}",
		"x-session-token: {B}\r\nAuthorization: Basic Zm9vOmJhcg==",
		"X-Session-Token: \t \r\nCookie: sessionid={B}",
		"X-Session-Token: {A}\r\nAuthorization: Bearer {K}\r\nCookie: sessionid={B}",
		"Authorization: Bearer {J}",
		"Authorization: bEaReR {K}",
		"Authorization: Bearer\r\nCookie: sessionid={A}",
		"Authorization: Bearer {A}",
		"Authorization: Bearer {J}\r\nAuthorization: Bearer {J}",
		"Authorization: Bearer{J}\r\nX-Session-Token: {B}",
		"Cookie: sessionid={A}; sessionid={B}",
		"Cookie: sessionid={A}\r\nCookie: sessionid={B}",
		"Cookie: sessionid=\"{B}\"",
		"Cookie: sessionid={A}\\",
		"Cookie: sessionid=; sessionid={B}",
		"X-Session-Token: {A}\nX-Session-Token: {B}",
		"X-Session-Token: {A}\r\n X-Session-Token: {B}",
		"X-Session-Token : {A}",
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, headers string) {
		if len(headers) > 16<<10 {
			return
		}
		raw := "GET / HTTP/1.1\r\nHost: example.com\r\n" + expand.Replace(headers) + "\r\n\r\n"
		var fctx fasthttp.RequestCtx
		if err := fctx.Request.Read(bufio.NewReader(strings.NewReader(raw))); err != nil {
			return // the server answers 400 itself: the middleware never runs
		}
		want, pickedFrom := expectedUser(&fctx.Request.Header, sessions, jwts)
		h(&fctx)
		status, body := fctx.Response.StatusCode(), string(fctx.Response.Body())
		switch status {
		case http.StatusOK:
			if want == "" {
				t.Fatalf("200 %q without a valid credential (picked %s) for %q", body, pickedFrom, raw)
			}
			if body != want {
				t.Fatalf("200 names %q, the credential (%s) is %q's; request %q", body, pickedFrom, want, raw)
			}
		case http.StatusUnauthorized, http.StatusGone, http.StatusServiceUnavailable:
			if !strings.HasPrefix(body, `{"status": `) || strings.Contains(body, "alice") || strings.Contains(body, "bob") {
				t.Fatalf("%d with body %q", status, body)
			}
		default:
			t.Fatalf("status %d %q for %q", status, body, raw)
		}
	})
}

// expectedUser is the reference model of KeyLookup fuzzLookup: the first
// source holding a non-blank value decides alone; a repeated header decides
// "no"; the last sessionid cookie counts (as Django reads it). It returns
// the user the picked credential belongs to ("" if none) and which source
// it came from.
func expectedUser(h *fasthttp.RequestHeader, sessions, jwts map[string]string) (user, from string) {
	blank := func(b []byte) []byte { return bytes.Trim(b, " \t") }
	if vals := h.PeekAll(fiberauth.HeaderSessionToken); len(vals) > 1 {
		return "", "two X-Session-Token"
	} else if len(vals) == 1 && len(blank(vals[0])) > 0 {
		return sessions[string(blank(vals[0]))], "X-Session-Token"
	}
	if vals := h.PeekAll("Authorization"); len(vals) > 1 {
		return "", "two Authorization"
	} else if len(vals) == 1 {
		v := blank(vals[0])
		if len(v) >= 6 && strings.EqualFold(string(v[:6]), "Bearer") && (len(v) == 6 || v[6] == ' ' || v[6] == '\t') {
			if tok := blank(v[6:]); len(tok) > 0 {
				return jwts[string(tok)], "Authorization"
			}
		}
	}
	var cookie []byte
	for k, v := range h.Cookies() {
		if string(k) == "sessionid" {
			cookie = v
		}
	}
	if c := blank(cookie); len(c) > 0 {
		return sessions[string(c)], "cookie"
	}
	return "", "nothing"
}
