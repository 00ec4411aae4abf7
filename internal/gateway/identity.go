package gateway

import (
	"encoding/base64"
	"net/http"
	"unsafe"

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
	// One backing array for the five values, each slice capped at its one
	// element, so that an Add elsewhere copies instead of writing into a
	// neighbour.
	vals := make([]string, 5)
	if s := res.Session; s != nil {
		u := &s.User
		vals[0], vals[1], vals[2], vals[3] = clean(u.ID), clean(u.Email), clean(u.Username), clean(u.Display)
		if len(u.Raw) > 0 {
			b := make([]byte, base64.StdEncoding.EncodedLen(len(u.Raw)))
			base64.StdEncoding.Encode(b, u.Raw)
			vals[4] = unsafe.String(unsafe.SliceData(b), len(b)) // b is never written again
		}
	}
	// Direct map writes: the names are canonical already.
	h[HeaderUserID] = vals[0:1:1]
	h[HeaderUserEmail] = vals[1:2:2]
	h[HeaderUserUsername] = vals[2:3:3]
	h[HeaderUserDisplay] = vals[3:4:4]
	h[HeaderUser] = vals[4:5:5]
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
