package headless_test

import (
	"github.com/gofiber/fiber/v2"
	fiberv3 "github.com/gofiber/fiber/v3"
	redisstorage "github.com/gofiber/storage/redis/v3"

	"github.com/allauthgo/headless"
)

// Every gofiber/storage driver, and the doors' fiber.Storage fields, fit
// Config.Storage as they are: a user never writes an adapter.
var (
	_ headless.Storage = fiber.Storage(nil)
	_ headless.Storage = fiberv3.Storage(nil)
	_ headless.Storage = (*redisstorage.Storage)(nil)
)
