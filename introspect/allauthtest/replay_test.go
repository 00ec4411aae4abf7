package allauthtest_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/allauthgo/headless/introspect/allauthtest"
)

// TestReplayApp replays, in order, the recorded app-client requests of
// RESPONSES.md section A and compares statuses and bodies byte for byte
// (login times and new session keys excepted).
func TestReplayApp(t *testing.T) {
	srv := newServer(t)
	hc := newClient(t)
	m := srv.URL + "/_allauth/app/v1"
	sessionURL := m + "/auth/session"
	login := func(body string, hdr ...string) result {
		return do(t, hc, http.MethodPost, m+"/auth/login", body, append([]string{"Content-Type", "application/json"}, hdr...)...)
	}
	get := func(hdr ...string) result { return do(t, hc, http.MethodGet, sessionURL, "", hdr...) }

	var alice, bob, carol, dave string
	steps := []struct {
		name   string
		run    func() result
		status int
		body   string
		after  func(result)
	}{
		{"config", func() result { return do(t, hc, http.MethodGet, m+"/config", "") }, 200, bodyConfig, nil},
		{"login alice by username", func() result {
			return login(`{"username": "alice", "password": "alice-pass-123"}`)
		}, 200, aliceLogin, func(r result) { alice = sessionToken(t, r.body) }},
		{"login bob by email", func() result {
			return login(`{"email": "bob@example.com", "password": "bob-pass-123"}`)
		}, 200, bobLogin, func(r result) { bob = sessionToken(t, r.body) }},
		{"wrong password", func() result { return login(`{"username": "alice", "password": "WRONG"}`) }, 400, bodyMismatch, nil},
		{"unknown user", func() result { return login(`{"username": "zed", "password": "x"}`) }, 400, bodyMismatch, nil},
		{"missing password", func() result { return login(`{"username": "alice"}`) }, 400, bodyRequired, nil},
		{"body not JSON", func() result { return login(`username=alice`) }, 400, "", func(r result) {
			if ct := r.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
		}},
		{"login while authenticated", func() result {
			return login(`{"username": "alice", "password": "alice-pass-123"}`, "X-Session-Token", alice)
		}, 409, body409, nil},
		{"session 200", func() result { return get("X-Session-Token", alice) }, 200, aliceSession, func(r result) {
			if got := r.header.Get("Cache-Control"); got != jsonCache {
				t.Errorf("Cache-Control %q", got)
			}
			if got := r.header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type %q", got)
			}
		}},
		{"lower-case header name", func() result { return get("x-session-token", alice) }, 200, aliceSession, nil},
		{"HEAD", func() result { return do(t, hc, http.MethodHead, sessionURL, "", "X-Session-Token", alice) }, 200, "", func(r result) {
			g := get("X-Session-Token", alice)
			if want := strconv.Itoa(len(g.body)); r.header.Get("Content-Length") != want {
				t.Errorf("HEAD Content-Length %q, want %s as for GET", r.header.Get("Content-Length"), want)
			}
		}},
		{"Bearer garbage ignored next to token", func() result {
			return get("X-Session-Token", alice, "Authorization", "Bearer garbage")
		}, 200, aliceSession, nil},
		{"trailing slash", func() result {
			return do(t, hc, http.MethodGet, sessionURL+"/", "", "X-Session-Token", alice)
		}, 404, "\n<!doctype html>\n<html lang=\"en\">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n</body>\n</html>\n", nil},
		{"token as query param", func() result {
			return do(t, hc, http.MethodGet, sessionURL+"?session_token="+alice, "")
		}, 401, body401, nil},
		{"no header", func() result { return get() }, 401, body401, nil},
		{"garbage", func() result { return get("X-Session-Token", "garbage") }, 410, body410, nil},
		{"unknown 32 chars", func() result { return get("X-Session-Token", "abcdefghijklmnopqrstuvwxyz012345") }, 410, body410, nil},
		{"empty value", func() result { return rawGet(t, srv, "/_allauth/app/v1/auth/session", "X-Session-Token:") }, 401, body401, nil},
		{"whitespace only", func() result {
			return rawGet(t, srv, "/_allauth/app/v1/auth/session", "X-Session-Token:    ")
		}, 401, body401, nil},
		{"leading spaces", func() result {
			return rawGet(t, srv, "/_allauth/app/v1/auth/session", "X-Session-Token:    "+alice)
		}, 200, aliceSession, nil},
		{"trailing spaces", func() result {
			return rawGet(t, srv, "/_allauth/app/v1/auth/session", "X-Session-Token: "+alice+"   ")
		}, 410, body410, nil},
		{"trailing tab", func() result {
			return rawGet(t, srv, "/_allauth/app/v1/auth/session", "X-Session-Token: "+alice+"\t")
		}, 410, body410, nil},
		{"odd characters", func() result { return get("X-Session-Token", `../"<script>%00;,'x`) }, 410, body410, nil},
		{"raw non-ASCII", func() result {
			return rawGet(t, srv, "/_allauth/app/v1/auth/session", "X-Session-Token: \xff\xfeabc")
		}, 410, body410, nil},
		{"one char appended", func() result { return get("X-Session-Token", alice+"x") }, 410, body410, nil},
		{"upper-cased", func() result { return get("X-Session-Token", strings.ToUpper(alice)) }, 410, body410, nil},
		{"two headers", func() result { return get("X-Session-Token", alice, "X-Session-Token", "garbage") }, 410, body410, nil},
		{"app ignores the session cookie", func() result { return get("Cookie", "sessionid="+alice) }, 401, body401, nil},
		{"logout", func() result { return do(t, hc, http.MethodDelete, sessionURL, "", "X-Session-Token", alice) }, 401, body401, nil},
		{"logged-out token", func() result { return get("X-Session-Token", alice) }, 410, body410, nil},
		{"logout again", func() result { return do(t, hc, http.MethodDelete, sessionURL, "", "X-Session-Token", alice) }, 410, body410, nil},
		{"logout without token", func() result { return do(t, hc, http.MethodDelete, sessionURL, "") }, 401, body401, nil},
		{"login with logged-out token", func() result {
			return login(`{"username": "alice", "password": "alice-pass-123"}`, "X-Session-Token", alice)
		}, 410, body410, nil},
		{"login alice again", func() result {
			return login(`{"username": "alice", "password": "alice-pass-123"}`)
		}, 200, aliceLogin, func(r result) {
			if tok := sessionToken(t, r.body); tok == alice {
				t.Error("same token after logout")
			}
		}},
		{"inactive carol logs in", func() result {
			return login(`{"username": "carol", "password": "carol-pass-123"}`)
		}, 401, carolLogin, func(r result) { carol = sessionToken(t, r.body) }},
		{"carol's token", func() result { return get("X-Session-Token", carol) }, 401, body401, nil},
		{"carol wrong password", func() result { return login(`{"username": "carol", "password": "nope"}`) }, 400, bodyMismatch, nil},
		{"dave logs in", func() result {
			return login(`{"username": "dave", "password": "dave-pass-123"}`)
		}, 200, strings.Replace(daveSession, `"is_authenticated": true}`, `"is_authenticated": true, "session_token": "59piwkpji9vh7vaio8tfj1n3sgoemks7"}`, 1), func(r result) { dave = sessionToken(t, r.body) }},
		{"dave 200", func() result { return get("X-Session-Token", dave) }, 200, daveSession, func(result) { srv.SetActive("dave", false) }},
		{"dave deactivated", func() result { return get("X-Session-Token", dave) }, 401, body401, nil},
		{"dave still 401", func() result { return get("X-Session-Token", dave) }, 401, body401, func(result) { srv.SetActive("dave", true) }},
		{"dave reactivated", func() result { return get("X-Session-Token", dave) }, 200, daveSession, nil},
		{
			"bob 200", func() result { return get("X-Session-Token", bob) }, 200,
			`{"status": 200, "data": {"user": {"id": 2, "display": "bob", "email": "bob@example.com", "has_usable_password": true, "username": "bob"}, "methods": [{"method": "password", "at": 1795711584.0076623, "email": "bob@example.com"}]}, "meta": {"is_authenticated": true}}`,
			func(result) { srv.SetPassword("bob", "bob-pass-456") },
		},
		{"bob after password change", func() result { return get("X-Session-Token", bob) }, 401, body401, nil},
		{"bob once more", func() result { return get("X-Session-Token", bob) }, 410, body410, func(result) { srv.DeleteUser("dave") }},
		{"dave deleted", func() result { return get("X-Session-Token", dave) }, 401, body401, nil},
		{"dave deleted, re-added", func() result {
			srv.AddUser(allauthtest.User{Username: "dave", Email: "dave@example.com", Password: "dave-pass-123"})
			return get("X-Session-Token", dave)
		}, 401, body401, nil},
	}
	for _, st := range steps {
		r := st.run()
		if r.status != st.status || normalize(r.body) != normalize(st.body) {
			t.Errorf("%s: got %d %s\nwant %d %s", st.name, r.status, r.body, st.status, st.body)
		}
		if st.after != nil {
			st.after(r)
		}
	}
}

// TestReplayBrowser replays section A6: cookies and CSRF.
func TestReplayBrowser(t *testing.T) {
	srv := newServer(t)
	hc := newClient(t)
	m := srv.URL + "/_allauth/browser/v1"
	sessionURL := m + "/auth/session"
	aliceJSON := `{"username": "alice", "password": "alice-pass-123"}`

	cfg := do(t, hc, http.MethodGet, m+"/config", "")
	expect(t, cfg, 200, bodyConfig)
	csrf, ok := cookieValue(cfg.header, "csrftoken")
	if !ok || len(csrf) != 32 {
		t.Fatalf("config set no csrftoken: %q", cfg.header.Values("Set-Cookie"))
	}
	if cfg.header.Get("Vary") != "Cookie" {
		t.Errorf("Vary %q", cfg.header.Get("Vary"))
	}

	r := do(t, hc, http.MethodPost, m+"/auth/login", aliceJSON, "Content-Type", "application/json", "Cookie", "csrftoken="+csrf)
	if r.status != 403 || !strings.Contains(r.body, "CSRF verification failed. Request aborted.") || len(r.body) != 1019 {
		t.Errorf("login without X-CSRFToken: %d %q", r.status, r.body)
	}
	r = do(t, hc, http.MethodPost, m+"/auth/login", aliceJSON, "Content-Type", "application/json", "X-CSRFToken", csrf)
	if r.status != 403 {
		t.Errorf("login without csrftoken cookie: %d", r.status)
	}

	r = do(t, hc, http.MethodPost, m+"/auth/login", aliceJSON,
		"Content-Type", "application/json", "Cookie", "csrftoken="+csrf, "X-CSRFToken", csrf)
	expect(t, r, 200, aliceSession)
	sid, ok := cookieValue(r.header, "sessionid")
	if !ok || !keyRe.MatchString(sid) {
		t.Fatalf("no sessionid cookie: %q", r.header.Values("Set-Cookie"))
	}
	for _, l := range r.header.Values("Set-Cookie") {
		if strings.HasPrefix(l, "sessionid=") && !strings.HasSuffix(l, "; HttpOnly; Max-Age=1209600; Path=/; SameSite=Lax") {
			t.Errorf("session cookie %q", l)
		}
	}
	newCSRF, _ := cookieValue(r.header, "csrftoken")
	if newCSRF == csrf || len(newCSRF) != 32 {
		t.Errorf("csrftoken not rotated on login: %q", newCSRF)
	}

	expect(t, do(t, hc, http.MethodGet, sessionURL, "", "Cookie", "sessionid="+sid), 200, aliceSession)
	expect(t, do(t, hc, http.MethodGet, sessionURL, ""), 401, body401)
	// The browser ignores X-Session-Token, and the cookie works as a token.
	expect(t, do(t, hc, http.MethodGet, sessionURL, "", "X-Session-Token", sid), 401, body401)
	expect(t, do(t, hc, http.MethodGet, srv.URL+"/_allauth/app/v1/auth/session", "", "X-Session-Token", sid), 200, aliceSession)

	g := do(t, hc, http.MethodGet, sessionURL, "", "Cookie", "sessionid=garbage")
	expect(t, g, 401, body401)
	if got := g.header.Values("Set-Cookie"); len(got) != 2 || got[1] != clearCookie {
		t.Errorf("garbage cookie: Set-Cookie %q, want csrftoken then %q", got, clearCookie)
	}

	// Logout needs CSRF, then clears the cookie; the old value gets 401.
	if r := do(t, hc, http.MethodDelete, sessionURL, "", "Cookie", "sessionid="+sid); r.status != 403 {
		t.Errorf("logout without CSRF: %d", r.status)
	}
	lo := do(t, hc, http.MethodDelete, sessionURL, "", "Cookie", "csrftoken="+newCSRF+"; sessionid="+sid, "X-CSRFToken", newCSRF)
	expect(t, lo, 401, body401)
	if v, _ := cookieValue(lo.header, "csrftoken"); v != newCSRF {
		t.Errorf("logout re-set csrftoken %q, want the same %q", v, newCSRF)
	}
	if got := lo.header.Values("Set-Cookie"); len(got) != 2 || got[1] != clearCookie {
		t.Errorf("logout Set-Cookie %q", got)
	}
	old := do(t, hc, http.MethodGet, sessionURL, "", "Cookie", "sessionid="+sid)
	expect(t, old, 401, body401)
	expect(t, do(t, hc, http.MethodGet, srv.URL+"/_allauth/app/v1/auth/session", "", "X-Session-Token", sid), 410, body410)
}

func TestIssuedCredentials(t *testing.T) {
	srv := newServer(t)
	hc := newClient(t)
	app := srv.SessionURL("app")
	browser := srv.SessionURL("browser")

	tok := srv.IssueToken("alice")
	if !keyRe.MatchString(tok) {
		t.Fatalf("token %q", tok)
	}
	expect(t, do(t, hc, http.MethodGet, app, "", "X-Session-Token", tok), 200, aliceSession)
	expect(t, do(t, hc, http.MethodGet, browser, "", "Cookie", "sessionid="+tok), 200, aliceSession)

	ck := srv.IssueCookie("bob")
	bob := `{"status": 200, "data": {"user": {"id": 2, "display": "bob", "email": "bob@example.com", "has_usable_password": true, "username": "bob"}, "methods": [{"method": "password", "at": 1.5, "username": "bob"}]}, "meta": {"is_authenticated": true}}`
	expect(t, do(t, hc, http.MethodGet, browser, "", "Cookie", "sessionid="+ck), 200, bob)
	expect(t, do(t, hc, http.MethodGet, app, "", "X-Session-Token", ck), 200, bob)

	srv.Logout(tok)
	expect(t, do(t, hc, http.MethodGet, app, "", "X-Session-Token", tok), 410, body410)
	expect(t, do(t, hc, http.MethodGet, browser, "", "Cookie", "sessionid="+tok), 401, body401)

	if got := srv.IssueToken("nobody"); got != "" {
		t.Errorf("IssueToken(nobody) = %q", got)
	}
	if t1, t2 := srv.IssueToken("alice"), srv.IssueToken("alice"); t1 == t2 {
		t.Error("two tokens are equal")
	}
}

func TestPendingFlow(t *testing.T) {
	srv := newServer(t)
	hc := newClient(t)
	srv.AddUser(allauthtest.User{Username: "erin", Email: "erin@example.com", Password: "erin-pass-123", PendingEmailVerification: true})
	r := do(t, hc, http.MethodPost, srv.URL+"/_allauth/app/v1/auth/login", `{"username": "erin", "password": "erin-pass-123"}`)
	expect(t, r, 401, erinLogin)
	tok := sessionToken(t, r.body)
	expect(t, do(t, hc, http.MethodGet, srv.SessionURL("app"), "", "X-Session-Token", tok), 401, bodyPending401)
	expect(t, do(t, hc, http.MethodGet, srv.SessionURL("browser"), "", "Cookie", "sessionid="+tok), 401, bodyPending401)
	issued := srv.IssueToken("erin")
	expect(t, do(t, hc, http.MethodGet, srv.SessionURL("app"), "", "X-Session-Token", issued), 401, bodyPending401)
}

func TestUsers(t *testing.T) {
	srv := allauthtest.NewServer(allauthtest.WithMount("auth/"), allauthtest.WithSessionCookieName("sid"))
	t.Cleanup(srv.Close)
	hc := newClient(t)
	if srv.Mount() != "/auth" {
		t.Fatalf("mount %q", srv.Mount())
	}
	u := srv.AddUser(allauthtest.User{
		ID: "3f2c1f0e-8a51-4c6e-9a55-0b7b1f6a2d10", Username: "jürgen", Password: "",
		Extra: map[string]any{"roles": []string{"admin"}, "a_first": 1.0, "org": map[string]any{"z": 1, "b": "x"}},
	})
	if u.ID != "3f2c1f0e-8a51-4c6e-9a55-0b7b1f6a2d10" {
		t.Errorf("ID %v", u.ID)
	}
	if got := srv.AddUser(allauthtest.User{Username: "nina"}).ID; got != 1 {
		t.Errorf("first assigned ID %v, want 1", got)
	}
	tok := srv.IssueToken("jürgen")
	want := `{"status": 200, "data": {"user": {"id": "3f2c1f0e-8a51-4c6e-9a55-0b7b1f6a2d10", "display": "j\u00fcrgen", "has_usable_password": false, "username": "j\u00fcrgen", "a_first": 1.0, "org": {"b": "x", "z": 1}, "roles": ["admin"]}, "methods": [{"method": "password", "at": 1.5, "username": "j\u00fcrgen"}]}, "meta": {"is_authenticated": true}}`
	expect(t, do(t, hc, http.MethodGet, srv.URL+"/auth/app/v1/auth/session", "", "X-Session-Token", tok), 200, want)
	expect(t, do(t, hc, http.MethodGet, srv.URL+"/auth/browser/v1/auth/session", "", "Cookie", "sid="+tok), 200, want)
	// No password: no login.
	expect(t, do(t, hc, http.MethodPost, srv.URL+"/auth/app/v1/auth/login", `{"username": "jürgen", "password": "x"}`), 400, bodyMismatch)

	srv.UpdateUser("jürgen", func(u *allauthtest.User) {
		u.Display = "J. 🦫"
		u.Email = "j@example.com"
		u.Extra = nil
	})
	want = `{"status": 200, "data": {"user": {"id": "3f2c1f0e-8a51-4c6e-9a55-0b7b1f6a2d10", "display": "J. \ud83e\uddab", "email": "j@example.com", "has_usable_password": false, "username": "j\u00fcrgen"}, "methods": [{"method": "password", "at": 1.5, "username": "j\u00fcrgen"}]}, "meta": {"is_authenticated": true}}`
	expect(t, do(t, hc, http.MethodGet, srv.URL+"/auth/app/v1/auth/session", "", "X-Session-Token", tok), 200, want)
	if got, ok := srv.User("J@EXAMPLE.COM"); !ok || got.Username != "jürgen" {
		t.Errorf("User by e-mail: %+v %v", got, ok)
	}
	if r := do(t, hc, http.MethodGet, srv.URL+"/_allauth/app/v1/config", ""); r.status != 404 {
		t.Errorf("default mount still served: %d", r.status)
	}
	if r := do(t, hc, http.MethodPut, srv.URL+"/auth/app/v1/auth/session", ""); r.status != 405 || r.header.Get("Allow") == "" {
		t.Errorf("PUT: %d %q", r.status, r.header.Get("Allow"))
	}
}
