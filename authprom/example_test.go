package authprom_test

import (
	"log"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/allauthgo/headless/authprom"
	"github.com/allauthgo/headless/fiberauth"
)

// Register the middleware's Collector and serve /metrics and /readyz ahead
// of the middleware, so neither needs a credential.
func ExampleNew() {
	m, err := fiberauth.NewMiddleware(fiberauth.Config{BaseURL: "http://127.0.0.1:8000"})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = m.Close() }()

	reg := prometheus.NewRegistry()
	reg.MustRegister(authprom.New(m.Authenticator))

	app := fiber.New()
	app.Get("/metrics", adaptor.HTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	app.Get("/readyz", m.Ready())
	app.Use(m.Handler)
	app.Get("/api/me", func(c *fiber.Ctx) error { return c.JSON(fiberauth.UserFrom(c)) })
	_ = app // app.Listen(":3000")
}
