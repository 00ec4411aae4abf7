package headless

import (
	"net/http"
	"strings"
	"testing"

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
	headers []string // name, value, ...
	status  int
	code    string // error code, or "" for a 200
	user    string // the user named on a 200
	www     string // WWW-Authenticate, "" for none
	calls   int64  // session lookups allauth receives
}

// hostileCases is THE list of hostile credentials and the one answer each
// gets from the core (what a door hands it after its server parsed the
// request; fiberauth's Test_Hostile_Input_OverHTTP shows what a server in
// front refuses first, and its Test_Hostile_Input how Fiber reads quoted
// and repeated cookies). A credential reaches allauth only if it is well formed:
// every row with calls 0 is decided locally. tok, jwt and cookie are valid
// credentials of alice, bob's token is bobTok.
func hostileCases(tok, bobTok, jwt, cookie string) []hostileCase {
	kib4 := strings.Repeat("a", 4096)
	mib := strings.Repeat("a", 1<<20)
	const (
		na   = CodeNotAuthenticated
		gone = CodeSessionGone
		inv  = `Bearer error="invalid_token"`
	)
	h := func(kv ...string) []string { return kv }
	xst := HeaderSessionToken
	return []hostileCase{
		// X-Session-Token.
		{"token: valid (control)", lookupToken, h(xst, tok), 200, "", "alice", "", 1},
		{"token: none", lookupToken, nil, 401, na, "", "", 0},
		{"token: empty", lookupToken, h(xst, ""), 401, na, "", "", 0},
		{"token: whitespace", lookupToken, h(xst, " \t  "), 401, na, "", "", 0},
		{"token: blanks around a valid one", lookupToken, h(xst, " \t"+tok+" \t"), 200, "", "alice", "", 1},
		{"token: header name in odd case", lookupToken, h("x-SESSION-token", tok), 200, "", "alice", "", 1},
		{"token: 4 KiB, unknown (asked)", lookupToken, h(xst, kib4), 410, gone, "", "", 1},
		{"token: 4 KiB + 1", lookupToken, h(xst, kib4+"a"), 410, gone, "", "", 0},
		{"token: 1 MiB", lookupToken, h(xst, mib), 410, gone, "", "", 0},
		{"token: NUL inside", lookupToken, h(xst, tok[:16]+"\x00"+tok[16:]), 410, gone, "", "", 0},
		{"token: NUL after a valid one", lookupToken, h(xst, tok+"\x00"), 410, gone, "", "", 0},
		{"token: CR inside", lookupToken, h(xst, tok[:16]+"\r"+tok[16:]), 410, gone, "", "", 0},
		{"token: LF inside", lookupToken, h(xst, tok[:16]+"\n"+tok[16:]), 410, gone, "", "", 0},
		{"token: CRLF header injection", lookupToken, h(xst, tok+"\r\nX-Admin: 1"), 410, gone, "", "", 0},
		{"token: DEL inside", lookupToken, h(xst, tok[:16]+"\x7f"+tok[16:]), 410, gone, "", "", 0},
		{"token: UTF-8", lookupToken, h(xst, "tökén-"+tok), 410, gone, "", "", 0},
		{"token: space inside", lookupToken, h(xst, tok[:16]+" "+tok[16:]), 410, gone, "", "", 0},
		{"token: two headers, both valid", lookupToken, h(xst, tok, xst, tok), 410, gone, "", "", 0},
		{"token: two headers, alice's and bob's", lookupToken, h(xst, tok, "x-session-token", bobTok), 410, gone, "", "", 0},
		{"token: two headers, one empty", lookupToken, h(xst, "", xst, tok), 410, gone, "", "", 0},
		{"token: a cookie is not read", lookupToken, h("Cookie", "sessionid="+cookie), 401, na, "", "", 0},

		// Authorization: Bearer.
		{"bearer: valid JWT (control)", lookupBearer, h("Authorization", "Bearer "+jwt), 200, "", "alice", "", 1},
		{"bearer: scheme in odd case", lookupBearer, h("Authorization", "bEaReR "+jwt), 200, "", "alice", "", 1},
		{"bearer: scheme in capitals, tab, blanks", lookupBearer, h("Authorization", " BEARER\t"+jwt+" "), 200, "", "alice", "", 1},
		{"bearer: nothing after the scheme", lookupBearer, h("Authorization", "Bearer"), 401, na, "", "Bearer", 0},
		{"bearer: only blanks after the scheme", lookupBearer, h("Authorization", "Bearer  \t "), 401, na, "", "Bearer", 0},
		{"bearer: empty header", lookupBearer, h("Authorization", ""), 401, na, "", "Bearer", 0},
		{"bearer: another scheme", lookupBearer, h("Authorization", "Basic YWxpY2U6cHc="), 401, na, "", "Bearer", 0},
		{"bearer: scheme glued to token", lookupBearer, h("Authorization", "Bearer"+jwt), 401, na, "", "Bearer", 0},
		{"bearer: token without a scheme", lookupBearer, h("Authorization", jwt), 401, na, "", "Bearer", 0},
		{"bearer: session token (allauth: 401)", lookupBearer, h("Authorization", "Bearer "+tok), 401, na, "", inv, 1},
		{"bearer: space inside", lookupBearer, h("Authorization", "Bearer abc def"), 401, na, "", inv, 0},
		{"bearer: not b64token", lookupBearer, h("Authorization", "Bearer abc$def"), 401, na, "", inv, 0},
		{"bearer: 4 KiB + 1", lookupBearer, h("Authorization", "Bearer "+kib4+"a"), 401, na, "", inv, 0},
		{"bearer: 1 MiB", lookupBearer, h("Authorization", "Bearer "+mib), 401, na, "", inv, 0},
		{"bearer: NUL", lookupBearer, h("Authorization", "Bearer "+jwt+"\x00"), 401, na, "", inv, 0},
		{"bearer: CR LF", lookupBearer, h("Authorization", "Bearer "+jwt[:10]+"\r\n"+jwt[10:]), 401, na, "", inv, 0},
		{"bearer: DEL", lookupBearer, h("Authorization", "Bearer "+jwt+"\x7f"), 401, na, "", inv, 0},
		{"bearer: UTF-8", lookupBearer, h("Authorization", "Bearer tökén"), 401, na, "", inv, 0},
		{"bearer: two headers", lookupBearer, h("Authorization", "Bearer "+jwt, "Authorization", "Bearer "+jwt), 401, na, "", inv, 0},

		// Cookie (allauth's browser endpoint never says 410).
		{"cookie: valid (control)", lookupCookie, h("Cookie", "sessionid="+cookie), 200, "", "alice", "", 1},
		{"cookie: among others", lookupCookie, h("Cookie", "theme=dark; sessionid="+cookie+"; lang=en"), 200, "", "alice", "", 1},
		{"cookie: two sessionid cookies: the last, as Django", lookupCookie, h("Cookie", "sessionid="+bobTok+"; sessionid="+cookie), 200, "", "alice", "", 1},
		{"cookie: empty value", lookupCookie, h("Cookie", "sessionid="), 401, na, "", "", 0},
		{"cookie: whitespace value", lookupCookie, h("Cookie", "sessionid=   "), 401, na, "", "", 0},
		{"cookie: 4 KiB + 1", lookupCookie, h("Cookie", "sessionid="+kib4+"a"), 401, na, "", "", 0},
		{"cookie: 1 MiB", lookupCookie, h("Cookie", "sessionid="+mib), 401, na, "", "", 0},
		{"cookie: NUL", lookupCookie, h("Cookie", "sessionid="+cookie+"\x00"), 401, na, "", "", 0},
		{"cookie: DEL", lookupCookie, h("Cookie", "sessionid="+cookie+"\x7f"), 401, na, "", "", 0},
		{"cookie: UTF-8", lookupCookie, h("Cookie", "sessionid=tökén"), 401, na, "", "", 0},
		{"cookie: backslash", lookupCookie, h("Cookie", `sessionid=abc\def`), 401, na, "", "", 0},
		{"cookie: a header is not read", lookupCookie, h(xst, tok), 401, na, "", "", 0},

		// A cookie and a header at once: the first source of KeyLookup that
		// holds a value decides alone.
		{"both: header and cookie, header first", lookupBoth, h(xst, tok, "Cookie", "sessionid=x"+cookie[1:]), 200, "", "alice", "", 1},
		{"both: blank header, cookie used", lookupBoth, h(xst, " ", "Cookie", "sessionid="+cookie), 200, "", "alice", "", 1},
		{"both: malformed header, good cookie", lookupBoth, h(xst, "tök", "Cookie", "sessionid="+cookie), 410, gone, "", "", 0},
	}
}

// sourcesOf turns a table's lookup ("header:X-Session-Token,cookie:sessionid")
// into Sources.
func sourcesOf(lookup string) []Source {
	var out []Source
	for _, part := range strings.Split(lookup, ",") {
		where, name, _ := strings.Cut(part, ":")
		switch {
		case where == "cookie":
			out = append(out, FromCookie(name))
		case name == "Authorization":
			out = append(out, FromAuthHeader("Bearer"))
		default:
			out = append(out, FromHeader(name))
		}
	}
	return out
}

// TestHostile_Input is the single documented list of hostile credentials
// (see hostileCases): each gets exactly one answer, in allauth's error
// envelope, and allauth is asked only about well-formed ones (upstream
// calls are counted per row). The fake request hands the core the bytes as
// given, as no server would.
func TestHostile_Input(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t, allauthtest.WithJWT(allauthtest.JWTConfig{Algorithm: "HS256"}))
	tok, bobTok, cookie := srv.IssueToken("alice"), srv.IssueToken("bob"), srv.IssueCookie("alice")
	jwt, _ := srv.IssueJWT("alice")
	if tok == "" || bobTok == "" || cookie == "" || jwt == "" {
		t.Fatal("stand-in issued no credential")
	}
	secrets := []string{tok, bobTok, cookie, jwt}

	for _, tc := range hostileCases(tok, bobTok, jwt, cookie) {
		// An Authenticator per row, without negative caching: the calls of
		// a row are its own.
		a := newCore(t, srv, Config{Sources: sourcesOf(tc.lookup), NegativeTTL: -1})
		before := srv.SessionCalls()
		res := auth(a, get(tc.headers...))
		calls := srv.SessionCalls() - before

		if got := statusOf(res); got != tc.status {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, got, tc.status, describe(res))
			continue
		}
		if calls != tc.calls {
			t.Errorf("%s: allauth asked %d times, want %d", tc.name, calls, tc.calls)
		}
		if tc.status == http.StatusOK {
			if res.Session.User.Username != tc.user {
				t.Errorf("%s: 200 names %q, want %q", tc.name, res.Session.User.Username, tc.user)
			}
			continue
		}
		h := wantError(t, res, tc.status, tc.code)
		if got := h.Get("WWW-Authenticate"); got != tc.www {
			t.Errorf("%s: WWW-Authenticate %q, want %q", tc.name, got, tc.www)
		}
		for _, s := range secrets {
			if strings.Contains(string(res.Err.Body()), s) || strings.Contains(res.Err.Error(), s) {
				t.Errorf("%s: the answer echoes a credential", tc.name)
			}
		}
	}
}
