// Command browser shows a single-page app that logs in with allauth's
// browser API (a session cookie, CSRF) and calls a Fiber API protected by
// that same cookie.
//
//	go run ./_examples/browser   # then open http://127.0.0.1:3000
//
// The page and allauth must share an origin for the browser to send the
// sessionid cookie to the API, so this server also reverse-proxies
// /_allauth/ to allauth (in production a proxy in front of both usually
// does). It keeps the Host header, so that a real Django accepts the
// page's CSRF Origin. With ALLAUTH_URL unset a stand-in allauth (package
// allauthtest) runs with the user demo / demo-password. Environment:
//
//	ADDR         where the page and API listen (default 127.0.0.1:3000)
//	ALLAUTH_URL  a real allauth, e.g. http://127.0.0.1:8000 (default: the stand-in)
//
// A cookie is sent with every request, also ones another site makes the
// browser send: give state-changing API routes CSRF protection too (e.g.
// Fiber's csrf middleware). This API only has GET /api/me.
package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"

	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

//go:embed index.html
var indexHTML []byte

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		var bad *envError
		if errors.As(err, &bad) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// envError is a bad environment variable: exit code 2.
type envError struct{ name, value, why string }

func (e *envError) Error() string { return fmt.Sprintf("%s=%q: %s", e.name, e.value, e.why) }

// run serves the page, the API and the allauth proxy until ctx ends.
func run(ctx context.Context, getenv func(string) string, stdout, stderr io.Writer) error {
	addr := getenv("ADDR")
	if addr == "" {
		addr = "127.0.0.1:3000"
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return &envError{"ADDR", addr, "want host:port, e.g. 127.0.0.1:3000"}
	}
	allauthURL := getenv("ALLAUTH_URL")
	if allauthURL != "" {
		if u, err := url.Parse(allauthURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &envError{"ALLAUTH_URL", allauthURL, "want the Django origin, e.g. http://127.0.0.1:8000"}
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("page and API on ADDR: %w", err)
	}
	defer func() { _ = ln.Close() }()

	who := "log in as one of its users"
	if allauthURL == "" {
		standin := allauthtest.NewServer() //nolint:contextcheck // takes no context: it only binds a loopback port
		defer standin.Close()
		standin.AddUser(allauthtest.User{Username: "demo", Email: "demo@example.com", Password: "demo-password"})
		allauthURL, who = standin.URL, "stand-in, user demo / demo-password"
	}
	target, err := url.Parse(allauthURL)
	if err != nil {
		return &envError{"ALLAUTH_URL", allauthURL, err.Error()}
	}

	// The API reads the browser's session cookie and checks it on allauth's
	// browser endpoint.
	auth, err := fiberauth.NewMiddleware(fiberauth.Config{BaseURL: allauthURL, KeyLookup: "cookie:sessionid", Logger: log}) //nolint:contextcheck // the middleware outlives this call; it takes no request's context
	if err != nil {
		return &envError{"ALLAUTH_URL", allauthURL, err.Error()}
	}
	defer func() { _ = auth.Close() }()

	// Same-origin proxy to allauth.
	proxyTransport := &http.Transport{Proxy: nil, ResponseHeaderTimeout: 10 * time.Second}
	defer proxyTransport.CloseIdleConnections()
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host // Django checks the CSRF Origin against it
			r.SetXForwarded()
		},
		Transport: proxyTransport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Warn("allauth proxy", "path", r.URL.Path, "error", err)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	toAllauth := adaptor.HTTPHandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The adaptor's request context is fasthttp's RequestCtx, which is
		// recycled when the handler returns while net/http may still read
		// it: give the proxied request a context of its own (not cancelled
		// by Ctrl-C, so that the graceful shutdown lets it finish).
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		proxy.ServeHTTP(w, r.WithContext(ctx))
	})

	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/", func(c *fiber.Ctx) error {
		c.Type("html", "utf-8")
		return c.Send(indexHTML)
	})
	app.Get("/api/me", auth.Handler, func(c *fiber.Ctx) error {
		return c.JSON(fiberauth.UserFrom(c))
	})
	app.All("/_allauth/*", func(c *fiber.Ctx) error { //nolint:contextcheck // a Fiber handler has c, not a ctx parameter
		logout := c.Method() == fiber.MethodDelete && c.Path() == "/_allauth/browser/v1/auth/session"
		// The cookie allauth reads, the last of two (c.Cookies gives the
		// first); LastCookie copies it, so it outlives the handler.
		session := fiberauth.LastCookie(c, "sessionid")
		if err := toAllauth(c); err != nil {
			return err
		}
		// The proxy sees logouts: drop the session from the cache at once,
		// rather than letting the cookie work for up to CacheTTL.
		if logout && session != "" {
			if err := auth.Evict(c.UserContext(), session); err != nil {
				log.Warn("evict after logout", "error", err)
			}
		}
		return nil
	})

	served := make(chan error, 1)
	go func() { served <- app.Listener(ln) }()
	_, _ = fmt.Fprintf(stdout, "Open http://%s and log in (allauth on %s: %s). Stop with Ctrl-C.\n", ln.Addr(), allauthURL, who)

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownErr := app.ShutdownWithTimeout(5 * time.Second)
	_ = ln.Close() // Serve may not have started yet; it then returns at once
	if err := errors.Join(shutdownErr, <-served); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}
