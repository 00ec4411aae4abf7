// Command gin is a small Gin API that trusts a django-allauth headless
// login through package httpauth. Gin has no adapter for a
// func(http.Handler) http.Handler middleware: wrap (below) is the few lines
// it takes, and the handlers read the user from the request's context.
//
//	ALLAUTH_URL=http://127.0.0.1:8000 go run .
//
// It is a module of its own (see go.mod), so that the library's go.mod
// does not require Gin. Environment:
//
//	ADDR         where the API listens (default 127.0.0.1:3000)
//	ALLAUTH_URL  the Django origin that serves allauth (default http://127.0.0.1:8000)
package main

import (
	"log"
	"net/http"
	"os"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/allauthgo/headless/httpauth"
)

func main() {
	auth, err := httpauth.NewMiddleware(httpauth.Config{BaseURL: orDefault(os.Getenv("ALLAUTH_URL"), "http://127.0.0.1:8000")})
	if err != nil {
		log.Fatal(err) // e.g. an ALLAUTH_URL without http://
	}
	srv := &http.Server{
		Addr:              orDefault(os.Getenv("ADDR"), "127.0.0.1:3000"),
		Handler:           newAPI(auth),
		ReadHeaderTimeout: 10 * time.Second,
	}
	log.Print(srv.ListenAndServe())
	_ = auth.Close()
}

// newAPI routes the API; auth's Handler and Optional share one cache.
func newAPI(auth *httpauth.Middleware) *gin.Engine {
	r := gin.New()
	r.GET("/readyz", gin.WrapH(auth.Ready())) // 200 while allauth answers
	// Required: no valid session, no answer (401 or 410, in allauth's
	// error envelope, written by httpauth; the handler does not run).
	r.GET("/api/me", wrap(auth.Handler), func(c *gin.Context) {
		c.JSON(http.StatusOK, httpauth.UserFrom(c.Request.Context()))
	})
	// Optional: anonymous without a credential; a bad one still fails.
	r.GET("/api/public", wrap(auth.Optional), func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"user": httpauth.UserFrom(c.Request.Context())}) // null when anonymous
	})
	return r
}

// wrap turns a net/http middleware into a gin.HandlerFunc: when mw lets the
// request through, the rest of gin's chain runs with the request mw passed
// on (its context holds the session); when mw answers (401, 410, 503), the
// chain is aborted, so no later handler writes after it.
func wrap(mw func(http.Handler) http.Handler) gin.HandlerFunc {
	return func(c *gin.Context) {
		passed := false
		mw(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			passed = true
			c.Request = r
			c.Next()
		})).ServeHTTP(c.Writer, c.Request)
		if !passed {
			c.Abort()
		}
	}
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}
