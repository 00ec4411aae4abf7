// Package cache keeps allauth's answers for a short time, so that most
// requests never leave the process and a burst of requests for one token
// costs allauth one call.
//
// A [Cache] sits in front of any fetch function (usually
// introspect.Client.Session). It answers from an in-process tier, bounded by
// MaxEntries, and, with Config.Storage (any Fiber-style storage, such as
// Redis), from a shared tier behind it, for several instances that share what
// they learnt. With gofiber/storage's Redis driver, an eviction on one
// instance reaches every instance's in-process tier by pub/sub; otherwise an
// in-process copy of a shared answer is rechecked after Config.Recheck.
//
// Keys are SHA-256 hashes over the credential kind, the allauth endpoint and
// the token ([NewKey]); a raw token is never stored, logged or used as a
// coalescing key. Everything read back from the shared tier is untrusted: a
// value is served no longer than its reader's own TTL after allauth gave it,
// and with Config.Secret it must carry the HMAC of its key and contents.
//
// What is kept, and for how long:
//   - an authenticated answer for TTL (capped by a caller's deadline, such as
//     a JWT's exp), and StaleIfError longer as a fallback while allauth fails;
//   - allauth's 401 or 410 for NegativeTTL;
//   - an upstream failure never.
package cache
