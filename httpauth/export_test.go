package httpauth

import (
	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/internal/httpreq"
)

// LastCookie exposes the cookie parser to the tests.
var LastCookie = httpreq.LastCookie

// NewContext exposes the session context to the benchmarks.
var NewContext = headless.NewContext

// Core exposes the generated conversion to headless.Config to the tests.
var Core = Config.core
