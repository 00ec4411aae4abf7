package fiberauth_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// Django POSTs a signed eviction when a session ends (see
// django/allauthgo_evict.py); here Go code plays Django's part.
func ExampleEvictHandler() {
	allauth := allauthtest.NewServer()
	defer allauth.Close()
	allauth.AddUser(allauthtest.User{ID: 1, Username: "alice", Password: "alice-pass"})
	token := allauth.IssueToken("alice")

	secret := []byte("a-secret-shared-with-django-of-32-bytes-or-more")
	auth, err := fiberauth.NewMiddleware(fiberauth.Config{BaseURL: allauth.URL, UserIndex: true})
	if err != nil {
		panic(err)
	}
	defer func() { _ = auth.Close() }()
	evict, err := fiberauth.EvictHandler(headless.EvictConfig{Secret: secret}, auth)
	if err != nil {
		panic(err) // a Secret under 32 bytes
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	defer func() { _ = app.Shutdown() }()
	// The webhook first: Django's POST carries no user credential.
	app.Post("/_allauthgo/evict", evict)
	app.Use(auth.Handler)
	app.Get("/", func(c *fiber.Ctx) error { return c.SendString("hello " + fiberauth.UserFrom(c).Username) })

	exampleRequest(app, "/", token) // cached for CacheTTL from now on
	allauth.Logout(token)           // Django logs the session out...

	body := []byte(`{"session_keys":["` + token + `"]}`) // ...and tells the Go side
	ts := time.Now().Unix()
	req := httptest.NewRequest(http.MethodPost, "/_allauthgo/evict", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(headless.HeaderEvictTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(headless.HeaderEvictSignature, headless.SignEvict(secret, ts, body))
	if resp, err := app.Test(req, -1); err == nil {
		answer, _ := io.ReadAll(resp.Body)
		fmt.Println(resp.StatusCode, string(answer))
		_ = resp.Body.Close()
	}
	exampleRequest(app, "/", token)
	// Output:
	// 200 hello alice
	// 200 {"status": 200, "data": {"evicted": 1}}
	// 410 {"status": 410, "errors": [{"code": "session_gone", "message": "The session is gone; log in again."}]}
}
