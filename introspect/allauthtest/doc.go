// Package allauthtest provides a stand-in django-allauth "headless" server for
// tests, in the spirit of net/http/httptest.
//
// NewServer starts a Server on a free 127.0.0.1 port; its answers copy, byte
// for byte where recorded, those of a real django-allauth 65.16.1 project
// (default SessionTokenStrategy, Django 4.2, gunicorn), so a client tested
// against it behaves the same against allauth. The package uses only the
// standard library and does not import the introspect package.
//
//	srv := allauthtest.NewServer()
//	defer srv.Close()
//	srv.AddUser(allauthtest.User{Username: "alice", Email: "alice@example.com", Password: "pw"})
//	token := srv.IssueToken("alice")
//	// GET srv.URL + "/_allauth/app/v1/auth/session" with X-Session-Token: token → 200
//
// # Endpoints
//
// With M the mount (default "/_allauth", see WithMount):
//
//   - GET/HEAD M/app/v1/config and M/browser/v1/config: 200 and allauth's
//     config for login by username or e-mail. The browser variant sets the
//     csrftoken cookie.
//   - POST M/app/v1/auth/login with JSON {"username" or "email", "password"}:
//     200 with data.user, data.methods ([{"method": "password", "at": <Unix
//     seconds, float>, "username" or "email": ...}]) and meta.session_token.
//     Wrong password, unknown user or a user without a password: 400
//     username_password_mismatch. A missing password: 400 "required" (param
//     "password"); neither username nor email: 400 "required" (param
//     "username"; not recorded, a guess). A body that is not a JSON object:
//     400 with an empty text/html body; an empty body counts as {}. Bodies
//     over 64 KiB are refused like non-JSON ones. Both username and email
//     given: the username wins. A valid credential already on the request:
//     409 {"status": 409} (after the input was validated, as allauth does).
//     An X-Session-Token naming no session: 410. An inactive user with the
//     right password: 401 with the login/signup flows and a meta.session_token
//     whose session answers 401. A user with PendingEmailVerification: 401
//     with the flow {"id": "verify_email", "is_pending": true} and a
//     meta.session_token whose session answers that same 401.
//   - POST M/browser/v1/auth/login: the same, but it needs the csrftoken
//     cookie and a matching X-CSRFToken header (the cookie value, or a
//     64-character masked token as Django's get_token makes), else 403 with
//     Django's CSRF failure page. It answers without meta.session_token and
//     sets the session cookie (HttpOnly; Max-Age=1209600; Path=/;
//     SameSite=Lax) and a new csrftoken.
//   - GET/HEAD M/app/v1/auth/session: the credential is the X-Session-Token
//     header (any case); cookies are ignored. Values arrive as gunicorn passes
//     them: leading blanks stripped, trailing blanks kept (so "token " is
//     unknown), several headers joined with ",". Answers: 200 with data.user,
//     data.methods and meta.is_authenticated true for a session of an active
//     user; 401 (meta.is_authenticated false) with no, an empty or a
//     whitespace-only value, for an inactive or deleted user, a pending login
//     (with the verify_email flow) or a session flushed by SetPassword; 410
//     (meta.is_authenticated null) for a value naming no session. An
//     Authorization: Bearer header is ignored (401 without X-Session-Token)
//     unless the server was made WithJWT (see below).
//   - GET/HEAD M/browser/v1/auth/session: the credential is the session cookie
//     (see WithSessionCookieName); X-Session-Token is ignored. The same
//     answers as the app client, except that it never says 410: a cookie
//     naming no session gets 401 and a Set-Cookie clearing it
//     (sessionid=""; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0;
//     Path=/; SameSite=Lax).
//   - DELETE M/app/v1/auth/session (logout): a known token → 401 and the
//     token answers 410 from then on; an unknown one → 410; none → 401.
//   - DELETE M/browser/v1/auth/session: needs CSRF like the browser login;
//     ends the cookie's session, clears the cookie, 401.
//
// # JWT token strategy
//
// WithJWT turns on allauth's JWTTokenStrategy (RS256 with a generated
// 2048-bit key by default, or HS256), as recorded from allauth 65.16.1:
//
//   - An app login that authenticates also answers meta.access_token and
//     meta.refresh_token (after meta.session_token); IssueJWT makes the same
//     pair without HTTP. Tokens carry the header {"alg", "kid" (the RFC 7638
//     thumbprint of the key; RS256 only), "typ": "JWT"} and exactly the
//     claims iat, exp, sid, jti, token_use ("access" or "refresh") and sub
//     (the user id as a string), after any JWTConfig.Claims. sid is the
//     session key encrypted as allauth encrypts it.
//   - GET/HEAD M/app/v1/auth/session with Authorization: Bearer <access
//     token> (scheme in any case): 200 for a live session; 401 for garbage,
//     an expired token, one signed by another key or algorithm, or a refresh
//     token; 410 once the session sid names has ended (logout, Logout,
//     SetPassword). X-Session-Token, when sent, wins over the Bearer token.
//   - DELETE M/app/v1/auth/session with a Bearer access token logs out.
//   - POST M/app/v1/tokens/refresh with {"refresh_token": ...}: 200
//     {"status": 200, "data": {"access_token", "refresh_token"}}, the old
//     refresh token rotated out; an invalid, rotated-out or ended one gets
//     400 {"status": 400}; a missing one 400 "required".
//
// JWTPublicKeyPEM, JWTJWKS, JWTKeyID and JWTSecret give what a verifier
// needs; SignJWT signs arbitrary claims for tests of bad tokens.
//
// A session key is both an app token and a browser cookie value: a token from
// IssueToken or an app login works as a cookie and a cookie as a token.
//
// Every JSON answer has Content-Type application/json, Cache-Control
// "max-age=0, no-cache, no-store, must-revalidate, private" and an Expires
// header, and is written as Python's json.dumps writes it ({"status": 200,
// "data": ...}: ", " and ": " separators, non-ASCII as \uXXXX). Browser
// answers add Vary: Cookie and (re)set csrftoken. Any other path, including a
// trailing slash, is 404 with Django's HTML page; another method on a known
// path is 405 with an empty body. HEAD answers carry the GET headers
// (Content-Length included) and no body.
//
// # Users and sessions
//
// AddUser, UpdateUser, SetActive, SetPassword and DeleteUser change users
// while the server runs; IssueToken, IssueCookie and Logout create and end
// sessions directly. Users are found by Username or, failing that, by Email
// (ignoring case). Methods given an unknown user do nothing (IssueToken
// returns ""). A pending session stays pending even if the user's
// PendingEmailVerification is cleared later; log in again for a full session.
//
// # Faults and counters
//
// SetFault makes the session endpoints (GET and HEAD only) answer an error
// status, a raw body, late, or not at all; SetCredentialFault does the same
// for chosen credentials only (one client's tokens, say), while requests
// without a credential and everyone else are answered. SessionCalls counts
// the requests they receive, and LastSessionHeader shows a header of the
// last one (a client's traceparent, say). All are safe to use while
// requests are in flight.
//
// # Limits
//
// Request headers are limited to 64 KiB (net/http answers 431 above that),
// login bodies to 64 KiB. The trailing-blank rule for X-Session-Token needs
// the raw request bytes, so it holds on s.URL but not when Handler is
// mounted elsewhere (net/http trims header values), nor after a chunked
// request body on the same connection. Go's own http.Client trims header
// values before sending, so only raw clients can send trailing blanks. No
// rate limiting, signup or e-mail endpoints are served.
package allauthtest
