// Package headless lets a Go service trust a Django allauth headless login
// without sharing Django's database. An [Authenticator] reads a request's
// session token, Bearer token or session cookie, answers from a short-lived
// cache or asks allauth's session endpoint (or verifies allauth's JWT
// locally), and says who is calling.
//
// Most services use a front door, which wraps an Authenticator in their
// framework's middleware: fiberauth (Fiber v2), fiberauth/v3 (Fiber v3) or
// httpauth (net/http, chi, and echo or gin through their wrappers). Use this
// package directly to write another door, to mount the eviction webhook
// ([EvictHandler]) or the readiness check ([Authenticator.Ready]).
//
// # The contract
//
// Every door answers alike:
//
//	allauth's answer / the request        the answer
//	no credential                         401, or anonymous when optional
//	malformed or oversized credential     what allauth answers for it (410 for an app
//	                                      session token, 401 for a Bearer token or a
//	                                      cookie), without asking allauth
//	200, authenticated                    the session, and the request goes on
//	401 (not authenticated, inactive,     401
//	pending flow)
//	410 (session gone)                    410: apps drop the token, as allauth's spec
//	                                      tells them
//	429, 5xx, timeout, refused, not       503 with Retry-After (1 to 300 s); never
//	allauth's JSON                        401/410, so apps keep valid tokens
//
// Error bodies follow allauth's envelope, {"status": 401, "errors": [{"code":
// "...", "message": "..."}]} ([Error.Body]), with Cache-Control: no-store, and
// a WWW-Authenticate header (RFC 6750) on 401 when a source reads the
// Authorization header ([Error.Header]).
//
// # Tracing
//
// With OpenTelemetry set up (its global TracerProvider, or
// [Config.TracerProvider]), each lookup at allauth, a cache miss, is a span
// named "allauth.session_lookup", a child of the span in the request's
// context ([Request.Context]), and carries its W3C traceparent to allauth.
// Its attributes say the credential's kind, the outcome, the cache tier that
// answered, coalesced or not, stale or not, allauth's status class and the
// circuit breaker's state; never the token nor any hash of it. A cache hit
// starts no span and allocates nothing. docs/tracing.md lists the
// attributes.
package headless
