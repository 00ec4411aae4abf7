package httpauth_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/httpauth"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// A std mux with a protected route and an optional one, sharing one cache.
func ExampleNewMiddleware() {
	allauth := allauthtest.NewServer() // stands in for Django
	defer allauth.Close()
	allauth.AddUser(allauthtest.User{Username: "alice", Email: "alice@example.com", Password: "pw"})
	token := allauth.IssueToken("alice")

	auth, err := httpauth.NewMiddleware(httpauth.Config{BaseURL: allauth.URL})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() { _ = auth.Close() }()

	me := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := json.NewEncoder(w).Encode(httpauth.UserFrom(r.Context())); err != nil { // null when anonymous
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux := http.NewServeMux()
	mux.Handle("GET /api/me", auth.Handler(me))
	mux.Handle("GET /api/public", auth.Optional(me))

	for _, tc := range []struct{ path, token string }{
		{"/api/me", token},
		{"/api/me", ""},
		{"/api/public", ""},
		{"/api/me", "0123456789abcdefghijklmnopqrstuv"},
	} {
		req := httptest.NewRequest(http.MethodGet, tc.path, http.NoBody)
		if tc.token != "" {
			req.Header.Set(headless.HeaderSessionToken, tc.token)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		fmt.Println(rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	// Output:
	// 200 {"id":"1","display":"alice","email":"alice@example.com","username":"alice","has_usable_password":true}
	// 401 {"status": 401, "errors": [{"code": "not_authenticated", "message": "No credential was provided."}]}
	// 200 null
	// 410 {"status": 410, "errors": [{"code": "session_gone", "message": "The session is gone; log in again."}]}
}
