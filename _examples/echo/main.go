// Command echo is a small Echo (v5) API that trusts a django-allauth
// headless login through package httpauth: echo.WrapMiddleware takes
// httpauth's func(http.Handler) http.Handler as it is, and the handlers
// read the user from the request's context.
//
//	ALLAUTH_URL=http://127.0.0.1:8000 go run .
//
// It is a module of its own (see go.mod), so that the library's go.mod
// does not require Echo. Environment:
//
//	ADDR         where the API listens (default 127.0.0.1:3000)
//	ALLAUTH_URL  the Django origin that serves allauth (default http://127.0.0.1:8000)
package main

import (
	"log"
	"net/http"
	"os"

	"github.com/labstack/echo/v5"

	"github.com/allauthgo/headless/httpauth"
)

func main() {
	auth, err := httpauth.NewMiddleware(httpauth.Config{BaseURL: orDefault(os.Getenv("ALLAUTH_URL"), "http://127.0.0.1:8000")})
	if err != nil {
		log.Fatal(err) // e.g. an ALLAUTH_URL without http://
	}
	// Start serves until Ctrl-C or SIGTERM, then shuts down gracefully.
	if err := newAPI(auth).Start(orDefault(os.Getenv("ADDR"), "127.0.0.1:3000")); err != nil {
		log.Print(err)
	}
	_ = auth.Close()
}

// newAPI routes the API; auth's Handler and Optional share one cache.
func newAPI(auth *httpauth.Middleware) *echo.Echo {
	e := echo.New()
	e.GET("/readyz", echo.WrapHandler(auth.Ready())) // 200 while allauth answers
	// Required: no valid session, no answer (401 or 410, in allauth's
	// error envelope, written by httpauth; the handler does not run).
	e.GET("/api/me", func(c *echo.Context) error {
		return c.JSON(http.StatusOK, httpauth.UserFrom(c.Request().Context()))
	}, echo.WrapMiddleware(auth.Handler))
	// Optional: anonymous without a credential; a bad one still fails.
	e.GET("/api/public", func(c *echo.Context) error {
		return c.JSON(http.StatusOK, map[string]any{"user": httpauth.UserFrom(c.Request().Context())}) // null when anonymous
	}, echo.WrapMiddleware(auth.Optional))
	return e
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}
