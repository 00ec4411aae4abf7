package allauthtest_test

import (
	"context"
	"fmt"
	"net/http"

	"github.com/allauthgo/headless/introspect/allauthtest"
)

func Example() {
	srv := allauthtest.NewServer()
	defer srv.Close()

	srv.AddUser(allauthtest.User{Username: "alice", Email: "alice@example.com", Password: "alice-pass-123"})
	token := srv.IssueToken("alice")

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	for _, tok := range []string{token, "garbage", ""} {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet,
			srv.URL+"/_allauth/app/v1/auth/session", nil)
		if err != nil {
			fmt.Println(err)
			return
		}
		if tok != "" {
			req.Header.Set("X-Session-Token", tok)
		}
		resp, err := client.Do(req)
		if err != nil {
			fmt.Println(err)
			return
		}
		_ = resp.Body.Close()
		fmt.Println(resp.StatusCode)
	}
	fmt.Println("session calls:", srv.SessionCalls())
	// Output:
	// 200
	// 410
	// 401
	// session calls: 3
}
