package allauthtest_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/allauthgo/headless/introspect/allauthtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Recorded bodies (RESPONSES.md, django-allauth 65.16.1).
const (
	body401 = `{"status": 401, "data": {"flows": [{"id": "login"}, {"id": "signup"}]}, "meta": {"is_authenticated": false}}`
	body410 = `{"status": 410, "data": {"flows": [{"id": "login"}, {"id": "signup"}]}, "meta": {"is_authenticated": null}}`
	body409 = `{"status": 409}`

	bodyPending401 = `{"status": 401, "data": {"flows": [{"id": "login"}, {"id": "signup"}, {"id": "verify_email", "is_pending": true}]}, "meta": {"is_authenticated": false}}`

	bodyMismatch = `{"status": 400, "errors": [{"message": "The username and/or password you specified are not correct.", "code": "username_password_mismatch", "param": "password"}]}`
	bodyRequired = `{"status": 400, "errors": [{"message": "This field is required.", "code": "required", "param": "password"}]}`
	bodyConfig   = `{"status": 200, "data": {"account": {"login_methods": ["email", "username"], "is_open_for_signup": true, "email_verification_by_code_enabled": false, "login_by_code_enabled": false, "password_reset_by_code_enabled": false, "authentication_method": "username_email"}}}`

	aliceSession = `{"status": 200, "data": {"user": {"id": 1, "display": "alice", "email": "alice@example.com", "has_usable_password": true, "username": "alice"}, "methods": [{"method": "password", "at": 1795711583.4385333, "username": "alice"}]}, "meta": {"is_authenticated": true}}`
	aliceLogin   = `{"status": 200, "data": {"user": {"id": 1, "display": "alice", "email": "alice@example.com", "has_usable_password": true, "username": "alice"}, "methods": [{"method": "password", "at": 1795711583.4385333, "username": "alice"}]}, "meta": {"is_authenticated": true, "session_token": "84sa6mjzrjw9g6lva4y3gdtvo8zw9pa5"}}`
	bobLogin     = `{"status": 200, "data": {"user": {"id": 2, "display": "bob", "email": "bob@example.com", "has_usable_password": true, "username": "bob"}, "methods": [{"method": "password", "at": 1795711584.0076623, "email": "bob@example.com"}]}, "meta": {"is_authenticated": true, "session_token": "xjks814plmfw2drwvon7xenc81h7uag8"}}`
	daveSession  = `{"status": 200, "data": {"user": {"id": 4, "display": "dave", "email": "dave@example.com", "has_usable_password": true, "username": "dave"}, "methods": [{"method": "password", "at": 1795711588.754417, "username": "dave"}]}, "meta": {"is_authenticated": true}}`
	carolLogin   = `{"status": 401, "data": {"flows": [{"id": "login"}, {"id": "signup"}]}, "meta": {"is_authenticated": false, "session_token": "1gn9jwxhrkkx4jh3vhmr2xr1cmdi3bv7"}}`
	erinLogin    = `{"status": 401, "data": {"flows": [{"id": "login"}, {"id": "signup"}, {"id": "verify_email", "is_pending": true}]}, "meta": {"is_authenticated": false, "session_token": "9y1qz6evi58fozcl0zwfsbe1tqrbl84n"}}`

	clearCookie = `sessionid=""; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/; SameSite=Lax`
	jsonCache   = "max-age=0, no-cache, no-store, must-revalidate, private"
)

var (
	atRe    = regexp.MustCompile(`"at": [0-9]+\.[0-9]+`)
	tokenRe = regexp.MustCompile(`"session_token": "[a-z0-9]{32}"`)
	keyRe   = regexp.MustCompile(`^[a-z0-9]{32}$`)
)

// normalize hides what differs between runs (login times, session keys) but
// keeps every other byte, so formatting and key order are still compared.
func normalize(s string) string {
	s = atRe.ReplaceAllString(s, `"at": <at>`)
	return tokenRe.ReplaceAllString(s, `"session_token": <token>`)
}

// newServer starts a server with the recorded users alice (1), bob (2),
// carol (3, inactive) and dave (4).
func newServer(t *testing.T, opts ...allauthtest.Option) *allauthtest.Server {
	t.Helper()
	srv := allauthtest.NewServer(opts...)
	t.Cleanup(srv.Close)
	for _, u := range []allauthtest.User{
		{Username: "alice", Email: "alice@example.com", Password: "alice-pass-123"},
		{Username: "bob", Email: "bob@example.com", Password: "bob-pass-123"},
		{Username: "carol", Email: "carol@example.com", Password: "carol-pass-123", Inactive: true},
		{Username: "dave", Email: "dave@example.com", Password: "dave-pass-123"},
	} {
		srv.AddUser(u)
	}
	return srv
}

func newClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

type result struct {
	status int
	header http.Header
	body   string
}

// do sends one request; hdr is name, value pairs (Add, so repeats are kept).
func do(t *testing.T, hc *http.Client, method, url, body string, hdr ...string) result {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return result{resp.StatusCode, resp.Header, string(b)}
}

// rawGet sends hand-written header lines over a fresh TCP connection, for
// what Go's http.Client will not send (trailing blanks).
func rawGet(t *testing.T, srv *allauthtest.Server, path string, headerLines ...string) result {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(context.Background(), "tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	for _, l := range headerLines {
		req += l + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return result{resp.StatusCode, resp.Header, string(b)}
}

func expect(t *testing.T, got result, status int, body string) {
	t.Helper()
	if got.status != status {
		t.Errorf("status %d, want %d (body %q)", got.status, status, got.body)
	}
	if normalize(got.body) != normalize(body) {
		t.Errorf("body\n got %s\nwant %s", got.body, body)
	}
}

// sessionToken pulls meta.session_token out of a login answer.
func sessionToken(t *testing.T, body string) string {
	t.Helper()
	m := regexp.MustCompile(`"session_token": "([a-z0-9]{32})"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no session_token in %s", body)
	}
	return m[1]
}

// cookieValue returns the value of the named cookie among Set-Cookie lines.
func cookieValue(h http.Header, name string) (string, bool) {
	for _, l := range h.Values("Set-Cookie") {
		if v, ok := strings.CutPrefix(l, name+"="); ok {
			v, _, _ = strings.Cut(v, ";")
			return v, true
		}
	}
	return "", false
}
