package fiberauth_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// Lookups of the hostile-input table.
const (
	lookupToken  = "header:X-Session-Token"
	lookupBearer = "header:Authorization"
	lookupCookie = "cookie:sessionid"
	lookupBoth   = "header:X-Session-Token,cookie:sessionid"
)

// hostileCase is one row of the documented answers to hostile credentials.
type hostileCase struct {
	name    string
	lookup  string
	headers []pair
	status  int
	code    string // error code, or "" for a 200
	user    string // the user named on a 200
	www     string // WWW-Authenticate, "" for none
	calls   int64  // session lookups allauth receives
}

// hostileCases are the hostile credentials whose reading is Fiber's
// (header names in any case, repeated headers, the Cookie header parsed by
// fasthttp: quoted values, several lines, the last of two cookies) or whose
// bytes only a request built in process can carry (NUL, CR LF, 1 MiB), and
// the one answer each gets from the middleware. The full list of hostile
// credentials and the core's answers is the root package's
// hostile_test.go. Each row is what the middleware sees after the server
// parsed the request (see Test_Hostile_Input_OverHTTP for what a server in
// front of it refuses first). A credential reaches allauth only if it is
// well formed: every row with calls 0 is decided locally. tok, jwt and cookie are valid
// credentials of alice, bob's token is bobTok.
func hostileCases(tok, bobTok, jwt, cookie string) []hostileCase {
	mib := strings.Repeat("a", 1<<20)
	const (
		na   = headless.CodeNotAuthenticated
		gone = headless.CodeSessionGone
		inv  = `Bearer error="invalid_token"`
	)
	h := func(kv ...string) []pair {
		var out []pair
		for i := 0; i+1 < len(kv); i += 2 {
			out = append(out, pair{kv[i], kv[i+1]})
		}
		return out
	}
	xst := fiberauth.HeaderSessionToken
	return []hostileCase{
		// X-Session-Token.
		{"token: valid (control)", lookupToken, h(xst, tok), 200, "", "alice", "", 1},
		{"token: header name in odd case", lookupToken, h("x-SESSION-token", tok), 200, "", "alice", "", 1},
		{"token: 1 MiB", lookupToken, h(xst, mib), 410, gone, "", "", 0},
		{"token: NUL inside", lookupToken, h(xst, tok[:16]+"\x00"+tok[16:]), 410, gone, "", "", 0},
		{"token: CRLF header injection", lookupToken, h(xst, tok+"\r\nX-Admin: 1"), 410, gone, "", "", 0},
		{"token: two headers, alice's and bob's", lookupToken, h(xst, tok, "x-session-token", bobTok), 410, gone, "", "", 0},
		{"token: two headers, one empty", lookupToken, h(xst, "", xst, tok), 410, gone, "", "", 0},

		// Authorization: Bearer.
		{"bearer: valid JWT (control)", lookupBearer, h("Authorization", "Bearer "+jwt), 200, "", "alice", "", 1},
		{"bearer: 1 MiB", lookupBearer, h("Authorization", "Bearer "+mib), 401, na, "", inv, 0},
		{"bearer: two headers", lookupBearer, h("Authorization", "Bearer "+jwt, "Authorization", "Bearer "+jwt), 401, na, "", inv, 0},

		// Cookie (allauth's browser endpoint never says 410).
		{"cookie: valid (control)", lookupCookie, h("Cookie", "sessionid="+cookie), 200, "", "alice", "", 1},
		{"cookie: among others", lookupCookie, h("Cookie", "theme=dark; sessionid="+cookie+"; lang=en"), 200, "", "alice", "", 1},
		{"cookie: quoted value (unquoted, as Django does)", lookupCookie, h("Cookie", `sessionid="`+cookie+`"`), 200, "", "alice", "", 1},
		{"cookie: two sessionid cookies: the last, as Django", lookupCookie, h("Cookie", "sessionid="+bobTok+"; sessionid="+cookie), 200, "", "alice", "", 1},
		{"cookie: two Cookie lines: the last sessionid", lookupCookie, h("Cookie", "sessionid="+bobTok, "Cookie", "sessionid="+cookie), 200, "", "alice", "", 1},
		{"cookie: 1 MiB", lookupCookie, h("Cookie", "sessionid="+mib), 401, na, "", "", 0},
		{"cookie: NUL", lookupCookie, h("Cookie", "sessionid="+cookie+"\x00"), 401, na, "", "", 0},

		// A cookie and a header at once: the first source of KeyLookup that
		// holds a value decides alone.
		{"both: header and cookie, header first", lookupBoth, h(xst, tok, "Cookie", "sessionid=x"+cookie[1:]), 200, "", "alice", "", 1},
		{"both: blank header, cookie used", lookupBoth, h(xst, " ", "Cookie", "sessionid="+cookie), 200, "", "alice", "", 1},
	}
}

// Test_Hostile_Input is the single documented list of hostile credentials
// (see hostileCases): each gets exactly one answer, in allauth's error
// envelope, and allauth is asked only about well-formed ones (upstream calls
// are counted per row). Rows run straight through app.Handler(), so the
// middleware sees the bytes as given (app.Test would serialize the request
// with net/http, which turns CR and LF into spaces, and a server's read
// buffer refuses big headers first: see Test_Hostile_Input_OverHTTP).
func Test_Hostile_Input(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t, allauthtest.WithJWT(allauthtest.JWTConfig{Algorithm: "HS256"}))
	tok, bobTok, cookie := srv.IssueToken("alice"), srv.IssueToken("bob"), srv.IssueCookie("alice")
	jwt, _ := srv.IssueJWT("alice")
	if tok == "" || bobTok == "" || cookie == "" || jwt == "" {
		t.Fatal("stand-in issued no credential")
	}
	secrets := []string{tok, bobTok, cookie, jwt}

	for _, tc := range hostileCases(tok, bobTok, jwt, cookie) {
		// A middleware per row, without negative caching: the calls of a row
		// are its own.
		h := handlerApp(t, newMiddleware(t, srv, fiberauth.Config{KeyLookup: tc.lookup, NegativeTTL: -1}).Handler)
		before := srv.SessionCalls()
		a := serveDirect(h, tc.headers...)
		calls := srv.SessionCalls() - before

		if a.Status != tc.status {
			t.Errorf("%s: status %d, want %d (body %q)", tc.name, a.Status, tc.status, a.Body)
			continue
		}
		if calls != tc.calls {
			t.Errorf("%s: allauth asked %d times, want %d", tc.name, calls, tc.calls)
		}
		if got := a.Header[fiber.HeaderWWWAuthenticate]; got != tc.www {
			t.Errorf("%s: WWW-Authenticate %q, want %q", tc.name, got, tc.www)
		}
		if tc.status == http.StatusOK {
			if a.Body != tc.user {
				t.Errorf("%s: 200 names %q, want %q", tc.name, a.Body, tc.user)
			}
			continue
		}
		wantError(t, result{Status: a.Status, Body: a.Body, Header: toHTTPHeader(a.Header)}, tc.status, tc.code)
		for _, s := range secrets {
			if strings.Contains(a.Body, s) {
				t.Errorf("%s: the answer echoes a credential", tc.name)
			}
		}
	}
}

func toHTTPHeader(m map[string]string) http.Header {
	h := http.Header{}
	for k, v := range m {
		h.Set(k, v)
	}
	return h
}

// wireCase is a request sent as raw bytes to a listening app with Fiber's
// default ReadBufferSize (4096 bytes for the request line and headers).
type wireCase struct {
	name   string
	lines  string // header lines, each ending in \r\n
	status int
	calls  int64
}

// Test_Hostile_Input_OverHTTP is what a client gets over real HTTP, where
// fasthttp parses the request before the middleware runs: headers over
// Fiber's ReadBufferSize (4096 by default) are answered 431 by the server
// itself (the middleware never runs; raise fiber.Config.ReadBufferSize to let
// the middleware answer 410/401 as in Test_Hostile_Input); a head it cannot
// parse (a bare LF inside a value) is answered 400 by it, with Fiber's
// error text quoting the head back. Everything that gets through is
// answered as in Test_Hostile_Input; a CR LF in a value is the end of the
// header line, so what follows is just another header. Proxies in front may differ (gunicorn:
// 400 over 8,190 bytes).
func Test_Hostile_Input_OverHTTP(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	tok, tok2 := srv.IssueToken("alice"), srv.IssueToken("alice")
	m := newMiddleware(t, srv, fiberauth.Config{NegativeTTL: -1})
	app := fiber.New(fiber.Config{DisableStartupMessage: true}) // default ReadBufferSize
	app.Use(m.Handler)
	app.Get("/*", whoHandler)
	addr := strings.TrimPrefix(listen(t, app), "http://")

	xst := "X-Session-Token: "
	cases := []wireCase{
		{"valid token (control)", xst + tok + "\r\n", 200, 1},
		{"3,000-byte token: fits, asked", xst + strings.Repeat("a", 3000) + "\r\n", 410, 1},
		{"4 KiB + 1 token: over ReadBufferSize", xst + strings.Repeat("a", 4097) + "\r\n", 431, 0},
		{"1 MiB token: over ReadBufferSize", xst + strings.Repeat("a", 1<<20) + "\r\n", 431, 0},
		{"1 MiB cookie: over ReadBufferSize", "Cookie: sessionid=" + strings.Repeat("a", 1<<20) + "\r\n", 431, 0},
		// fasthttp (>= 1.69) refuses control bytes in a header value with
		// its own 400, before any middleware runs; the middleware's own
		// check (410, as allauth) is proven in process by
		// Test_Contract_Malformed_NoUpstreamCall.
		{"NUL inside", xst + tok[:16] + "\x00" + tok[16:] + "\r\n", 400, 0},
		{"DEL inside", xst + tok[:16] + "\x7f" + tok[16:] + "\r\n", 400, 0},
		{"UTF-8", xst + "tökén" + tok + "\r\n", 410, 0},
		{"bare CR inside", xst + tok[:16] + "\r" + tok[16:] + "\r\n", 400, 0},
		{"two headers", xst + tok + "\r\n" + xst + tok + "\r\n", 410, 0},
		{"CRLF after a valid token: just another header", xst + tok2 + "\r\nX-Admin: 1\r\n", 200, 1},
		// fasthttp ends the line at the LF and cannot parse the rest; Fiber's
		// 400 quotes the request head (the client's own credential) back.
		{"bare LF inside", xst + tok[:16] + "\n" + tok[16:] + "\r\n", 400, 0},
		{"empty value", xst + "\r\n", 401, 0},
		{"whitespace value", xst + "   \r\n", 401, 0},
	}
	for _, tc := range cases {
		before := srv.SessionCalls()
		status, body := rawRoundTrip(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n"+tc.lines+"Connection: close\r\n\r\n")
		if status != tc.status {
			t.Errorf("%s: status %d, want %d (body %q)", tc.name, status, tc.status, body)
		}
		if calls := srv.SessionCalls() - before; calls != tc.calls {
			t.Errorf("%s: allauth asked %d times, want %d", tc.name, calls, tc.calls)
		}
		if status == http.StatusOK && body != "alice" {
			t.Errorf("%s: 200 names %q", tc.name, body)
		}
	}
}

// rawRoundTrip writes req as is and reads one answer.
func rawRoundTrip(tb testing.TB, addr, req string) (int, string) {
	tb.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	// The server may answer (and close) before it read a huge request: write
	// in the background and ignore a failed write.
	go func() { _, _ = io.WriteString(conn, req) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		tb.Fatalf("read answer: %v", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
