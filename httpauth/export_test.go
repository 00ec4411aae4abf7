package httpauth

// LastCookie exposes the cookie parser to the tests.
var LastCookie = lastCookie

// NewContext exposes the session context to the benchmarks.
var NewContext = newContext

// Core exposes the generated conversion to headless.Config to the tests.
var Core = Config.core
