// Package introspect asks a Django allauth headless server who the caller of a
// request is.
//
// allauth hands apps a session token (sent as X-Session-Token), a JWT access
// token (sent as Authorization: Bearer) or, for browsers, a Django session
// cookie. A [Client] sends that credential to allauth's
// GET {mount}/{app|browser}/v1/auth/session endpoint and turns the answer into
// a [Session], or into one of a small set of errors:
//
//   - [ErrUnauthenticated]: allauth answered 401 (no user, an inactive user, a
//     pending login flow). The flows are kept in an [*AuthError].
//   - [ErrSessionGone]: allauth answered 410; the token is unknown or expired
//     and apps must drop it.
//   - [*UpstreamError]: anything else (connection refused, timeout, 429, 5xx,
//     an HTML or otherwise foreign body, a 200 that does not say who is logged
//     in, a body over the size limit). A broken answer is never a login and
//     never a 401 or 410.
//
// Credentials are checked before any request is made, and a raw credential
// never appears in an error string or a log line written by this package.
package introspect
