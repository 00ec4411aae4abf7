package allauthtest_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/allauthgo/headless/introspect/allauthtest"
)

var (
	jwtKeyOnce sync.Once
	jwtKeys    [2]*rsa.PrivateKey
)

// jwtKey returns one of two test keys, generated once for the package.
func jwtKey(t *testing.T, i int) *rsa.PrivateKey {
	t.Helper()
	jwtKeyOnce.Do(func() {
		for j := range jwtKeys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			jwtKeys[j] = k
		}
	})
	return jwtKeys[i]
}

// decodeSegments returns a token's header and claims JSON as sent.
func decodeSegments(t *testing.T, tok string) (header, claims string) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q has %d segments", tok, len(parts))
	}
	h, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	c, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	if err1 != nil || err2 != nil {
		t.Fatalf("token segments are not base64url: %v %v", err1, err2)
	}
	return string(h), string(c)
}

var claimsShape = regexp.MustCompile(`^\{"iat":(\d+),"exp":(\d+),"sid":"[A-Za-z0-9+/]{64}","jti":"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}","token_use":"(access|refresh)","sub":"1"\}$`)

// TestJWT_LoginAndSession replays section D of RESPONSES.md against the
// stand-in under WithJWT.
func TestJWT_LoginAndSession(t *testing.T) {
	key := jwtKey(t, 0)
	srv := newServer(t, allauthtest.WithJWT(allauthtest.JWTConfig{PrivateKey: key}))
	hc := newClient(t)
	app := srv.URL + "/_allauth/app/v1"

	login := do(t, hc, http.MethodPost, app+"/auth/login", `{"username": "alice", "password": "alice-pass-123"}`)
	var lr struct {
		Meta struct {
			IsAuthenticated bool   `json:"is_authenticated"`
			SessionToken    string `json:"session_token"`
			AccessToken     string `json:"access_token"`
			RefreshToken    string `json:"refresh_token"`
		} `json:"meta"`
	}
	if err := json.Unmarshal([]byte(login.body), &lr); err != nil || login.status != 200 {
		t.Fatalf("login: %d %s", login.status, login.body)
	}
	if !regexp.MustCompile(`"meta": \{"is_authenticated": true, "session_token": "[a-z0-9]{32}", "access_token": "[^"]+", "refresh_token": "[^"]+"\}\}$`).MatchString(login.body) {
		t.Errorf("login meta is not in allauth's order: %s", login.body)
	}
	access, refresh := lr.Meta.AccessToken, lr.Meta.RefreshToken

	// Shapes, as recorded.
	wantHeader := `{"alg":"RS256","kid":"` + srv.JWTKeyID() + `","typ":"JWT"}`
	for use, tok := range map[string]string{"access": access, "refresh": refresh} {
		h, c := decodeSegments(t, tok)
		if h != wantHeader {
			t.Errorf("%s header %s, want %s", use, h, wantHeader)
		}
		m := claimsShape.FindStringSubmatch(c)
		if m == nil || m[3] != use {
			t.Fatalf("%s claims %s are not allauth's", use, c)
		}
		var ttl int64 = 300
		if use == "refresh" {
			ttl = 86400
		}
		var iat, exp int64
		_ = json.Unmarshal([]byte(m[1]), &iat)
		_ = json.Unmarshal([]byte(m[2]), &exp)
		if exp-iat != ttl || time.Since(time.Unix(iat, 0)) > time.Minute {
			t.Errorf("%s iat %d exp %d", use, iat, exp)
		}
	}
	// An independent implementation accepts the signature and kid.
	parsed, err := jwt.Parse(access, func(tk *jwt.Token) (any, error) {
		if tk.Header["kid"] != srv.JWTKeyID() {
			t.Errorf("kid %v", tk.Header["kid"])
		}
		return &key.PublicKey, nil
	}, jwt.WithValidMethods([]string{"RS256"}))
	if err != nil || !parsed.Valid {
		t.Fatalf("golang-jwt rejects the access token: %v", err)
	}

	sess := app + "/auth/session"
	expect(t, do(t, hc, http.MethodGet, sess, "", "Authorization", "Bearer "+access), 200, aliceSession)
	expect(t, do(t, hc, http.MethodGet, sess, "", "Authorization", "bearer "+access), 200, aliceSession)
	expect(t, do(t, hc, http.MethodGet, sess, "", "X-Session-Token", lr.Meta.SessionToken), 200, aliceSession)
	expect(t, do(t, hc, http.MethodGet, sess, "", "Authorization", "Bearer garbage"), 401, body401)
	expect(t, do(t, hc, http.MethodGet, sess, "", "Authorization", "Bearer "+refresh), 401, body401)
	expect(t, do(t, hc, http.MethodGet, sess, "", "Authorization", "Basic "+access), 401, body401)
	expect(t, do(t, hc, http.MethodGet, sess, "", "Authorization", "Bearer "+access, "X-Session-Token", "garbage"), 410, body410)

	// Expired: the same claims re-signed with exp in the past.
	_, c := decodeSegments(t, access)
	var claims map[string]any
	_ = json.Unmarshal([]byte(c), &claims)
	claims["exp"] = time.Now().Add(-time.Minute).Unix()
	expect(t, do(t, hc, http.MethodGet, sess, "", "Authorization", "Bearer "+srv.SignJWT(claims)), 401, body401)
	claims["exp"] = time.Now().Add(time.Minute).Unix()
	expect(t, do(t, hc, http.MethodGet, sess, "", "Authorization", "Bearer "+srv.SignJWT(claims)), 200, aliceSession)
	// A sid that does not decrypt is no token at all, as in allauth.
	claims["sid"] = "not base64!"
	expect(t, do(t, hc, http.MethodGet, sess, "", "Authorization", "Bearer "+srv.SignJWT(claims)), 401, body401)

	// Signed by another key (another server with the same users).
	other := newServer(t, allauthtest.WithJWT(allauthtest.JWTConfig{PrivateKey: jwtKey(t, 1)}))
	foreign, _ := other.IssueJWT("alice")
	expect(t, do(t, hc, http.MethodGet, sess, "", "Authorization", "Bearer "+foreign), 401, body401)

	// Refresh: a new pair, the old refresh token rotated out.
	ref := do(t, hc, http.MethodPost, app+"/tokens/refresh", `{"refresh_token": "`+refresh+`"}`)
	var rr struct {
		Status int `json:"status"`
		Data   struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(ref.body), &rr); err != nil || ref.status != 200 || rr.Status != 200 ||
		rr.Data.AccessToken == "" || rr.Data.RefreshToken == "" || rr.Data.RefreshToken == refresh {
		t.Fatalf("refresh: %d %s", ref.status, ref.body)
	}
	if !strings.HasPrefix(ref.body, `{"status": 200, "data": {"access_token": "`) {
		t.Errorf("refresh body %s", ref.body)
	}
	expect(t, do(t, hc, http.MethodPost, app+"/tokens/refresh", `{"refresh_token": "`+refresh+`"}`), 400, `{"status": 400}`)
	expect(t, do(t, hc, http.MethodPost, app+"/tokens/refresh", `{"refresh_token": "`+access+`"}`), 400, `{"status": 400}`)
	expect(t, do(t, hc, http.MethodPost, app+"/tokens/refresh", `{}`), 400,
		`{"status": 400, "errors": [{"message": "This field is required.", "code": "required", "param": "refresh_token"}]}`)
	expect(t, do(t, hc, http.MethodGet, sess, "", "Authorization", "Bearer "+rr.Data.AccessToken), 200, aliceSession)

	// Logout with Bearer, then every token of the session is gone.
	expect(t, do(t, hc, http.MethodDelete, sess, "", "Authorization", "Bearer "+access), 401, body401)
	expect(t, do(t, hc, http.MethodGet, sess, "", "Authorization", "Bearer "+access), 410, body410)
	expect(t, do(t, hc, http.MethodGet, sess, "", "Authorization", "Bearer "+rr.Data.AccessToken), 410, body410)
	expect(t, do(t, hc, http.MethodGet, sess, "", "X-Session-Token", lr.Meta.SessionToken), 410, body410)
	expect(t, do(t, hc, http.MethodPost, app+"/tokens/refresh", `{"refresh_token": "`+rr.Data.RefreshToken+`"}`), 400, `{"status": 400}`)
}

func TestJWT_HS256AndHelpers(t *testing.T) {
	now := time.Unix(1795711648, 0)
	srv := newServer(t, allauthtest.WithJWT(allauthtest.JWTConfig{
		Algorithm:      "HS256",
		AccessTokenTTL: 60 * time.Second,
		Now:            func() time.Time { return now },
		Claims:         func(u allauthtest.User) map[string]any { return map[string]any{"email": u.Email, "sub": "ignored"} },
	}))
	hc := newClient(t)
	if srv.JWTPublicKeyPEM() != nil || srv.JWTJWKS() != nil || srv.JWTKeyID() != "" || len(srv.JWTSecret()) != 32 {
		t.Fatalf("HS256 server exposes RSA material or no secret")
	}
	access, refresh := srv.IssueJWT("alice")
	h, c := decodeSegments(t, access)
	if h != `{"alg":"HS256","typ":"JWT"}` {
		t.Errorf("header %s", h)
	}
	if !regexp.MustCompile(`^\{"email":"alice@example.com","sub":"1","iat":1795711648,"exp":1795711708,"sid":"[^"]+","jti":"[^"]+","token_use":"access"\}$`).MatchString(c) {
		t.Errorf("claims %s: project claims first, reserved ones win", c)
	}
	if _, err := jwt.Parse(access, func(*jwt.Token) (any, error) { return srv.JWTSecret(), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(func() time.Time { return now })); err != nil {
		t.Fatalf("golang-jwt rejects the HS256 token: %v", err)
	}
	sess := srv.SessionURL("app")
	expect(t, do(t, hc, http.MethodGet, sess, "", "Authorization", "Bearer "+access), 200, aliceSession)
	if a, r := srv.IssueJWT("carol"); a != "" || r != "" {
		t.Error("IssueJWT for an inactive user issued tokens")
	}
	if a, _ := srv.IssueJWT("nobody"); a != "" {
		t.Error("IssueJWT for an unknown user issued tokens")
	}
	now = now.Add(61 * time.Second) // the access token expired, the refresh token not
	expect(t, do(t, hc, http.MethodGet, sess, "", "Authorization", "Bearer "+access), 401, body401)
	if r := do(t, hc, http.MethodPost, srv.URL+"/_allauth/app/v1/tokens/refresh", `{"refresh_token": "`+refresh+`"}`); r.status != 200 {
		t.Errorf("refresh: %d %s", r.status, r.body)
	}
	srv.Logout(refresh) // a refresh token names the session too
	if srv.Sessions() != 0 {
		t.Errorf("Logout(refresh token) left %d sessions", srv.Sessions())
	}
	srv.SetActive("alice", true)
}

func TestJWT_Disabled(t *testing.T) {
	srv := newServer(t)
	hc := newClient(t)
	r := do(t, hc, http.MethodPost, srv.URL+"/_allauth/app/v1/tokens/refresh", `{"refresh_token": "x"}`)
	if r.status != 404 {
		t.Errorf("tokens/refresh without WithJWT: %d", r.status)
	}
	login := do(t, hc, http.MethodPost, srv.URL+"/_allauth/app/v1/auth/login", `{"username": "alice", "password": "alice-pass-123"}`)
	if strings.Contains(login.body, "access_token") {
		t.Errorf("login without WithJWT hands out JWTs: %s", login.body)
	}
	for _, f := range []func(){
		func() { srv.IssueJWT("alice") },
		func() { srv.SignJWT(nil) },
		func() { srv.JWTKeyID() },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("a JWT helper without WithJWT did not panic")
				}
			}()
			f()
		}()
	}
	defer func() {
		if recover() == nil {
			t.Error("WithJWT with ES256 did not panic")
		}
	}()
	allauthtest.NewUnstartedServer(allauthtest.WithJWT(allauthtest.JWTConfig{Algorithm: "ES256"})).Close()
}
