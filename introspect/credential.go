package introspect

import "fmt"

// Kind says how a credential reaches allauth, and so which endpoint answers
// for it.
type Kind uint8

const (
	// SessionToken is an app session token, sent as X-Session-Token to the
	// app endpoint. allauth answers 410 for one it does not know.
	SessionToken Kind = iota + 1
	// Bearer is a JWT access token (allauth's JWT token strategy), sent as
	// Authorization: Bearer to the app endpoint. allauth answers 401 for an
	// invalid one and 410 for one whose session has ended.
	Bearer
	// Cookie is a browser session cookie (Django's SESSION_COOKIE_NAME), sent
	// to the browser endpoint. allauth never answers 410 for it, only 401.
	Cookie
)

// String names the kind for logs and metrics.
func (k Kind) String() string {
	switch k {
	case SessionToken:
		return "session_token"
	case Bearer:
		return "bearer"
	case Cookie:
		return "cookie"
	default:
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
}
