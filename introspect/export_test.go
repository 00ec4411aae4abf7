package introspect

// DecodeAnswer lets the external tests (fuzz_test.go) drive the response
// decoder directly, without an HTTP round trip per input.
var DecodeAnswer = decodeAnswer
