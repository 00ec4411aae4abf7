//go:build ignore

// The door's own fields of Config: go generate ./fiberauth/v3/ adds the core's.

package fiberauth

import (
	"github.com/gofiber/fiber/v3"
	"github.com/gofiber/fiber/v3/extractors"

	"github.com/allauthgo/headless"
)

// Config defines the config for the middleware. Only BaseURL is required;
// every other field has a working default. Its fields from BaseURL on are
// headless.Config's, with the same meaning.
type Config struct {
	// Next defines a function to skip this middleware when it returns true.
	//
	// Optional. Default: nil
	Next func(c fiber.Ctx) bool

	// SuccessHandler runs after the user is stored.
	//
	// Optional. Default: func(c fiber.Ctx) error { return c.Next() }
	SuccessHandler fiber.Handler

	// ErrorHandler answers every failure. Its error is a *headless.Error.
	// To let the app's own fiber ErrorHandler answer instead, use
	// AppErrorHandler.
	//
	// Optional. Default: DefaultErrorHandler (allauth's JSON envelope)
	ErrorHandler fiber.ErrorHandler

	// Extractor says where the credential is: extractors.FromHeader(name)
	// (an app session token; FromHeader("Authorization") is
	// FromAuthHeader("Bearer")), extractors.FromAuthHeader(scheme) (a Bearer
	// token; the scheme is matched case-insensitively, another scheme is no
	// credential), extractors.FromCookie(name) (a browser session, checked on
	// allauth's browser endpoint), or extractors.Chain of these, tried in
	// order. It is translated at New into the core's sources, which read the
	// request as allauth would (a repeated header is refused, the last of two
	// cookies counts, a blank value is absent): its Extract function is never
	// called. New refuses FromQuery, FromForm and FromParam (a token in a URL
	// or form ends up in logs), FromCustom (its answer could not be checked as
	// allauth would check it) and FromAuthHeader("") (the raw header is no
	// token allauth knows).
	//
	// Optional. Default: extractors.FromHeader(headless.HeaderSessionToken)
	Extractor extractors.Extractor

	// Optional lets a request without a credential through as anonymous
	// (UserFrom returns nil), as Middleware.Optional does. A credential that
	// allauth rejects still fails.
	//
	// Optional. Default: false
	Optional bool

	// ContextKey is the Locals key under which the *introspect.User is
	// stored.
	//
	// Optional. Default: "user"
	ContextKey string
}

// coreTypes holds the core fields this door holds in its own type.
type coreTypes struct {
	Storage fiber.Storage
}

// ConfigDefault is the default config: New sets each zero field
// of a Config to its value here, so that changing it changes what New does.
var ConfigDefault = Config{
	SuccessHandler: func(c fiber.Ctx) error { return c.Next() },
	ErrorHandler:   DefaultErrorHandler,
	Extractor:      extractors.FromHeader(headless.HeaderSessionToken),
	ContextKey:     "user",
}
