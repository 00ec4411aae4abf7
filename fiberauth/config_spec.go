//go:build ignore

// The door's own fields of Config: go generate ./fiberauth/ adds the core's.

package fiberauth

import (
	"github.com/gofiber/fiber/v2"

	"github.com/allauthgo/headless"
)

// Config defines the config for the middleware. Only BaseURL is required;
// every other field has a working default. Its fields from BaseURL on are
// headless.Config's, with the same meaning.
type Config struct {
	// Next defines a function to skip this middleware when it returns true.
	//
	// Optional. Default: nil
	Next func(c *fiber.Ctx) bool

	// KeyLookup is a comma-separated list of "<source>:<name>" tried in
	// order; the first that holds a non-blank value is the credential.
	// Sources: "header:X-Session-Token" (an app session token; any header name
	// but Authorization), "header:Authorization" (a Bearer token, see
	// AuthScheme) and "cookie:<name>" (a browser session cookie, checked on
	// allauth's browser endpoint). Query strings are not supported: a token in
	// a URL ends up in access logs.
	//
	// Optional. Default: "header:X-Session-Token"
	KeyLookup string

	// AuthScheme is the scheme expected in the Authorization header, matched
	// case-insensitively. Another scheme (e.g. Basic) is not a credential.
	//
	// Optional. Default: "Bearer"
	AuthScheme string

	// Optional lets a request without a credential through as anonymous
	// (UserFrom returns nil), as Middleware.Optional does. A credential that
	// allauth rejects still fails.
	//
	// Optional. Default: false
	Optional bool

	// SuccessHandler runs after the user is stored.
	//
	// Optional. Default: func(c *fiber.Ctx) error { return c.Next() }
	SuccessHandler fiber.Handler

	// ErrorHandler answers every failure. Its error is an *Error. To let the
	// app's own fiber ErrorHandler answer instead, use AppErrorHandler.
	//
	// Optional. Default: DefaultErrorHandler (allauth's JSON envelope)
	ErrorHandler fiber.ErrorHandler

	// ContextKey is the Locals key under which the *introspect.User is
	// stored.
	//
	// Optional. Default: "user"
	ContextKey string

	// UserContext also stores the session in c.UserContext(), for code that
	// only gets a context.Context (see UserFromContext). It costs two
	// allocations per request, so it is off by default.
	//
	// Optional. Default: false
	UserContext bool
}

// coreTypes holds the core fields this door holds in its own type.
type coreTypes struct {
	Storage fiber.Storage
}

// ConfigDefault is the default config: New sets each zero field
// of a Config to its value here, so that changing it changes what New does.
var ConfigDefault = Config{
	KeyLookup:      "header:" + headless.HeaderSessionToken,
	AuthScheme:     "Bearer",
	SuccessHandler: func(c *fiber.Ctx) error { return c.Next() },
	ErrorHandler:   DefaultErrorHandler,
	ContextKey:     "user",
}
