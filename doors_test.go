package headless_test

import (
	"net/http"
	"strings"
	"testing"

	fiberv2 "github.com/gofiber/fiber/v2"

	"github.com/allauthgo/headless/fiberauth"
)

// The doors the conformance table runs against, each built from a
// doorConfig the way its users would write it.
func init() {
	doors = append(doors, door{name: "fiberauth (Fiber v2)", build: buildFiberV2})
}

func buildFiberV2(t *testing.T, cfg doorConfig) roundTrip {
	t.Helper()
	m := fiberauth.NewMiddleware(fiberauth.Config{
		BaseURL:   cfg.baseURL,
		KeyLookup: strings.Join(cfg.sources, ","),
		Optional:  cfg.optional,
		JWT:       cfg.jwt,
		Logger:    cfg.logger,
	})
	closeAtEnd(t, m)
	// Room for the oversized-token row: Fiber refuses headers over 4 KiB.
	app := fiberv2.New(fiberv2.Config{DisableStartupMessage: true, ReadBufferSize: 16 << 10})
	app.Use(m.Handler)
	app.Get("/", func(c *fiberv2.Ctx) error {
		if u := fiberauth.UserFrom(c); u != nil {
			return c.SendString(who(u.ID, u.Username))
		}
		return c.SendString(who("", ""))
	})
	return func(t *testing.T, req *http.Request) answer {
		t.Helper()
		resp, err := app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		return readAnswer(t, resp)
	}
}
