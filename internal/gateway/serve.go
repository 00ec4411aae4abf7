package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Serve answers on ln until ctx is done (SIGTERM, in main), then stops
// taking connections and waits up to ShutdownTimeout for the requests in
// flight. It returns nil after a clean shutdown, or what stopped it.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           g,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10, // twice what nginx forwards by default
		ErrorLog:          nil,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	g.log.Info("gateway listening", g.summary(ln.Addr().String())...)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	g.log.Info("gateway shutting down", "timeout", g.cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	g.log.Info("gateway stopped")
	return nil
}

// ListenAndServe listens on ADDR and serves (see Serve).
func (g *Gateway) ListenAndServe(ctx context.Context) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", g.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", g.cfg.Addr, err)
	}
	return g.Serve(ctx, ln)
}

// summary is the startup log line's attributes: what is on, never a
// secret, a token or a password.
func (g *Gateway) summary(addr string) []any {
	return []any{
		"addr", addr,
		"allauth", redactURL(g.cfg.AllauthURL),
		"key_lookup", g.cfg.KeyLookup,
		"optional", g.cfg.Optional,
		"cache_ttl", g.cfg.CacheTTL.String(),
		"redis", redactURL(g.cfg.RedisURL),
		"storage_secret", g.cfg.StorageSecret != "",
		"evict_webhook", g.evict != nil,
		"jwt", g.cfg.JWTPublicKey != "",
	}
}

// redactURL is raw without its user info, or "" for "".
func redactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable)"
	}
	u.User = nil
	return u.String()
}
