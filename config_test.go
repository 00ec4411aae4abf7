package headless

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// What New refuses, naming the field at fault (a door turns it into its own
// error or panic: fiberauth's Test_Config_Panics).
func TestConfig_NewRefuses(t *testing.T) {
	t.Parallel()
	const base = "http://127.0.0.1:8000"
	cases := []struct {
		name string
		cfg  Config
		want []string // all in the error
	}{
		{"no BaseURL", Config{}, []string{"BaseURL"}},
		{"ftp BaseURL", Config{BaseURL: "ftp://x"}, []string{"BaseURL", "http or https"}},
		{"BaseURL without scheme", Config{BaseURL: "127.0.0.1:8000"}, []string{"BaseURL"}},
		{"BaseURL without host", Config{BaseURL: "http://"}, []string{"BaseURL", "no host"}},
		{"BaseURL with query", Config{BaseURL: base + "?x=1"}, []string{"BaseURL"}},
		{"Mount not a path", Config{BaseURL: base, Mount: "_allauth"}, []string{"Mount"}},
		{"a header twice", Config{BaseURL: base, Sources: []Source{FromHeader(HeaderSessionToken), FromHeader("x-session-token")}}, []string{"X-Session-Token", "twice"}},
		{"two cookies", Config{BaseURL: base, Sources: []Source{FromCookie("sessionid"), FromCookie("sid")}}, []string{"2 cookies"}},
		{"bad cookie name", Config{BaseURL: base, Sources: []Source{FromCookie("a;b")}}, []string{"CookieName"}},
		{"short StorageSecret", Config{BaseURL: base, Storage: newMemStorage(), StorageSecret: []byte("short")}, []string{"StorageSecret", "16 bytes"}},
		{"StorageSecret without Storage", Config{BaseURL: base, StorageSecret: make([]byte, 32)}, []string{"StorageSecret", "Storage"}},
	}
	for _, tc := range cases {
		a, err := New(tc.cfg)
		if err == nil {
			_ = a.Close()
			t.Errorf("%s: New accepted it", tc.name)
			continue
		}
		if !strings.HasPrefix(err.Error(), "headless: ") {
			t.Errorf("%s: %q does not start with headless:", tc.name, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not name %q", tc.name, err, w)
			}
		}
	}
}

// The defaults work: New with only BaseURL reads X-Session-Token at the
// app endpoint under /_allauth; Mount moves it.
func TestConfig_Defaults(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{Logger: nil})
	wantUser(t, auth(a, withToken(srv.IssueToken("alice"))), "alice")
	wantError(t, auth(a, get()), http.StatusUnauthorized, CodeNotAuthenticated)
	if got := a.client.Endpoint(introspect.SessionToken); got != srv.SessionURL("app") {
		t.Errorf("endpoint %q, want %q", got, srv.SessionURL("app"))
	}
	d := Config{}.withDefaults()
	if len(d.Sources) != 1 || d.Sources[0].String() != "header:X-Session-Token" || d.Timeout <= 0 || d.CacheTTL <= 0 ||
		d.NegativeTTL <= 0 || d.MaxEntries <= 0 || d.Logger == nil {
		t.Errorf("defaults %+v", d)
	}

	mounted := allauthtest.NewServer(allauthtest.WithMount("/api/auth"))
	t.Cleanup(mounted.Close)
	mounted.AddUser(allauthtest.User{ID: 1, Username: "alice", Password: "pw"})
	m := newCore(t, mounted, Config{Mount: "/api/auth/"})
	wantUser(t, auth(m, withToken(mounted.IssueToken("alice"))), "alice")
}

// NewContext carries a session for handlers; the helpers read it back, and
// nothing from a context without one.
func TestContext(t *testing.T) {
	t.Parallel()
	srv, a := setup(t, Config{})
	s := auth(a, withToken(srv.IssueToken("bob"))).Session
	ctx := NewContext(context.Background(), s)
	if SessionFromContext(ctx) != s || UserFromContext(ctx) != &s.User {
		t.Error("the session is not read back")
	}
	if SessionFromContext(context.Background()) != nil || UserFromContext(context.Background()) != nil {
		t.Error("a session from an empty context")
	}
}
