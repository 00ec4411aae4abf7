// Package introspect holds the types of allauth's answers that users of
// this module read and write: who the caller is ([Session], [User],
// [Method]), why allauth said no ([AuthError] with its [Flow]s, or an
// [*UpstreamError] when allauth failed), how a credential reaches allauth
// ([Kind]), and the settings of the JWT check ([JWTConfig]) and of the
// circuit breaker ([BreakerConfig], [Protection]). The client that asks
// allauth is internal to this module; package headless uses it.
//
// The errors of a lookup:
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
// never appears in an error string or a log line written by this module.
package introspect
