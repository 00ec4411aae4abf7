package allauth_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/allauthgo/headless/internal/allauth"

	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

func ExampleNew() {
	client, err := allauth.New(allauth.Config{
		BaseURL: "http://127.0.0.1:8000", // the Django origin
		Timeout: time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer client.CloseIdleConnections()

	fmt.Println(client.Endpoint(introspect.SessionToken))
	fmt.Println(client.Endpoint(introspect.Cookie))

	_, err = allauth.New(allauth.Config{BaseURL: "ftp://127.0.0.1"})
	fmt.Println(err)
	// Output:
	// http://127.0.0.1:8000/_allauth/app/v1/auth/session
	// http://127.0.0.1:8000/_allauth/browser/v1/auth/session
	// introspect: BaseURL "ftp://127.0.0.1" must be http or https
}

func ExampleClient_Session() {
	// A stand-in allauth server; in production BaseURL is the Django origin.
	srv := allauthtest.NewServer()
	defer srv.Close()
	srv.AddUser(allauthtest.User{Username: "alice", Email: "alice@example.com", Password: "alice-pass-123"})
	token := srv.IssueToken("alice") // what the app got from allauth's login

	client, err := allauth.New(allauth.Config{BaseURL: srv.URL})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.CloseIdleConnections()

	s, err := client.Session(context.Background(), allauth.Credential{Kind: introspect.SessionToken, Token: token})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.User.ID, s.User.Username, s.User.Email, s.Methods[0].Method)
	// Output:
	// 1 alice alice@example.com password
}

// Example_errors shows the three outcomes a caller handles besides a
// Session: allauth's 401, its 410, and allauth being unavailable.
func Example_errors() {
	srv := allauthtest.NewServer()
	defer srv.Close()
	srv.AddUser(allauthtest.User{Username: "dave", Password: "dave-pass-123"})
	srv.AddUser(allauthtest.User{Username: "carol", Password: "carol-pass-123", Inactive: true})
	dave := srv.IssueToken("dave")
	carol := srv.IssueToken("carol")
	loggedOut := srv.IssueToken("dave")
	srv.Logout(loggedOut)

	client, err := allauth.New(allauth.Config{BaseURL: srv.URL})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer client.CloseIdleConnections()

	check := func(token string) {
		s, err := client.Session(context.Background(), allauth.Credential{Kind: introspect.SessionToken, Token: token})
		var upstream *introspect.UpstreamError
		switch {
		case err == nil:
			fmt.Println("200: logged in as", s.User.Username)
		case errors.Is(err, introspect.ErrSessionGone):
			fmt.Println("410: drop the token and log in again")
		case errors.Is(err, introspect.ErrUnauthenticated):
			fmt.Println("401: not logged in (keep the token)")
		case errors.As(err, &upstream):
			fmt.Printf("503: allauth unavailable (status %d, retry after %v)\n", upstream.Status, upstream.RetryAfter)
		}
	}
	check(dave)
	check(loggedOut)
	check(carol)
	check("")
	srv.SetFault(allauthtest.Fault{Status: 503, RetryAfter: "5"})
	check(dave)
	// Output:
	// 200: logged in as dave
	// 410: drop the token and log in again
	// 401: not logged in (keep the token)
	// 401: not logged in (keep the token)
	// 503: allauth unavailable (status 503, retry after 5s)
}
