// Command tracing shows the OpenTelemetry spans of a Fiber API that trusts a
// django-allauth headless login: each lookup at allauth is a span, a child of
// the request's span, and allauth receives its W3C traceparent.
//
//	go run ./_examples/tracing          # the demo: three requests, spans on stdout, then exit
//	go run ./_examples/tracing -serve   # then keep serving, until Ctrl-C
//
// Everything runs in one process: a stand-in allauth (package allauthtest)
// with the user demo / demo-password, and the API. The middleware is given
// no TracerProvider: it uses OpenTelemetry's global one, which main sets up.
// Spans are printed as JSON by OpenTelemetry's stdout exporter; lines of the
// demo's own start with "#". Environment:
//
//	ADDR    where the API listens (default 127.0.0.1:3000)
//	SERVE   1 is the same as -serve
//
// To send the spans to a collector instead, swap the exporter for
// otlptracehttp.New(ctx) (go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp),
// which reads OTEL_EXPORTER_OTLP_ENDPOINT, and WithSyncer for WithBatcher.
// It is not wired in here because this example shares the library's go.mod,
// and the OTLP exporter would add gRPC and protobuf to it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		var bad *inputError
		if errors.As(err, &bad) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// inputError is a bad flag or environment variable: exit code 2.
type inputError struct{ msg string }

func (e *inputError) Error() string { return e.msg }

type config struct {
	addr  string
	serve bool
}

func readConfig(args []string, getenv func(string) string) (config, error) {
	cfg := config{addr: getenv("ADDR")}
	if cfg.addr == "" {
		cfg.addr = "127.0.0.1:3000"
	}
	fs := flag.NewFlagSet("tracing", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&cfg.serve, "serve", false, "keep serving after the demo, until Ctrl-C")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return cfg, &inputError{"the only flag is -serve"}
	}
	if v := getenv("SERVE"); v != "" {
		serve, err := strconv.ParseBool(v)
		if err != nil {
			return cfg, &inputError{fmt.Sprintf("SERVE=%q: want 1 or 0", v)}
		}
		cfg.serve = cfg.serve || serve
	}
	if _, _, err := net.SplitHostPort(cfg.addr); err != nil {
		return cfg, &inputError{fmt.Sprintf("ADDR=%q: want host:port, e.g. 127.0.0.1:3000", cfg.addr)}
	}
	return cfg, nil
}

// setupTracing makes OpenTelemetry's global TracerProvider print spans to w,
// and its global propagator read and write W3C trace context. The returned
// func flushes and stops it.
func setupTracing(w io.Writer) (func(context.Context) error, error) {
	exporter, err := stdouttrace.New(stdouttrace.WithWriter(w), stdouttrace.WithPrettyPrint())
	if err != nil {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(
		// WithSyncer prints each span as it ends, in order, for the demo; a
		// service would use WithBatcher.
		sdktrace.WithSyncer(exporter),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "tracing-example"))),
	)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	return tp.Shutdown, nil
}

// requestSpan is the request's span, in c.UserContext(), as an app's tracing
// middleware makes it (otelfiber does the same): it continues the caller's
// trace when the request carries a traceparent.
func requestSpan(tracer trace.Tracer) fiber.Handler {
	return func(c *fiber.Ctx) error {
		ctx := otel.GetTextMapPropagator().Extract(c.UserContext(), headerCarrier{c})
		ctx, span := tracer.Start(ctx, c.Method()+" "+c.Path(), trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		c.SetUserContext(ctx)
		err := c.Next()
		span.SetAttributes(attribute.Int("http.response.status_code", c.Response().StatusCode()))
		return err
	}
}

// headerCarrier reads a Fiber request's headers for a propagator.
type headerCarrier struct{ c *fiber.Ctx }

func (h headerCarrier) Get(key string) string { return h.c.Get(key) }
func (h headerCarrier) Set(string, string)    {}
func (h headerCarrier) Keys() []string        { return nil }

// run sets up tracing, starts the stand-in and the API, plays the demo and,
// with -serve, serves until ctx ends. Spans and the demo's lines go to
// stdout.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := readConfig(args, getenv)
	if err != nil {
		return err
	}
	shutdown, err := setupTracing(stdout)
	if err != nil {
		return err
	}
	defer func() { _ = shutdown(context.WithoutCancel(ctx)) }()

	allauth := allauthtest.NewServer() //nolint:contextcheck // takes no context: it only binds a loopback port
	defer allauth.Close()
	allauth.AddUser(allauthtest.User{Username: "demo", Email: "demo@example.com", Password: "demo-password"})

	// No TracerProvider: the global one, set up above.
	auth, err := fiberauth.NewMiddleware(fiberauth.Config{BaseURL: allauth.URL}) //nolint:contextcheck // the middleware outlives this call; it takes no request's context
	if err != nil {
		return err
	}
	defer func() { _ = auth.Close() }()

	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(requestSpan(otel.Tracer("tracing-example")), auth.Handler) //nolint:contextcheck // a Fiber handler has c, whose UserContext is the request's
	app.Get("/api/me", func(c *fiber.Ctx) error {
		u := fiberauth.UserFrom(c)
		return c.JSON(fiber.Map{"id": u.ID, "username": u.Username})
	})
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on ADDR=%s: %w", cfg.addr, err)
	}
	served := make(chan error, 1)
	go func() { served <- app.Listener(ln) }()
	defer func() { _ = app.ShutdownWithTimeout(5 * time.Second) }()
	api := "http://" + ln.Addr().String()

	say := func(format string, args ...any) { _, _ = fmt.Fprintf(stdout, "# "+format+"\n", args...) }
	say("stand-in allauth on %s, API on %s", allauth.URL, api)
	if err := demo(ctx, say, allauth, api); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if !cfg.serve {
		return nil
	}
	say(`Serving until Ctrl-C. Log in (user demo / demo-password) and call the API:
#   TOKEN=$(curl -s -X POST %s/_allauth/app/v1/auth/login -H 'Content-Type: application/json' -d '{"username": "demo", "password": "demo-password"}' | sed -E 's/.*"session_token": "([a-z0-9]+)".*/\1/')
#   curl -s %s/api/me -H "X-Session-Token: $TOKEN"`, allauth.URL, api)
	select {
	case <-ctx.Done():
		return nil
	case err := <-served:
		return err
	}
}

// demo sends three requests: a cache miss (a lookup span), the same token
// again (a hit: the request's span only) and an unknown token (a lookup
// that allauth answers 410). The first carries a traceparent, as a request
// from a traced client would: its spans join that trace.
func demo(ctx context.Context, say func(string, ...any), allauth *allauthtest.Server, api string) error {
	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	token := allauth.IssueToken("demo")

	const clientTrace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	steps := []struct {
		note, token, traceparent string
	}{
		{"a cache miss: one allauth.session_lookup span, a child of the request's span, in the caller's trace", token, clientTrace},
		{"the same token: a cache hit, no lookup span", token, ""},
		{"an unknown token: allauth answers 410 (allauth.outcome session_gone)", "no-such-session-0123456789abcdef", ""},
	}
	for i, s := range steps {
		allauth.ResetCounters()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, api+"/api/me", http.NoBody)
		if err != nil {
			return err
		}
		req.Header.Set("X-Session-Token", s.token)
		if s.traceparent != "" {
			req.Header.Set("traceparent", s.traceparent)
		}
		say("%d. GET /api/me: %s", i+1, s.note)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		say("%d. -> %d; allauth session calls: %d, traceparent allauth received: %q",
			i+1, resp.StatusCode, allauth.SessionCalls(), allauth.LastSessionHeader("traceparent"))
	}
	return nil
}
