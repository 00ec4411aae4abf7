package fiberauth_test

import (
	"context"
	"log"
	"os"

	"github.com/gofiber/fiber/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/allauthgo/headless/fiberauth"
)

// An app that sets up OpenTelemetry gets a span per lookup at allauth with
// no further configuration: the middleware uses the global TracerProvider.
// The spans are children of the request's span when the app's tracing
// middleware (e.g. otelfiber) put one in c.UserContext() before fiberauth
// runs. go run ./_examples/tracing shows the spans.
func Example_tracing() {
	exporter, err := stdouttrace.New(stdouttrace.WithPrettyPrint(), stdouttrace.WithWriter(os.Stdout))
	if err != nil {
		log.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})

	app := fiber.New()
	// app.Use(otelfiber.Middleware()) // the request's span, first
	app.Use(fiberauth.New(fiberauth.Config{
		BaseURL: "http://127.0.0.1:8000",
		// TracerProvider: tp, // to use another provider than the global one
	}))
	if err := app.Listen(":3000"); err != nil {
		log.Print(err)
	}
}
