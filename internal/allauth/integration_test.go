package allauth_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/allauth"

	"go.uber.org/goleak"

	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// TestMain fails the package if a test leaves a goroutine behind (a server
// not closed, a connection pool not drained).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newStandIn starts an allauthtest server and a Client on its real loopback
// URL (the client's own transport), both closed when the test ends.
func newStandIn(t *testing.T, cfg allauth.Config, opts ...allauthtest.Option) (*allauthtest.Server, *allauth.Client) {
	t.Helper()
	srv := allauthtest.NewServer(opts...)
	cfg.BaseURL = srv.URL
	c, err := allauth.New(cfg)
	if err != nil {
		srv.Close()
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		c.CloseIdleConnections()
		srv.Close()
	})
	return srv, c
}

func cookieCred(tok string) allauth.Credential {
	return allauth.Credential{Kind: introspect.Cookie, Token: tok}
}

func TestIntegrationValidCredentials(t *testing.T) {
	t.Parallel()
	srv, c := newStandIn(t, allauth.Config{})
	srv.AddUser(allauthtest.User{Username: "alice", Email: "alice@example.com", Password: "alice-pass-123"})
	srv.AddUser(allauthtest.User{Username: "bob", Email: "bob@example.com", Password: "bob-pass-123"})
	srv.AddUser(allauthtest.User{
		ID: "3f1c2b8e-6a52-4c8e-9a8e-2f8d6b1e4c71", Username: "erin", Password: "pw",
		Extra: map[string]any{"is_staff": true, "org": map[string]any{"id": 42, "name": "Acme"}},
	})

	tests := []struct {
		name, username, id, email string
		cred                      func() allauth.Credential
	}{
		{"alice token", "alice", "1", "alice@example.com", func() allauth.Credential { return sessionToken(srv.IssueToken("alice")) }},
		{"bob token", "bob", "2", "bob@example.com", func() allauth.Credential { return sessionToken(srv.IssueToken("bob")) }},
		{"alice cookie", "alice", "1", "alice@example.com", func() allauth.Credential { return cookieCred(srv.IssueCookie("alice")) }},
		// One Django session key serves both clients (A6).
		{"cookie value as token", "bob", "2", "bob@example.com", func() allauth.Credential { return sessionToken(srv.IssueCookie("bob")) }},
		{"token as cookie", "alice", "1", "alice@example.com", func() allauth.Credential { return cookieCred(srv.IssueToken("alice")) }},
		{"uuid id", "erin", "3f1c2b8e-6a52-4c8e-9a8e-2f8d6b1e4c71", "", func() allauth.Credential { return sessionToken(srv.IssueToken("erin")) }},
	}
	for _, tc := range tests {
		cred := tc.cred()
		if len(cred.Token) != 32 {
			t.Fatalf("%s: stand-in issued %q", tc.name, cred.Token)
		}
		before := srv.SessionCalls()
		s, err := c.Session(context.Background(), cred)
		if err != nil {
			t.Fatalf("%s: Session: %v", tc.name, err)
		}
		if s.User.ID != tc.id || s.User.Username != tc.username || s.User.Email != tc.email ||
			s.User.Display != tc.username || !s.User.HasUsablePassword {
			t.Errorf("%s: User = %+v", tc.name, s.User)
		}
		if len(s.Methods) != 1 || s.Methods[0].Method != "password" || s.Methods[0].At.IsZero() {
			t.Errorf("%s: Methods = %+v", tc.name, s.Methods)
		}
		if d := time.Since(s.Methods[0].At); d < -time.Minute || d > time.Hour {
			t.Errorf("%s: method time %v is not about now", tc.name, s.Methods[0].At)
		}
		if n := srv.SessionCalls() - before; n != 1 {
			t.Errorf("%s: session calls = %d, want 1", tc.name, n)
		}
	}

	s, err := c.Session(context.Background(), sessionToken(srv.IssueToken("erin")))
	if err != nil {
		t.Fatal(err)
	}
	var extra struct {
		IsStaff bool `json:"is_staff"`
		Org     struct {
			ID   int    `json:"id"`
			Name string `json:"name"`
		} `json:"org"`
	}
	if err := s.User.Decode(&extra); err != nil || !extra.IsStaff || extra.Org.ID != 42 || extra.Org.Name != "Acme" {
		t.Errorf("extra fields %+v, %v; raw %s", extra, err, s.User.Raw)
	}
}

func TestIntegrationCustomMountAndCookieName(t *testing.T) {
	t.Parallel()
	srv, c := newStandIn(t, allauth.Config{Mount: "/api/auth", CookieName: "sid"},
		allauthtest.WithMount("/api/auth"), allauthtest.WithSessionCookieName("sid"))
	srv.AddUser(allauthtest.User{Username: "alice", Password: "pw"})
	if got, want := c.Endpoint(introspect.Cookie), srv.SessionURL("browser"); got != want {
		t.Errorf("Endpoint(Cookie) = %q, stand-in serves %q", got, want)
	}
	if got, want := c.Endpoint(introspect.SessionToken), srv.SessionURL("app"); got != want {
		t.Errorf("Endpoint(SessionToken) = %q, stand-in serves %q", got, want)
	}
	for _, cred := range []allauth.Credential{sessionToken(srv.IssueToken("alice")), cookieCred(srv.IssueCookie("alice"))} {
		s, err := c.Session(context.Background(), cred)
		if err != nil || s.User.Username != "alice" {
			t.Errorf("%v: Session = %v, %v", cred, s, err)
		}
	}

	// A client with the default cookie name sends "sessionid", which this
	// Django project ignores: 401, not a login.
	other, err := allauth.New(allauth.Config{BaseURL: srv.URL, Mount: "/api/auth"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.CloseIdleConnections()
	_, err = other.Session(context.Background(), cookieCred(srv.IssueCookie("alice")))
	if !errors.Is(err, introspect.ErrUnauthenticated) {
		t.Errorf("wrong cookie name: %v, want ErrUnauthenticated", err)
	}
	// And one with the wrong mount hits Django's HTML 404.
	wrongMount, err := allauth.New(allauth.Config{BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer wrongMount.CloseIdleConnections()
	_, err = wrongMount.Session(context.Background(), sessionToken(srv.IssueToken("alice")))
	var ue *introspect.UpstreamError
	if !errors.As(err, &ue) || ue.Status != 404 {
		t.Errorf("wrong mount: %v, want an UpstreamError 404", err)
	}
}

func TestIntegrationLifecycle(t *testing.T) {
	t.Parallel()
	srv, c := newStandIn(t, allauth.Config{})
	srv.AddUser(allauthtest.User{Username: "dave", Password: "pw"})
	ctx := context.Background()
	token := srv.IssueToken("dave")
	cookie := srv.IssueCookie("dave")
	both := []allauth.Credential{sessionToken(token), cookieCred(cookie)}

	expect := func(step string, cred allauth.Credential, want error) {
		t.Helper()
		s, err := c.Session(ctx, cred)
		if want == nil {
			if err != nil || s.User.Username != "dave" || s.User.ID != "1" {
				t.Errorf("%s, %v: Session = %v, %v; want dave", step, cred.Kind, s, err)
			}
			return
		}
		if s != nil {
			t.Errorf("%s, %v: Session %+v, want %v", step, cred.Kind, s.User, want)
			return
		}
		checkErrorShape(t, err, cred.Token)
		if !errors.Is(err, want) {
			t.Errorf("%s, %v: %v, want %v", step, cred.Kind, err, want)
			return
		}
		if ae := authOf(t, err); allauth.IsLocal(ae) {
			t.Errorf("%s, %v: answered locally, want allauth's answer", step, cred.Kind)
		}
	}

	for _, cred := range both {
		expect("fresh", cred, nil)
	}
	// A5: an inactive user's session answers 401, and revives.
	srv.SetActive("dave", false)
	for _, cred := range both {
		expect("inactive", cred, introspect.ErrUnauthenticated)
		expect("still inactive", cred, introspect.ErrUnauthenticated)
	}
	srv.SetActive("dave", true)
	for _, cred := range both {
		expect("reactivated", cred, nil)
	}
	// A4/A6: after logout the app client says 410, the browser client 401.
	srv.Logout(token)
	expect("logged out", sessionToken(token), introspect.ErrSessionGone)
	expect("logged out", cookieCred(token), introspect.ErrUnauthenticated)
	expect("other session", cookieCred(cookie), nil)
	// A5: a deleted user's sessions answer 401, not 410.
	srv.DeleteUser("dave")
	expect("deleted", sessionToken(cookie), introspect.ErrUnauthenticated)
	expect("deleted", cookieCred(cookie), introspect.ErrUnauthenticated)
	// A3: unknown tokens.
	expect("unknown", sessionToken("abcdefghijklmnopqrstuvwxyz012345"), introspect.ErrSessionGone)
	expect("unknown", cookieCred("abcdefghijklmnopqrstuvwxyz012345"), introspect.ErrUnauthenticated)
	expect("garbage", sessionToken(`a"<b>%c;d`), introspect.ErrSessionGone)
	expect("4 KiB", sessionToken(strings.Repeat("a", 4096)), introspect.ErrSessionGone)
}

func TestIntegrationPendingFlow(t *testing.T) {
	t.Parallel()
	srv, c := newStandIn(t, allauth.Config{})
	srv.AddUser(allauthtest.User{Username: "erin", Email: "erin@example.com", Password: "pw", PendingEmailVerification: true})
	_, err := c.Session(context.Background(), sessionToken(srv.IssueToken("erin")))
	if !errors.Is(err, introspect.ErrUnauthenticated) {
		t.Fatalf("pending login: %v, want ErrUnauthenticated", err)
	}
	ae := authOf(t, err)
	if f, ok := ae.Pending(); !ok || f.ID != "verify_email" {
		t.Errorf("Pending() = %+v, %v; flows %+v", f, ok, ae.Flows)
	}
}

func TestIntegrationLocalAnswersSendNothing(t *testing.T) {
	t.Parallel()
	srv, c := newStandIn(t, allauth.Config{})
	for _, cred := range []allauth.Credential{
		sessionToken(""), sessionToken("  "), sessionToken("bad token"), sessionToken(strings.Repeat("a", 4097)),
		cookieCred("a;sessionid=b"),
		{Kind: introspect.Bearer, Token: "a b"},
	} {
		if _, err := c.Session(context.Background(), cred); err == nil || !allauth.IsLocal(authOf(t, err)) {
			t.Errorf("%q: %v, want a local AuthError", cred.Token, err)
		}
	}
	if n := srv.SessionCalls(); n != 0 {
		t.Errorf("session calls = %d, want 0", n)
	}
}

func TestIntegrationFaults(t *testing.T) {
	t.Parallel()
	html502 := "<html><body><h1>502 Bad Gateway</h1></body></html>"
	tests := []struct {
		name       string
		fault      allauthtest.Fault
		status     int
		retryAfter time.Duration
		timeout    bool
	}{
		{"503 with Retry-After", allauthtest.Fault{Status: 503, RetryAfter: "7"}, 503, 7 * time.Second, false},
		{"429 bare", allauthtest.Fault{Status: 429}, 429, 0, false},
		{"500", allauthtest.Fault{Status: 500}, 500, 0, false},
		{"502 HTML", allauthtest.Fault{Status: 502, Body: html502, ContentType: "text/html"}, 502, 0, false},
		{"delay past Timeout", allauthtest.Fault{Delay: 30 * time.Second}, 0, 0, true},
		{"drop", allauthtest.Fault{Drop: true}, 0, 0, false},
		{"garbage body", allauthtest.Fault{Body: "garbage\x00\xff"}, 200, 0, false},
		{"truncated body", allauthtest.Fault{Body: recAlice200[:120]}, 200, 0, false},
		{"HTML 200", allauthtest.Fault{Body: recDjango404, ContentType: "text/html; charset=utf-8"}, 200, 0, false},
		{"401 without status", allauthtest.Fault{Status: 401, Body: `{"detail": "nope"}`}, 401, 0, false},
		{"410 HTML", allauthtest.Fault{Status: 410, Body: "<h1>Gone</h1>", ContentType: "text/html"}, 410, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// A short Timeout only where it is the point, so a loaded machine
			// cannot turn the other cases into timeouts.
			timeout := 10 * time.Second
			if tc.timeout {
				timeout = 300 * time.Millisecond
			}
			srv, c := newStandIn(t, allauth.Config{Timeout: timeout})
			srv.AddUser(allauthtest.User{Username: "alice", Password: "pw"})
			token := srv.IssueToken("alice")
			srv.SetFault(tc.fault)

			start := time.Now()
			s, err := c.Session(context.Background(), sessionToken(token))
			elapsed := time.Since(start)
			if s != nil {
				t.Fatalf("Session %+v under fault %+v", s.User, tc.fault)
			}
			checkErrorShape(t, err, token)
			ue := upstreamOf(t, err)
			if ue.Status != tc.status || ue.RetryAfter != tc.retryAfter || ue.Timeout() != tc.timeout {
				t.Errorf("UpstreamError = %+v (Timeout %v), want Status %d RetryAfter %v Timeout %v",
					ue, ue.Timeout(), tc.status, tc.retryAfter, tc.timeout)
			}
			if elapsed > timeout+5*time.Second {
				t.Errorf("took %v with Timeout %v", elapsed, timeout)
			}
			if n := srv.SessionCalls(); n != 1 {
				t.Errorf("session calls = %d, want 1 (no retry once the request was sent)", n)
			}

			// The fault lifted, the same token works again.
			srv.SetFault(allauthtest.Fault{})
			if s, err := c.Session(context.Background(), sessionToken(token)); err != nil || s.User.Username != "alice" {
				t.Errorf("after the fault: %v, %v", s, err)
			}
		})
	}
}

func TestIntegrationOversizedAnswer(t *testing.T) {
	t.Parallel()
	srv, c := newStandIn(t, allauth.Config{MaxBodyBytes: 4096})
	srv.AddUser(allauthtest.User{Username: "alice", Password: "pw", Extra: map[string]any{"blob": strings.Repeat("x", 8192)}})
	token := srv.IssueToken("alice")
	_, err := c.Session(context.Background(), sessionToken(token))
	checkErrorShape(t, err, token)
	if ue := upstreamOf(t, err); ue.Status != 200 || !strings.Contains(ue.Reason, "size limit") {
		t.Errorf("UpstreamError = %+v, want the 200 rejected for its size", ue)
	}
	// Within the limit the same user is fine.
	srv.UpdateUser("alice", func(u *allauthtest.User) { u.Extra = map[string]any{"blob": "small"} })
	if s, err := c.Session(context.Background(), sessionToken(token)); err != nil || s.User.Username != "alice" {
		t.Errorf("small answer: %v, %v", s, err)
	}
}

func TestIntegrationServerGone(t *testing.T) {
	t.Parallel()
	srv := allauthtest.NewServer()
	srv.AddUser(allauthtest.User{Username: "alice", Password: "pw"})
	token := srv.IssueToken("alice")
	c, err := allauth.New(allauth.Config{BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	if _, err := c.Session(context.Background(), sessionToken(token)); err != nil {
		t.Fatalf("before Close: %v", err)
	}
	srv.Close()
	s, err := c.Session(context.Background(), sessionToken(token))
	if s != nil {
		t.Fatalf("Session %+v from a closed server", s.User)
	}
	checkErrorShape(t, err, token)
	if ue := upstreamOf(t, err); ue.Status != 0 {
		t.Errorf("UpstreamError = %+v, want no status", ue)
	}
}

// TestIntegrationConcurrent: many goroutines with distinct users' tokens
// share one Client; each sees its own user, every time. Run under -race.
func TestIntegrationConcurrent(t *testing.T) {
	t.Parallel()
	const (
		workers  = 64
		requests = 40
	)
	srv, c := newStandIn(t, allauth.Config{Timeout: 30 * time.Second})
	type account struct {
		username, id string
		cred         allauth.Credential
		gone         allauth.Credential
	}
	accounts := make([]account, workers)
	for i := range accounts {
		name := fmt.Sprintf("user%02d", i)
		u := srv.AddUser(allauthtest.User{Username: name, Email: name + "@example.com", Password: "pw"})
		a := account{username: name, id: fmt.Sprint(u.ID)}
		if i%2 == 0 {
			a.cred = sessionToken(srv.IssueToken(name))
		} else {
			a.cred = cookieCred(srv.IssueCookie(name))
		}
		logout := srv.IssueToken(name)
		srv.Logout(logout)
		a.gone = sessionToken(logout)
		accounts[i] = a
	}

	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []string
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := accounts[w]
			for r := range requests {
				if r%10 == 9 {
					if _, err := c.Session(context.Background(), a.gone); !errors.Is(err, introspect.ErrSessionGone) {
						fail("worker %d request %d (logged out): %v", w, r, err)
					}
					continue
				}
				s, err := c.Session(context.Background(), a.cred)
				if err != nil {
					fail("worker %d request %d: %v", w, r, err)
					continue
				}
				if s.User.Username != a.username || s.User.ID != a.id || s.User.Email != a.username+"@example.com" {
					fail("worker %d request %d: got user %q id %q, want %q id %q", w, r, s.User.Username, s.User.ID, a.username, a.id)
				}
			}
		}()
	}
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	if n := srv.SessionCalls(); n != workers*requests {
		t.Errorf("session calls = %d, want %d", n, workers*requests)
	}
}
