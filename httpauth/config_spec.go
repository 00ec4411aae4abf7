//go:build ignore

// The door's own fields of Config: go generate ./httpauth/ adds the core's.

package httpauth

import (
	"net/http"

	"github.com/allauthgo/headless"
)

// Config configures the middleware. Only BaseURL is required; every other
// field has a working default. Its fields from BaseURL on are
// headless.Config's, with the same meaning (and the same as in
// fiberauth.Config).
type Config struct {
	// Next defines a function to skip this middleware when it returns true.
	//
	// Optional. Default: nil
	Next func(r *http.Request) bool

	// Sources are where a request's credential is looked for, in order;
	// the first that holds a non-blank value is the credential (see
	// headless.FromHeader, headless.FromAuthHeader and headless.FromCookie).
	//
	// Optional. Default: headless.FromHeader(headless.HeaderSessionToken)
	Sources []headless.Source

	// Optional lets a request without a credential through as anonymous
	// (UserFrom returns nil), as Middleware.Optional does. A credential that
	// allauth rejects still fails.
	//
	// Optional. Default: false
	Optional bool

	// ErrorHandler answers every failure. Its error is a *headless.Error
	// (see headless.ErrorFrom); it must write the answer and not call the
	// next handler.
	//
	// Optional. Default: DefaultErrorHandler (allauth's JSON envelope)
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)
}
