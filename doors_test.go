package headless_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	fiberv2 "github.com/gofiber/fiber/v2"
	fiberv3 "github.com/gofiber/fiber/v3"
	"github.com/gofiber/fiber/v3/extractors"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/fiberauth"
	fiberauthv3 "github.com/allauthgo/headless/fiberauth/v3"
	"github.com/allauthgo/headless/httpauth"
)

// The doors the conformance table runs against, each built from a
// doorConfig the way its users would write it.
func init() {
	doors = append(doors,
		door{name: "fiberauth (Fiber v2)", build: buildFiberV2},
		door{name: "fiberauth/v3 (Fiber v3)", build: buildFiberV3},
		door{name: "httpauth (net/http)", build: buildHTTP},
	)
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

func buildFiberV3(t *testing.T, cfg doorConfig) roundTrip {
	t.Helper()
	ex := translate(cfg.sources, extractors.FromHeader, func() extractors.Extractor { return extractors.FromAuthHeader("Bearer") }, extractors.FromCookie)
	m := fiberauthv3.NewMiddleware(fiberauthv3.Config{
		BaseURL:   cfg.baseURL,
		Extractor: extractors.Chain(ex...),
		Optional:  cfg.optional,
		JWT:       cfg.jwt,
		Logger:    cfg.logger,
	})
	closeAtEnd(t, m)
	app := fiberv3.New(fiberv3.Config{ReadBufferSize: 16 << 10})
	app.Use(m.Handler)
	app.Get("/", func(c fiberv3.Ctx) error {
		if u := fiberauthv3.UserFrom(c); u != nil {
			return c.SendString(who(u.ID, u.Username))
		}
		return c.SendString(who("", ""))
	})
	return func(t *testing.T, req *http.Request) answer {
		t.Helper()
		resp, err := app.Test(req, fiberv3.TestConfig{Timeout: 0})
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		return readAnswer(t, resp)
	}
}

func buildHTTP(t *testing.T, cfg doorConfig) roundTrip {
	t.Helper()
	sources := translate(cfg.sources, headless.FromHeader, func() headless.Source { return headless.FromAuthHeader("Bearer") }, headless.FromCookie)
	m, err := httpauth.NewMiddleware(httpauth.Config{
		BaseURL:  cfg.baseURL,
		Sources:  sources,
		Optional: cfg.optional,
		JWT:      cfg.jwt,
		Logger:   cfg.logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, m)
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u := httpauth.UserFrom(r.Context()); u != nil {
			_, _ = io.WriteString(w, who(u.ID, u.Username))
			return
		}
		_, _ = io.WriteString(w, who("", ""))
	}))
	return func(t *testing.T, req *http.Request) answer {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return answer{status: rec.Code, header: rec.Header(), body: rec.Body.String()}
	}
}

// translate turns "header:<name>", "header:Authorization" and
// "cookie:<name>" into a door's own sources.
func translate[S any](sources []string, header func(string) S, bearer func() S, cookie func(string) S) []S {
	var out []S
	for _, s := range sources {
		where, name, _ := strings.Cut(s, ":")
		switch {
		case where == "cookie":
			out = append(out, cookie(name))
		case name == "Authorization":
			out = append(out, bearer())
		default:
			out = append(out, header(name))
		}
	}
	return out
}
