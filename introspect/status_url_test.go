package introspect_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// A status allauth should not answer (here a 404: the Mount is wrong) names
// the URL that was asked, in the error's text, so that the log line says
// where the lookup went; the token, sent in a header, is not in it.
func TestUnexpectedStatusNamesTheURL(t *testing.T) {
	t.Parallel()
	srv, c := newStandIn(t, introspect.Config{Mount: "/accounts"})
	srv.AddUser(allauthtest.User{Username: "alice", Email: "alice@example.com", Password: "alice-pass-123"})
	token := srv.IssueToken("alice")
	for _, tc := range []struct {
		kind introspect.Kind
		url  string
	}{
		{introspect.SessionToken, srv.URL + "/accounts/app/v1/auth/session"},
		{introspect.Cookie, srv.URL + "/accounts/browser/v1/auth/session"},
	} {
		_, err := c.Session(context.Background(), introspect.Credential{Kind: tc.kind, Token: token})
		up := upstreamOf(t, err)
		if up.Status != http.StatusNotFound || up.URL != tc.url {
			t.Errorf("%v: status %d, URL %q; want 404 from %s", tc.kind, up.Status, up.URL, tc.url)
		}
		if msg := err.Error(); !strings.Contains(msg, "status 404 from "+tc.url) || strings.Contains(msg, token) {
			t.Errorf("%v: error %q, want the status and URL and no token", tc.kind, msg)
		}
		ping := upstreamOf(t, c.Ping(context.Background(), tc.kind))
		if ping.URL != tc.url || !strings.Contains(ping.Error(), tc.url) {
			t.Errorf("%v: Ping error %q, want the URL %s", tc.kind, ping.Error(), tc.url)
		}
	}
}
