// Package credential holds the byte rules of allauth credentials, shared by
// introspect's client and the headless core: which bytes a session token, a
// Bearer token or a session cookie may hold before allauth is asked.
package credential

// MaxBytes is the longest credential worth asking allauth about: gunicorn
// refuses longer header lines, and no allauth token comes near it.
const MaxBytes = 4 << 10

// The kinds, numbered as introspect.Kind (a test there checks they agree).
const (
	SessionToken = 1
	Bearer       = 2
	Cookie       = 3
)

// WellFormed reports whether token (already trimmed, non-empty) could be a
// valid credential of this kind: at most maxLen bytes, all of them allowed
// for the kind. It takes a string or a []byte, so a
// middleware can check a header value without copying it.
func WellFormed[T ~string | ~[]byte](kind uint8, token T, maxLen int) bool {
	if len(token) == 0 || len(token) > maxLen {
		return false
	}
	if int(kind) >= len(allowed) {
		return false
	}
	set := &allowed[kind]
	for i := 0; i < len(token); i++ {
		if !set[token[i]] {
			return false
		}
	}
	return true
}

// allowed[kind][b] caches tokenByte: the check runs on every request.
var allowed = func() (t [Cookie + 1][256]bool) {
	for k := uint8(SessionToken); k <= Cookie; k++ {
		for b := 0; b < 256; b++ {
			t[k][b] = tokenByte(k, byte(b))
		}
	}
	return t
}()

// tokenByte reports whether b may appear in a token of this kind. Every kind
// is limited to visible ASCII. Cookies also exclude what would split or
// quote a Cookie header (RFC 6265 cookie-octet), and Bearer tokens are
// limited to RFC 6750's b64token alphabet, which every JWT fits.
func tokenByte(kind uint8, b byte) bool {
	if b < 0x21 || b > 0x7e {
		return false
	}
	switch kind {
	case Cookie:
		return b != '"' && b != ',' && b != ';' && b != '\\'
	case Bearer:
		return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' ||
			b == '-' || b == '.' || b == '_' || b == '~' || b == '+' || b == '/' || b == '='
	default:
		return true
	}
}
