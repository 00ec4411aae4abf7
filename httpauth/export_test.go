package httpauth

// LastCookie exposes the cookie parser to the tests.
var LastCookie = lastCookie
