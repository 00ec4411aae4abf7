package httpauth

// LastCookie exposes the cookie parser to the tests.
var LastCookie = lastCookie

// NewContext exposes the session context to the benchmarks.
var NewContext = newContext
