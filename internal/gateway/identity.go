package gateway

import (
	"encoding/base64"
	"net/http"

	"github.com/allauthgo/headless"
)

// The identity headers of a 200: proxies copy them onto the request they
// forward upstream. Every one is always present on a 200, empty when there
// is no value (an anonymous request under OPTIONAL, a user without an
// email), so that a proxy that copies them overwrites whatever the client
// sent under those names.
const (
	HeaderUserID       = "X-Auth-User-Id"
	HeaderUserEmail    = "X-Auth-User-Email"
	HeaderUserUsername = "X-Auth-User-Username"
	HeaderUserDisplay  = "X-Auth-User-Display"
	// HeaderUser is the user object exactly as allauth sent it (JSON), in
	// standard base64 with padding: only [A-Za-z0-9+/=] reach the header,
	// which every proxy passes as is. Empty for a user that only a JWT
	// vouches for (no call to allauth: there is no user object).
	HeaderUser = "X-Auth-User"
	// HeaderErrorBody carries a refusal's JSON body in a header, on
	// /nginx/auth only: nginx's auth_request drops the subrequest's body,
	// and its error_page location re-sends this one (docs/gateway.md).
	HeaderErrorBody = "X-Auth-Error-Body"
)

// setIdentity writes the identity headers of res (all empty for an
// anonymous request). The values allauth sent are written as they are, but
// for control characters (a display name is the user's own text): each
// becomes a space, so that no value can end a header or start another; the
// exact value is in HeaderUser.
func setIdentity(h http.Header, res headless.Result) {
	var id, email, username, display, user string
	if s := res.Session; s != nil {
		u := &s.User
		id, email, username, display = clean(u.ID), clean(u.Email), clean(u.Username), clean(u.Display)
		if len(u.Raw) > 0 {
			user = base64.StdEncoding.EncodeToString(u.Raw)
		}
	}
	// Direct map writes: the names are canonical already.
	h[HeaderUserID] = []string{id}
	h[HeaderUserEmail] = []string{email}
	h[HeaderUserUsername] = []string{username}
	h[HeaderUserDisplay] = []string{display}
	h[HeaderUser] = []string{user}
}

// clean returns s with every control character (below 0x20, and DEL) but
// the tab replaced by a space; s itself, without allocating, when it has
// none.
func clean(s string) string {
	i := 0
	for ; i < len(s); i++ {
		if isCTL(s[i]) {
			break
		}
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if isCTL(b[i]) {
			b[i] = ' '
		}
	}
	return string(b)
}

func isCTL(c byte) bool { return (c < 0x20 && c != '\t') || c == 0x7f }
