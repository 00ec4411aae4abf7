package fiberauth

//go:generate go run ../internal/cmd/doorconfig

import (
	"fmt"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/allauthgo/headless"
)

// HeaderSessionToken is the header allauth's app client sends.
const HeaderSessionToken = headless.HeaderSessionToken

// parseKeyLookup turns "header:X-Session-Token,cookie:sessionid" into
// sources, or says what is wrong with it.
func parseKeyLookup(lookup, scheme string) ([]headless.Source, error) {
	var out []headless.Source
	for _, part := range strings.Split(lookup, ",") {
		part = strings.TrimSpace(part)
		where, name, ok := strings.Cut(part, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, fmt.Errorf("fiberauth: KeyLookup entry %q must be \"header:<name>\" or \"cookie:<name>\"", part)
		}
		switch strings.ToLower(strings.TrimSpace(where)) {
		case "header":
			if strings.EqualFold(name, fiber.HeaderAuthorization) {
				out = append(out, headless.FromAuthHeader(scheme))
			} else {
				out = append(out, headless.FromHeader(name))
			}
		case "cookie":
			out = append(out, headless.FromCookie(name))
		case "query", "param", "form":
			return nil, fmt.Errorf("fiberauth: KeyLookup source %q is not supported: a token in a URL or form ends up in logs; use a header or a cookie", where)
		default:
			return nil, fmt.Errorf("fiberauth: KeyLookup source %q is unknown; use header or cookie", where)
		}
	}
	return out, nil
}
