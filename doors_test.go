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
		door{name: "fiberauth (Fiber v2)", prefix: "fiberauth: ", build: buildFiberV2, refuse: refuseFiberV2},
		door{name: "fiberauth/v3 (Fiber v3)", prefix: "fiberauth/v3: ", build: buildFiberV3, refuse: refuseFiberV3},
		door{name: "httpauth (net/http)", prefix: "httpauth: ", build: buildHTTP, refuse: refuseHTTP},
	)
}

func fiberV2Config(cfg doorConfig) fiberauth.Config {
	return fiberauth.Config{
		BaseURL:   cfg.baseURL,
		Mount:     cfg.mount,
		KeyLookup: strings.Join(cfg.sources, ","),
		Optional:  cfg.optional,
		JWT:       cfg.jwt,
		Logger:    cfg.logger,
	}
}

func buildFiberV2(t *testing.T, cfg doorConfig) roundTrip {
	t.Helper()
	m, err := fiberauth.NewMiddleware(fiberV2Config(cfg))
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, m)
	evict, err := fiberauth.EvictHandler(headless.EvictConfig{Secret: cfg.evictSecret}, m)
	if err != nil {
		t.Fatal(err)
	}
	// Room for the oversized-token row: Fiber refuses headers over 4 KiB.
	app := fiberv2.New(fiberv2.Config{DisableStartupMessage: true, ReadBufferSize: 16 << 10})
	// The webhook and the readiness check carry no user credential: they
	// come before the middleware.
	app.Post(evictPath, evict)
	app.Get(readyPath, m.Ready())
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

func fiberV3Config(cfg doorConfig) fiberauthv3.Config {
	ex := translate(cfg.sources, extractors.FromHeader, func() extractors.Extractor { return extractors.FromAuthHeader("Bearer") }, extractors.FromCookie)
	c := fiberauthv3.Config{
		BaseURL:  cfg.baseURL,
		Mount:    cfg.mount,
		Optional: cfg.optional,
		JWT:      cfg.jwt,
		Logger:   cfg.logger,
	}
	if len(ex) > 0 {
		c.Extractor = extractors.Chain(ex...)
	}
	return c
}

func buildFiberV3(t *testing.T, cfg doorConfig) roundTrip {
	t.Helper()
	m, err := fiberauthv3.NewMiddleware(fiberV3Config(cfg))
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, m)
	evict, err := fiberauthv3.EvictHandler(headless.EvictConfig{Secret: cfg.evictSecret}, m)
	if err != nil {
		t.Fatal(err)
	}
	app := fiberv3.New(fiberv3.Config{ReadBufferSize: 16 << 10})
	app.Post(evictPath, evict)
	app.Get(readyPath, m.Ready())
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

func httpConfig(cfg doorConfig) httpauth.Config {
	sources := translate(cfg.sources, headless.FromHeader, func() headless.Source { return headless.FromAuthHeader("Bearer") }, headless.FromCookie)
	return httpauth.Config{
		BaseURL:  cfg.baseURL,
		Mount:    cfg.mount,
		Sources:  sources,
		Optional: cfg.optional,
		JWT:      cfg.jwt,
		Logger:   cfg.logger,
	}
}

func buildHTTP(t *testing.T, cfg doorConfig) roundTrip {
	t.Helper()
	m, err := httpauth.NewMiddleware(httpConfig(cfg))
	if err != nil {
		t.Fatal(err)
	}
	closeAtEnd(t, m)
	evict, err := httpauth.EvictHandler(headless.EvictConfig{Secret: cfg.evictSecret}, m)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+evictPath, evict)
	mux.Handle("GET "+readyPath, m.Ready())
	mux.Handle("/", m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u := httpauth.UserFrom(r.Context()); u != nil {
			_, _ = io.WriteString(w, who(u.ID, u.Username))
			return
		}
		_, _ = io.WriteString(w, who("", ""))
	})))
	return func(t *testing.T, req *http.Request) answer {
		t.Helper()
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return answer{status: rec.Code, header: rec.Header(), body: rec.Body.String()}
	}
}

// refuseFiberV2 builds the door both ways from a config that cannot work:
// NewMiddleware's error, New's panic, and EvictHandler's error for a
// webhook secret that cannot work.
func refuseFiberV2(cfg doorConfig) (newErr error, newPanic string, evictErr error) {
	if m, err := fiberauth.NewMiddleware(fiberV2Config(cfg)); err == nil {
		_ = m.Close()
	} else {
		newErr = err
	}
	newPanic = panicOf(func() { fiberauth.New(fiberV2Config(cfg)) })
	if m, err := fiberauth.NewMiddleware(fiberV2Config(doorConfig{baseURL: "http://127.0.0.1:1"})); err == nil {
		defer func() { _ = m.Close() }()
		_, evictErr = fiberauth.EvictHandler(headless.EvictConfig{Secret: cfg.evictSecret}, m)
	}
	return newErr, newPanic, evictErr
}

func refuseFiberV3(cfg doorConfig) (newErr error, newPanic string, evictErr error) {
	if m, err := fiberauthv3.NewMiddleware(fiberV3Config(cfg)); err == nil {
		_ = m.Close()
	} else {
		newErr = err
	}
	newPanic = panicOf(func() { fiberauthv3.New(fiberV3Config(cfg)) })
	if m, err := fiberauthv3.NewMiddleware(fiberV3Config(doorConfig{baseURL: "http://127.0.0.1:1"})); err == nil {
		defer func() { _ = m.Close() }()
		_, evictErr = fiberauthv3.EvictHandler(headless.EvictConfig{Secret: cfg.evictSecret}, m)
	}
	return newErr, newPanic, evictErr
}

func refuseHTTP(cfg doorConfig) (newErr error, newPanic string, evictErr error) {
	if m, err := httpauth.NewMiddleware(httpConfig(cfg)); err == nil {
		_ = m.Close()
	} else {
		newErr = err
	}
	newPanic = panicOf(func() { httpauth.New(httpConfig(cfg)) })
	if m, err := httpauth.NewMiddleware(httpConfig(doorConfig{baseURL: "http://127.0.0.1:1"})); err == nil {
		defer func() { _ = m.Close() }()
		_, evictErr = httpauth.EvictHandler(headless.EvictConfig{Secret: cfg.evictSecret}, m)
	}
	return newErr, newPanic, evictErr
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
