// Package cache keeps allauth's answers for a short time, so that most
// requests never leave the process and a burst of requests for one token
// costs allauth one call.
//
// A [Cache] sits in front of any fetch function (usually
// introspect.Client.Session). It stores answers in a [Store]: in process by
// default ([newMemoryStore], bounded by MaxEntries), or in any fiber.Storage
// such as Redis ([newStorageStore]) when several instances must share what
// they learnt and see each other's evictions.
//
// Keys are SHA-256 hashes over the credential kind, the allauth endpoint and
// the token ([NewKey]); a raw token is never stored, logged or used as a
// coalescing key.
//
// What is kept, and for how long:
//   - an authenticated answer for TTL (capped by a caller's deadline, such as
//     a JWT's exp), and StaleIfError longer as a fallback while allauth fails;
//   - allauth's 401 or 410 for NegativeTTL;
//   - an upstream failure never.
package cache
