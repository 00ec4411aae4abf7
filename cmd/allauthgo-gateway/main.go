// Command allauthgo-gateway is a forward-auth server for Django allauth
// headless sessions: nginx (auth_request), Caddy (forward_auth), Traefik
// (forwardAuth) and Envoy (ext_authz) ask its /auth whether a request may
// through, and copy the user it names onto the request they forward. See
// docs/gateway.md.
//
//	ALLAUTH_URL=http://127.0.0.1:8000 go run ./cmd/allauthgo-gateway
//
// Settings are environment variables or the same-named flags
// (-allauth-url, -cache-ttl...; -h lists them). A bad setting is reported on
// stderr with exit status 2, before anything listens. SIGTERM (or Ctrl-C)
// stops it gracefully.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/allauthgo/headless/internal/gateway"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the program; its exit status is 0 after a clean shutdown, 2 for a
// bad configuration, 1 when serving failed.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, err := gateway.Load(args, getenv, stderr)
	if errors.Is(err, gateway.ErrHelp) {
		return 0
	}
	if err != nil {
		_, _ = fmt.Fprintln(stderr, "allauthgo-gateway: configuration:", err)
		return 2
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	g, err := gateway.New(cfg, log) //nolint:contextcheck // the gateway outlives no request; ctx ends it in ListenAndServe
	if err != nil {
		_, _ = fmt.Fprintln(stderr, "allauthgo-gateway: configuration:", err)
		return 2
	}
	defer func() { _ = g.Close() }()
	if err := g.ListenAndServe(ctx); err != nil {
		log.Error("gateway failed", "error", err.Error())
		return 1
	}
	return 0
}
