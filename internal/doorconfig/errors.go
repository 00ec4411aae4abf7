package doorconfig

import "strings"

// Named returns err, from headless.New or headless.EvictHandler, under the
// door's name: "headless: x" reads "fiberauth: x", so that a message says
// which package refused the config. errors.Is and errors.As still see err.
func Named(door string, err error) error { return named{door: door, err: err} }

type named struct {
	door string
	err  error
}

func (e named) Error() string { return e.door + ": " + strings.TrimPrefix(e.err.Error(), "headless: ") }

func (e named) Unwrap() error { return e.err }
