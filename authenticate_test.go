package headless

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// The contract, row by row, as the core decides it: which status, which
// envelope, which user, and how many calls to allauth.

// Row "no credential": 401 in allauth's envelope, without asking allauth.
func TestContract_NoCredential_401(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{})

	for name, r := range map[string]*req{
		"no header":          get(),
		"empty header":       withToken(""),
		"blank header":       withToken(" \t "),
		"other header":       get("X-Api-Key", "abc"),
		"cookie not in list": withCookie("sessionid", "abcdefghijklmnopqrstuvwxyz012345"),
	} {
		res := auth(a, r)
		h := wantError(t, res, http.StatusUnauthorized, CodeNotAuthenticated)
		if b := string(res.Err.Body()); b != `{"status": 401, "errors": [{"code": "not_authenticated", "message": "No credential was provided."}]}` {
			t.Errorf("%s: body = %s", name, b)
		}
		if got := h.Get("WWW-Authenticate"); got != "" {
			t.Errorf("%s: WWW-Authenticate = %q without a Bearer source", name, got)
		}
	}
	wantCalls(t, srv, 0)
}

// Row "no credential" with optional: anonymous; a credential allauth
// rejects still fails.
func TestContract_NoCredential_Optional(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{})

	wantAnonymous(t, a.Authenticate(get(), true))
	wantAnonymous(t, a.Authenticate(withToken("  "), true))
	wantCalls(t, srv, 0)

	wantError(t, a.Authenticate(withToken("abcdefghijklmnopqrstuvwxyz012345"), true), http.StatusGone, CodeSessionGone)
	wantError(t, a.Authenticate(withToken("bad token"), true), http.StatusGone, CodeSessionGone)
	wantCalls(t, srv, 1)
	if m := a.Metrics(); m.Requests[OutcomeAnonymous] != 2 || m.Requests[OutcomeGone] != 2 {
		t.Errorf("requests by outcome: %v", m.Requests)
	}
}

// Row "malformed or oversized credential": answered as allauth would (410
// for a session token, 401 for Bearer and cookie), without a request.
func TestContract_Malformed_NoUpstreamCall(t *testing.T) {
	t.Parallel()
	srv, tokens := setup(t, Config{})
	bearers := newCore(t, srv, Config{Sources: bearerSource})
	cookies := newCore(t, srv, Config{Sources: []Source{FromCookie("sessionid")}})

	long := strings.Repeat("a", 4096+1)
	for name, tok := range map[string]string{
		"NUL inside":   "abc\x00def",
		"UTF-8":        "tökén-abcdefghijklmnopqrstuvwxyz",
		"space inside": "abcdefgh ijklmnop",
		"tab inside":   "abcdefgh\tijklmnop",
		"DEL":          "abc\x7fdef",
		"4097 bytes":   long,
	} {
		h := wantError(t, auth(tokens, withToken(tok)), http.StatusGone, CodeSessionGone)
		if h.Get("WWW-Authenticate") != "" {
			t.Errorf("%s: WWW-Authenticate on a session token answer", name)
		}
	}
	for name, v := range map[string]string{
		"not b64token": "Bearer abc$def",
		"UTF-8":        "Bearer tökén",
		"space inside": "Bearer abc def",
		"4097 bytes":   "Bearer " + long,
	} {
		h := wantError(t, auth(bearers, get("Authorization", v)), http.StatusUnauthorized, CodeNotAuthenticated)
		if got := h.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
			t.Errorf("%s: WWW-Authenticate = %q", name, got)
		}
	}
	for name, v := range map[string]string{
		"UTF-8":      "tökén",
		"backslash":  `abc\def`,
		"4097 bytes": long,
	} {
		h := wantError(t, auth(cookies, withCookie("sessionid", v)), http.StatusUnauthorized, CodeNotAuthenticated)
		if h.Get("WWW-Authenticate") != "" {
			t.Errorf("%s: WWW-Authenticate on a cookie answer", name)
		}
	}
	wantCalls(t, srv, 0)

	// The limit is inclusive: 4096 bytes are worth asking (allauth: 410).
	wantError(t, auth(tokens, withToken(long[1:])), http.StatusGone, CodeSessionGone)
	wantCalls(t, srv, 1)
}

// Row "200": the session names allauth's user, with its login methods and
// the fields allauth sent beyond the known ones.
func TestContract_Authenticated(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	srv.AddUser(allauthtest.User{
		ID: "6f1c1b2e-8a0b-4c9e-9d51-3b1f0b1d2c3e", Username: "carol", Email: "carol@example.com",
		Password: "pw", Display: "Carol C.", Extra: map[string]any{"tenant": "acme"},
	})
	a := newCore(t, srv, Config{})
	line := func(tok string) string {
		t.Helper()
		res := auth(a, withToken(tok))
		if res.Session == nil {
			t.Fatalf("got %s", describe(res))
		}
		s := res.Session
		if len(s.Methods) != 1 || s.Methods[0].Method != "password" || s.Methods[0].At.IsZero() {
			t.Errorf("methods = %+v, want one password login with a time", s.Methods)
		}
		u := &s.User
		var extra struct {
			Tenant string `json:"tenant"`
		}
		if err := u.Decode(&extra); err != nil || (u.Username == "carol") != (extra.Tenant == "acme") {
			t.Errorf("Decode: %v, tenant %q, raw %s", err, extra.Tenant, u.Raw)
		}
		return u.ID + "|" + u.Username + "|" + u.Display + "|" + u.Email
	}
	if got := line(srv.IssueToken("alice")); got != "1|alice|alice|alice@example.com" {
		t.Fatalf("alice: %q", got)
	}
	if got := line(srv.IssueToken("carol")); got != "6f1c1b2e-8a0b-4c9e-9d51-3b1f0b1d2c3e|carol|Carol C.|carol@example.com" {
		t.Fatalf("carol: %q", got)
	}
	wantCalls(t, srv, 2)
}

// Row "401": allauth's 401 (inactive, deleted, pending flow) is a 401.
func TestContract_Upstream401(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{NegativeTTL: -1})
	srv.AddUser(allauthtest.User{ID: 3, Username: "pending", Email: "p@example.com", Password: "pw", PendingEmailVerification: true})
	srv.AddUser(allauthtest.User{ID: 4, Username: "gone", Password: "pw"})

	alice := srv.IssueToken("alice")
	pending := srv.IssueToken("pending")
	gone := srv.IssueToken("gone")
	srv.SetActive("alice", false)
	srv.DeleteUser("gone")

	for name, tok := range map[string]string{"inactive": alice, "pending": pending, "deleted": gone} {
		res := auth(a, withToken(tok))
		wantError(t, res, http.StatusUnauthorized, CodeNotAuthenticated)
		if b := string(res.Err.Body()); b != `{"status": 401, "errors": [{"code": "not_authenticated", "message": "The credential is not valid."}]}` {
			t.Errorf("%s: body = %s", name, b)
		}
	}
	wantCalls(t, srv, 3)

	// A 401 is not final: a reactivated user is let in again.
	srv.SetActive("alice", true)
	wantUser(t, auth(a, withToken(alice)), "alice")
}

// Row "410": a token allauth does not know, or one logged out, is a 410.
func TestContract_Upstream410(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{NegativeTTL: -1})
	tok := srv.IssueToken("bob")
	wantUser(t, auth(a, withToken(tok)), "bob")

	res := auth(a, withToken("abcdefghijklmnopqrstuvwxyz012345"))
	wantError(t, res, http.StatusGone, CodeSessionGone)
	if b := string(res.Err.Body()); b != `{"status": 410, "errors": [{"code": "session_gone", "message": "The session is gone; log in again."}]}` {
		t.Errorf("body = %s", b)
	}

	other := srv.IssueToken("bob")
	srv.Logout(other)
	wantError(t, auth(a, withToken(other)), http.StatusGone, CodeSessionGone)
	wantCalls(t, srv, 3)
}

// Row "429, 5xx, timeout, refused, not allauth's JSON": 503 with
// Retry-After, never 401 or 410, and nothing is cached.
func TestContract_UpstreamFailure_503(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		fault      allauthtest.Fault
		retryAfter string
	}{
		{"429 with Retry-After", allauthtest.Fault{Status: 429, RetryAfter: "7"}, "7"},
		{"429 without Retry-After", allauthtest.Fault{Status: 429}, "1"},
		{"500", allauthtest.Fault{Status: 500}, "1"},
		{"502", allauthtest.Fault{Status: 502}, "1"},
		{"503 with Retry-After", allauthtest.Fault{Status: 503, RetryAfter: "120"}, "120"},
		// What clients are told is clamped to 1..300 s, whatever allauth says.
		{"503 with Retry-After 300", allauthtest.Fault{Status: 503, RetryAfter: "300"}, "300"},
		{"503 with Retry-After 301", allauthtest.Fault{Status: 503, RetryAfter: "301"}, "300"},
		{"503 with Retry-After 2^31-1", allauthtest.Fault{Status: 503, RetryAfter: "2147483647"}, "300"},
		{"429 with Retry-After past int64", allauthtest.Fault{Status: 429, RetryAfter: "99999999999999999999999"}, "1"},
		{"503 with Retry-After 0", allauthtest.Fault{Status: 503, RetryAfter: "0"}, "1"},
		{"503 with a far HTTP-date Retry-After", allauthtest.Fault{Status: 503, RetryAfter: "Fri, 31 Dec 9999 23:59:59 GMT"}, "300"},
		{"504", allauthtest.Fault{Status: 504}, "1"},
		{"400 from a proxy", allauthtest.Fault{Status: 400}, "1"},
		{"timeout", allauthtest.Fault{Delay: 2 * time.Second}, "1"},
		{"dropped connection", allauthtest.Fault{Drop: true}, "1"},
		{"HTML body", allauthtest.Fault{Status: 200, Body: "<html><body>Login</body></html>", ContentType: "text/html"}, "1"},
		{"HTML 404", allauthtest.Fault{Status: 404, Body: "<h1>Not Found</h1>", ContentType: "text/html"}, "1"},
		{"garbage JSON", allauthtest.Fault{Status: 200, Body: `{"status": 200, "data": {"user": `}, "1"},
		{"401 that is not allauth's", allauthtest.Fault{Status: 401, Body: `{"detail": "nope"}`}, "1"},
		{"410 that is not allauth's", allauthtest.Fault{Status: 410, Body: "gone", ContentType: "text/plain"}, "1"},
		{"200 not authenticated", allauthtest.Fault{Body: `{"status": 200, "data": {}, "meta": {"is_authenticated": false}}`}, "1"},
		// Loose JSON is garbage, never a login: encoding/json alone would say
		// user 7, and user 2.
		{"200 with keys in other cases", allauthtest.Fault{Body: `{"Status": 200, "DATA": {"User": {"ID": 7}}, "Meta": {"Is_Authenticated": true}}`}, "1"},
		{"200 with id twice", allauthtest.Fault{Body: `{"status": 200, "data": {"user": {"id": 1, "id": 2}}, "meta": {"is_authenticated": true}}`}, "1"},
		{"200 with is_authenticated twice", allauthtest.Fault{Body: `{"status": 200, "data": {"user": {"id": 1}}, "meta": {"is_authenticated": false, "is_authenticated": true}}`}, "1"},
		{"200 with a blank id", allauthtest.Fault{Body: `{"status": 200, "data": {"user": {"id": " "}}, "meta": {"is_authenticated": true}}`}, "1"},
		{"200 with id -0", allauthtest.Fault{Body: `{"status": 200, "data": {"user": {"id": -0}}, "meta": {"is_authenticated": true}}`}, "1"},
		{"200 with an id of 1000 digits", allauthtest.Fault{Body: `{"status": 200, "data": {"user": {"id": ` + strings.Repeat("7", 1000) + `}}, "meta": {"is_authenticated": true}}`}, "1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Timeout is short only where the fault is the delay: under -race
			// with every case in parallel, 200 ms can pass on a good answer.
			cfg := Config{}
			if tc.fault.Delay > 0 {
				cfg.Timeout = 200 * time.Millisecond
			}
			srv, a := setup(t, cfg)
			tok := srv.IssueToken("alice")
			srv.SetFault(tc.fault)

			start := time.Now()
			res := auth(a, withToken(tok))
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("answer took %v", took)
			}
			h := wantError(t, res, http.StatusServiceUnavailable, CodeUpstreamUnavailable)
			if got := h.Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tc.retryAfter)
			}
			if h.Get("WWW-Authenticate") != "" {
				t.Error("WWW-Authenticate on a 503")
			}
			if srv.SessionCalls() < 1 {
				t.Error("allauth was not asked")
			}
			if tc.fault.Delay > 0 {
				return
			}
			// A failure is not cached: the same token works once allauth does.
			srv.SetFault(allauthtest.Fault{})
			wantUser(t, auth(a, withToken(tok)), "alice")
		})
	}
}

// Refused connections (allauth down from the start) are a 503 too.
func TestContract_Refused_503(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	tok := srv.IssueToken("alice")
	srv.Close()
	a := newCore(t, srv, Config{})
	h := wantError(t, auth(a, withToken(tok)), http.StatusServiceUnavailable, CodeUpstreamUnavailable)
	if h.Get("Retry-After") != "1" {
		t.Errorf("Retry-After = %q", h.Get("Retry-After"))
	}
}

// The error a door's ErrorHandler is handed carries the cause, which names
// the kind of failure but never the token; the log line neither.
func TestContract_TokenNeverInErrorsOrLogs(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	var logs logBuffer
	a := newCore(t, srv, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	tok := srv.IssueToken("alice")
	srv.SetFault(allauthtest.Fault{Status: 502})
	first := auth(a, withToken(tok))
	srv.SetFault(allauthtest.Fault{})
	second := auth(a, withToken("abcdefghijklmnopqrstuvwxyz012345"))

	for _, res := range []Result{first, second} {
		if res.Err == nil {
			t.Fatalf("got %s, want an error", describe(res))
		}
		if s := res.Err.Error(); strings.Contains(s, tok) || strings.Contains(s, "abcdefghijklmnopqrstuvwxyz012345") {
			t.Errorf("error text holds the token: %v", s)
		}
	}
	var up *introspect.UpstreamError
	if !errors.As(first.Err, &up) || up.Status != 502 {
		t.Errorf("cause of the 503: %v", first.Err.Err)
	}
	if !strings.Contains(logs.String(), "allauth lookup failed") || !strings.Contains(logs.String(), "status=502") {
		t.Errorf("no log line for the 502: %q", logs.String())
	}
	if strings.Contains(logs.String(), tok) {
		t.Errorf("log holds the token: %q", logs.String())
	}
}

// ErrorFrom finds the *Error a door's error handler is handed, and makes
// any other error a 500 that does not show its text.
func TestErrorFrom(t *testing.T) {
	t.Parallel()
	_, a := setup(t, Config{})
	res := auth(a, get())
	if ErrorFrom(fmt.Errorf("wrapped: %w", res.Err)) != res.Err {
		t.Error("ErrorFrom does not unwrap")
	}
	e := ErrorFrom(errors.New("secret detail"))
	if e.Status != http.StatusInternalServerError || strings.Contains(string(e.Body()), "secret") {
		t.Errorf("ErrorFrom(other) = %d %s", e.Status, e.Body())
	}
	if h := headers(e); h.Get("Cache-Control") != "no-store" || h.Get("Retry-After") != "" {
		t.Errorf("headers of a 500: %v", h)
	}
}
