// Package version is the library's version, sent in the allauth client's
// User-Agent and named by its tracer.
package version

// Version is this library's version.
const Version = "0.1.0"
