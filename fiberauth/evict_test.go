package fiberauth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/fiberauth"
	"github.com/allauthgo/headless/internal/cache"
)

const (
	evictPath   = "/_allauthgo/evict"
	evictSecret = "allauthgo-test-secret-0123456789abcdef"
	snippetPath = "../django/allauthgo_evict.py"
	driverPath  = "testdata/evict_driver.py"
)

// newEvictApp is an app as the README mounts it: the webhook first, then the
// middleware on everything else, answering with the user's name.
func newEvictApp(tb testing.TB, cfg headless.EvictConfig, m *fiberauth.Middleware, more ...*fiberauth.Middleware) *fiber.App {
	tb.Helper()
	if cfg.Secret == nil {
		cfg.Secret = []byte(evictSecret)
	}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Post(evictPath, mustEvict(tb, cfg, m, more...))
	app.Use(m.Handler)
	app.Get("/*", whoHandler)
	tb.Cleanup(func() {
		if err := app.Shutdown(); err != nil {
			tb.Errorf("app.Shutdown: %v", err)
		}
	})
	return app
}

var nonceSeq atomic.Int64

// evictBody encodes an eviction as the snippet's encode does: compact JSON,
// sorted keys, a nonce, empty lists left out.
func evictBody(tb testing.TB, sessionKeys, userIDs []string) []byte {
	tb.Helper()
	return evictBodyNonce(tb, "n"+strconv.FormatInt(nonceSeq.Add(1), 10), sessionKeys, userIDs)
}

func evictBodyNonce(tb testing.TB, nonce string, sessionKeys, userIDs []string) []byte {
	tb.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(struct { //nolint:gosec // session keys are the payload of an eviction
		Nonce       string   `json:"nonce"`
		SessionKeys []string `json:"session_keys,omitempty"`
		UserIDs     []string `json:"user_ids,omitempty"`
	}{nonce, sessionKeys, userIDs}); err != nil {
		tb.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// evictReq is a POST of body with the given headers, pairs of name, value.
func evictReq(body []byte, headers ...string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, evictPath, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return req
}

// signedAt is a request signed with evictSecret at ts.
func signedAt(body []byte, ts int64) *http.Request {
	return evictReq(body,
		headless.HeaderEvictTimestamp, strconv.FormatInt(ts, 10),
		headless.HeaderEvictSignature, headless.SignEvict([]byte(evictSecret), ts, body))
}

// signed is a request signed now.
func signed(body []byte) *http.Request { return signedAt(body, time.Now().Unix()) }

// wantEvicted checks a 200 answer of the webhook and returns its count.
func wantEvicted(tb testing.TB, r result, want int) {
	tb.Helper()
	if r.Status != http.StatusOK {
		tb.Fatalf("eviction: %d %s", r.Status, r.Body)
	}
	var b struct {
		Status int `json:"status"`
		Data   struct {
			Evicted *int `json:"evicted"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(r.Body), &b); err != nil || b.Status != 200 || b.Data.Evicted == nil {
		tb.Fatalf("eviction body %q: %v", r.Body, err)
	}
	if *b.Data.Evicted != want {
		tb.Fatalf("evicted %d entries, want %d", *b.Data.Evicted, want)
	}
	if r.Header.Get("Cache-Control") != "no-store" {
		tb.Errorf("Cache-Control = %q", r.Header.Get("Cache-Control"))
	}
}

// wantRefused checks an error answer of the webhook.
func wantRefused(tb testing.TB, r result, status int, code string) {
	tb.Helper()
	wantError(tb, r, status, code)
}

const browserLookup = "header:X-Session-Token,cookie:sessionid"

// A Django logout stops the token on every instance within a second: two
// instances share a Redis cache, the eviction goes to one of them, and the
// next request through either gets 410 (app token) or 401 (browser cookie).
func Test_Evict_LogoutEverywhereRedis(t *testing.T) {
	t.Parallel()
	prefix := redisPrefix(t)
	st := newRedis(t, prefix)
	srv := newAllauth(t)
	cfg := fiberauth.Config{Storage: st, Prefix: prefix, CacheTTL: time.Minute, KeyLookup: browserLookup}
	ma := newMiddleware(t, srv, cfg)
	mb := newMiddleware(t, srv, cfg)
	a, b := newEvictApp(t, headless.EvictConfig{}, ma), newEvictApp(t, headless.EvictConfig{}, mb)
	waitSubscribed(t, ma, mb)

	tok, cookie := srv.IssueToken("alice"), srv.IssueCookie("bob")
	for _, app := range []*fiber.App{a, b} {
		wantUser(t, do(t, app, withToken(tok)), "alice")
		wantUser(t, do(t, app, withCookie("sessionid", cookie)), "bob")
	}
	wantCalls(t, srv, 2)

	// Without an eviction the cache would keep serving both for a minute.
	srv.Logout(tok)
	srv.Logout(cookie)
	loggedOut := time.Now()
	wantUser(t, do(t, b, withToken(tok)), "alice")
	wantUser(t, do(t, b, withCookie("sessionid", cookie)), "bob")

	wantEvicted(t, do(t, a, signed(evictBody(t, []string{tok, cookie}, nil))), 2)
	waitHeard(t, mb, 1) // by Redis pub/sub
	for name, app := range map[string]*fiber.App{"A": a, "B": b} {
		wantError(t, do(t, app, withToken(tok)), http.StatusGone, headless.CodeSessionGone)
		wantError(t, do(t, app, withCookie("sessionid", cookie)), http.StatusUnauthorized, headless.CodeNotAuthenticated)
		if d := time.Since(loggedOut); d >= time.Second {
			t.Errorf("instance %s refused the session %v after the logout", name, d)
		}
	}
	// One lookup per credential, shared by both instances (negative caching).
	wantCalls(t, srv, 4)
}

// With in-process caches the eviction must reach every instance: a POST to
// A leaves B's cache alone until B gets its own.
func Test_Evict_InProcessCachesNeedEachInstance(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	ma, mb := newMiddleware(t, srv, fiberauth.Config{}), newMiddleware(t, srv, fiberauth.Config{})
	a, b := newEvictApp(t, headless.EvictConfig{}, ma), newEvictApp(t, headless.EvictConfig{}, mb)
	tok := srv.IssueToken("alice")
	wantUser(t, do(t, a, withToken(tok)), "alice")
	wantUser(t, do(t, b, withToken(tok)), "alice")
	srv.Logout(tok)

	body := evictBody(t, []string{tok}, nil)
	wantEvicted(t, do(t, a, signed(body)), 1)
	wantError(t, do(t, a, withToken(tok)), http.StatusGone, headless.CodeSessionGone)
	wantUser(t, do(t, b, withToken(tok)), "alice") // B was not told
	// The same signed request to B: each instance remembers its own replays.
	wantEvicted(t, do(t, b, signed(body)), 1)
	wantError(t, do(t, b, withToken(tok)), http.StatusGone, headless.CodeSessionGone)
}

// Evicting what nobody cached is a 200 with 0; several middlewares in one
// handler are all evicted.
func Test_Evict_UncachedAndSeveralMiddlewares(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m1 := newMiddleware(t, srv, fiberauth.Config{})
	m2 := newMiddleware(t, srv, fiberauth.Config{KeyLookup: "cookie:sessionid"})
	app := newEvictApp(t, headless.EvictConfig{}, m1, m2)
	wantEvicted(t, do(t, app, signed(evictBody(t, []string{"never-seen-anywhere-0123456789ab"}, nil))), 0)

	tok := srv.IssueToken("alice")
	wantUser(t, do(t, app, withToken(tok)), "alice")
	other := newApp(t, m2.Handler)
	wantUser(t, do(t, other, withCookie("sessionid", tok)), "alice")
	wantCalls(t, srv, 2)
	wantEvicted(t, do(t, app, signed(evictBody(t, []string{tok}, nil))), 2)
	wantUser(t, do(t, app, withToken(tok)), "alice")
	wantUser(t, do(t, other, withCookie("sessionid", tok)), "alice")
	wantCalls(t, srv, 4)
}

// Every request the webhook refuses, with the status and code that say why,
// and none of them evicts anything.
func Test_Evict_Rejections(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := newMiddleware(t, srv, fiberauth.Config{})
	now := time.Unix(1_800_000_000, 0)
	cfg := headless.EvictConfig{MaxSkew: 30 * time.Second, Now: func() time.Time { return now }}
	app := newEvictApp(t, cfg, m)
	// Another method: the handler mounted for every method.
	all := fiber.New(fiber.Config{DisableStartupMessage: true})
	cfg.Secret = []byte(evictSecret)
	all.All(evictPath, mustEvict(t, cfg, m))
	t.Cleanup(func() { _ = all.Shutdown() })

	tok := srv.IssueToken("alice")
	wantUser(t, do(t, app, withToken(tok)), "alice")
	body := evictBody(t, []string{tok}, nil)
	ts := now.Unix()
	tsS := strconv.FormatInt(ts, 10)
	sig := headless.SignEvict([]byte(evictSecret), ts, body)
	sigAt := func(ts int64, b []byte) string { return headless.SignEvict([]byte(evictSecret), ts, b) }
	withCT := func(ct string) *http.Request {
		r := signedAt(body, ts)
		if ct == "" {
			r.Header.Del("Content-Type")
		} else {
			r.Header.Set("Content-Type", ct)
		}
		return r
	}
	big := evictBody(t, []string{strings.Repeat("k", 70<<10)}, nil)
	wrongSecret := headless.SignEvict([]byte("another-secret-of-enough-length-0123456789"), ts, body)

	cases := []struct {
		name   string
		req    *http.Request
		app    *fiber.App
		status int
		code   string
	}{
		{"GET", httptest.NewRequest(http.MethodGet, evictPath, http.NoBody), all, 405, "method_not_allowed"},
		{"PUT", func() *http.Request { r := signedAt(body, ts); r.Method = http.MethodPut; return r }(), all, 405, "method_not_allowed"},
		{"no content type", withCT(""), app, 415, "unsupported_media_type"},
		{"text/plain", withCT("text/plain"), app, 415, "unsupported_media_type"},
		{"form", withCT("application/x-www-form-urlencoded"), app, 415, "unsupported_media_type"},
		{"oversized body", evictReq(big, headless.HeaderEvictTimestamp, tsS, headless.HeaderEvictSignature, sigAt(ts, big)), app, 413, "body_too_large"},
		{"no headers", evictReq(body), app, 401, "unsigned"},
		{"no signature", evictReq(body, headless.HeaderEvictTimestamp, tsS), app, 401, "unsigned"},
		{"no timestamp", evictReq(body, headless.HeaderEvictSignature, sig), app, 401, "unsigned"},
		{"empty signature", evictReq(body, headless.HeaderEvictTimestamp, tsS, headless.HeaderEvictSignature, " "), app, 401, "unsigned"},
		{"timestamp in ms", evictReq(body, headless.HeaderEvictTimestamp, tsS+"000", headless.HeaderEvictSignature, sigAt(ts*1000, body)), app, 401, "bad_timestamp"},
		{"timestamp not a number", evictReq(body, headless.HeaderEvictTimestamp, "yesterday", headless.HeaderEvictSignature, sig), app, 401, "bad_timestamp"},
		{"timestamp with a sign", evictReq(body, headless.HeaderEvictTimestamp, "+"+tsS, headless.HeaderEvictSignature, sig), app, 401, "bad_timestamp"},
		{"timestamp negative", evictReq(body, headless.HeaderEvictTimestamp, "-5", headless.HeaderEvictSignature, sigAt(-5, body)), app, 401, "bad_timestamp"},
		{"timestamp fractional", evictReq(body, headless.HeaderEvictTimestamp, tsS+".5", headless.HeaderEvictSignature, sig), app, 401, "bad_timestamp"},
		{"stale past skew", signedAt(body, ts-31), app, 401, "stale"},
		{"future past skew", signedAt(body, ts+31), app, 401, "stale"},
		{"wrong signature", evictReq(body, headless.HeaderEvictTimestamp, tsS, headless.HeaderEvictSignature, "v1="+strings.Repeat("ab", 32)), app, 401, "bad_signature"},
		{"wrong secret", evictReq(body, headless.HeaderEvictTimestamp, tsS, headless.HeaderEvictSignature, wrongSecret), app, 401, "bad_signature"},
		{"signature over another body", evictReq(body, headless.HeaderEvictTimestamp, tsS, headless.HeaderEvictSignature, sigAt(ts, evictBody(t, []string{"other"}, nil))), app, 401, "bad_signature"},
		{"signature for another timestamp", evictReq(body, headless.HeaderEvictTimestamp, tsS, headless.HeaderEvictSignature, sigAt(ts-1, body)), app, 401, "bad_signature"},
		{"body changed after signing", evictReq(append(bytes.Clone(body), ' '), headless.HeaderEvictTimestamp, tsS, headless.HeaderEvictSignature, sig), app, 401, "bad_signature"},
		{"another scheme", evictReq(body, headless.HeaderEvictTimestamp, tsS, headless.HeaderEvictSignature, "v2="+sig[3:]), app, 401, "bad_signature"},
		{"bare hex", evictReq(body, headless.HeaderEvictTimestamp, tsS, headless.HeaderEvictSignature, sig[3:]), app, 401, "bad_signature"},
		{"short signature", evictReq(body, headless.HeaderEvictTimestamp, tsS, headless.HeaderEvictSignature, sig[:len(sig)-2]), app, 401, "bad_signature"},
		{"not hex", evictReq(body, headless.HeaderEvictTimestamp, tsS, headless.HeaderEvictSignature, "v1="+strings.Repeat("zz", 32)), app, 401, "bad_signature"},
		{"two signatures", evictReq(body, headless.HeaderEvictTimestamp, tsS, headless.HeaderEvictSignature, sig+","+sig), app, 401, "bad_signature"},
	}
	for _, tc := range cases {
		r := do(t, tc.app, tc.req)
		if r.Status != tc.status || !strings.Contains(r.Body, `"code": "`+tc.code+`"`) {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.Status, r.Body, tc.status, tc.code)
			continue
		}
		wantRefused(t, r, tc.status, tc.code)
		if tc.status == 405 && r.Header.Get("Allow") != "POST" {
			t.Errorf("%s: Allow = %q", tc.name, r.Header.Get("Allow"))
		}
	}
	// Nothing was evicted: the token is still a hit.
	wantUser(t, do(t, app, withToken(tok)), "alice")
	wantCalls(t, srv, 1)

	// Signed, fresh, but not an eviction: 400 (after authentication).
	for name, b := range map[string]string{
		"not JSON":          `{"session_keys": [`,
		"an array":          `["abc"]`,
		"null":              `null`,
		"empty object":      `{}`,
		"empty lists":       `{"session_keys": [], "user_ids": []}`,
		"numbers":           `{"user_ids": [1]}`,
		"a string":          `{"session_keys": "abc"}`,
		"an empty key":      `{"session_keys": [""]}`,
		"an empty user id":  `{"user_ids": [""]}`,
		"trailing garbage":  `{"session_keys": ["abc"]} x`,
		"too long a key":    `{"session_keys": ["` + strings.Repeat("k", 5000) + `"]}`,
		"too long a userid": `{"user_ids": ["` + strings.Repeat("1", 300) + `"]}`,
	} {
		wantRefused(t, do(t, app, signedAt([]byte(b), ts)), http.StatusBadRequest, "bad_request")
		_ = name
	}

	// At the edge of the skew: accepted both ways. Then replays are refused,
	// even of a request whose eviction was accepted.
	early := evictBody(t, []string{"edge-early"}, nil)
	late := evictBody(t, []string{"edge-late"}, nil)
	wantEvicted(t, do(t, app, signedAt(early, ts-30)), 0)
	wantEvicted(t, do(t, app, signedAt(late, ts+30)), 0)
	wantRefused(t, do(t, app, signedAt(early, ts-30)), http.StatusUnauthorized, "replayed")
	wantRefused(t, do(t, app, signedAt(late, ts+30)), http.StatusUnauthorized, "replayed")
	wantEvicted(t, do(t, app, signedAt(body, ts)), 1)
	wantRefused(t, do(t, app, signedAt(body, ts)), http.StatusUnauthorized, "replayed")
	// The same body at another second is another request.
	wantEvicted(t, do(t, app, signedAt(body, ts+1)), 0)
	// A charset parameter is fine.
	r := signedAt(evictBody(t, []string{"x"}, nil), ts)
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	wantEvicted(t, do(t, app, r), 0)
}

// OldSecrets are accepted during a rotation; short secrets are refused at
// start, as a bad middleware config is.
func Test_Evict_SecretRotationAndConfig(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := newMiddleware(t, srv, fiberauth.Config{})
	old := []byte("the-previous-secret-0123456789abcdef")
	app := newEvictApp(t, headless.EvictConfig{Secret: []byte("the-next-secret-0123456789abcdefgh"), OldSecrets: [][]byte{old}}, m)
	body := evictBody(t, []string{"k"}, nil)
	ts := time.Now().Unix()
	wantEvicted(t, do(t, app, evictReq(body,
		headless.HeaderEvictTimestamp, strconv.FormatInt(ts, 10),
		headless.HeaderEvictSignature, headless.SignEvict(old, ts, body))), 0)
	wantRefused(t, do(t, app, signed(evictBody(t, []string{"k"}, nil))), http.StatusUnauthorized, "bad_signature")

	for name, cfg := range map[string]headless.EvictConfig{
		"no secret":       {},
		"short secret":    {Secret: []byte("short")},
		"short old":       {Secret: []byte(evictSecret), OldSecrets: [][]byte{[]byte("short")}},
		"31-byte secret":  {Secret: bytes.Repeat([]byte("s"), 31)},
		"empty old entry": {Secret: []byte(evictSecret), OldSecrets: [][]byte{nil}},
	} {
		if h, err := fiberauth.EvictHandler(cfg, m); h != nil || err == nil || !strings.HasPrefix(err.Error(), "fiberauth: ") || !strings.Contains(err.Error(), "32 bytes") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// The replay set is bounded: with MaxReplays 2, a third signature pushes the
// first out, which may then be replayed (an eviction again, nothing more).
func Test_Evict_ReplaySetBounded(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := newMiddleware(t, srv, fiberauth.Config{})
	now := time.Now()
	app := newEvictApp(t, headless.EvictConfig{MaxReplays: 2, Now: func() time.Time { return now }}, m)
	var reqs [3][]byte
	for i := range reqs {
		reqs[i] = evictBody(t, []string{"k" + strconv.Itoa(i)}, nil)
		wantEvicted(t, do(t, app, signedAt(reqs[i], now.Unix())), 0)
	}
	wantRefused(t, do(t, app, signedAt(reqs[2], now.Unix())), http.StatusUnauthorized, "replayed")
	wantRefused(t, do(t, app, signedAt(reqs[1], now.Unix())), http.StatusUnauthorized, "replayed")
	wantEvicted(t, do(t, app, signedAt(reqs[0], now.Unix())), 0) // forgotten
}

// A store that cannot delete makes the webhook answer 503, so that Django
// logs it; user_ids without a user index answer 501 after the session keys
// were evicted.
func Test_Evict_StoreFailureAndNoIndex(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	mb := newMiddleware(t, srv, fiberauth.Config{Storage: failingStorage{}})
	r := do(t, newEvictApp(t, headless.EvictConfig{}, mb), signed(evictBody(t, []string{"k"}, nil)))
	wantError(t, r, http.StatusServiceUnavailable, "store_unavailable")
	if r.Header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After = %q", r.Header.Get("Retry-After"))
	}

	m := newMiddleware(t, srv, fiberauth.Config{})
	app := newEvictApp(t, headless.EvictConfig{}, m)
	tok := srv.IssueToken("alice")
	wantUser(t, do(t, app, withToken(tok)), "alice")
	wantError(t, do(t, app, signed(evictBody(t, []string{tok}, []string{"1"}))), http.StatusNotImplemented, "user_index_off")
	wantUser(t, do(t, app, withToken(tok)), "alice")
	wantCalls(t, srv, 2) // the session key was evicted all the same
	if n, err := m.EvictUser(t.Context(), "1"); n != 0 || !errors.Is(err, cache.ErrNoUserIndex) {
		t.Errorf("EvictUser without an index = %d, %v", n, err)
	}
}

// failingStorage is a fiber.Storage that always fails.
type failingStorage struct{}

var errFailing = errors.New("storage down")

func (failingStorage) Get(string) ([]byte, error)              { return nil, errFailing }
func (failingStorage) Set(string, []byte, time.Duration) error { return errFailing }
func (failingStorage) Delete(string) error                     { return errFailing }
func (failingStorage) Reset() error                            { return errFailing }
func (failingStorage) Close() error                            { return nil }

// EvictUser (in process) drops every session of one user, app tokens and
// cookies alike, and no other user's; so do user_ids sent to the webhook.
func Test_Evict_UserInProcess(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := newMiddleware(t, srv, fiberauth.Config{KeyLookup: browserLookup, UserIndex: true})
	app := newEvictApp(t, headless.EvictConfig{}, m)
	a1, a2, ac := srv.IssueToken("alice"), srv.IssueToken("alice"), srv.IssueCookie("alice")
	b1 := srv.IssueToken("bob")
	wantUser(t, do(t, app, withToken(a1)), "alice")
	wantUser(t, do(t, app, withToken(a2)), "alice")
	wantUser(t, do(t, app, withCookie("sessionid", ac)), "alice")
	wantUser(t, do(t, app, withToken(b1)), "bob")
	wantCalls(t, srv, 4)

	srv.SetActive("alice", false)
	if n, err := m.EvictUser(t.Context(), "1"); n != 3 || err != nil {
		t.Fatalf("EvictUser = %d, %v; want 3", n, err)
	}
	wantError(t, do(t, app, withToken(a1)), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	wantError(t, do(t, app, withToken(a2)), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	wantError(t, do(t, app, withCookie("sessionid", ac)), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	wantUser(t, do(t, app, withToken(b1)), "bob")
	wantCalls(t, srv, 7)

	srv.SetActive("bob", false)
	wantEvicted(t, do(t, app, signed(evictBody(t, nil, []string{"2", "99"}))), 1)
	wantError(t, do(t, app, withToken(b1)), http.StatusUnauthorized, headless.CodeNotAuthenticated)
}

// With Redis the user index is shared: a user's sessions cached by two
// instances are dropped by one webhook call to one of them, and both
// refuse them within a second of the deactivation.
func Test_Evict_UserRedis(t *testing.T) {
	t.Parallel()
	prefix := redisPrefix(t)
	st := newRedis(t, prefix)
	srv := newAllauth(t)
	cfg := fiberauth.Config{Storage: st, Prefix: prefix, CacheTTL: time.Minute, UserIndex: true}
	ma := newMiddleware(t, srv, cfg)
	mb := newMiddleware(t, srv, cfg)
	a, b := newEvictApp(t, headless.EvictConfig{}, ma), newEvictApp(t, headless.EvictConfig{}, mb)
	waitSubscribed(t, ma, mb)
	t1, t2, tb := srv.IssueToken("alice"), srv.IssueToken("alice"), srv.IssueToken("bob")
	wantUser(t, do(t, a, withToken(t1)), "alice")
	wantUser(t, do(t, b, withToken(t2)), "alice")
	wantUser(t, do(t, b, withToken(tb)), "bob")
	wantUser(t, do(t, a, withToken(t2)), "alice") // a hit
	wantCalls(t, srv, 3)

	srv.SetActive("alice", false)
	deactivated := time.Now()
	wantEvicted(t, do(t, b, signed(evictBody(t, nil, []string{"1"}))), 2)
	waitHeard(t, ma, 1) // by Redis pub/sub
	for _, app := range []*fiber.App{a, b} {
		wantError(t, do(t, app, withToken(t1)), http.StatusUnauthorized, headless.CodeNotAuthenticated)
		wantError(t, do(t, app, withToken(t2)), http.StatusUnauthorized, headless.CodeNotAuthenticated)
		wantUser(t, do(t, app, withToken(tb)), "bob")
	}
	if d := time.Since(deactivated); d >= time.Second {
		t.Errorf("took %v", d)
	}
	wantCalls(t, srv, 5)

	// Go code can do the same.
	wantUser(t, do(t, a, withToken(tb)), "bob")
	if n, err := ma.EvictUser(t.Context(), "2"); n != 1 || err != nil {
		t.Errorf("EvictUser = %d, %v", n, err)
	}
	waitHeard(t, mb, 1)
	wantUser(t, do(t, b, withToken(tb)), "bob")
	wantCalls(t, srv, 6)
}

// --- The Django snippet and the Go side cannot drift. ---

// snippetVector was computed by the snippet's encode and sign (see
// Test_EvictSnippet_Python, which recomputes it whenever python3 is there).
var snippetVector = struct {
	secret      string
	timestamp   int64
	nonce       string
	sessionKeys []string
	userIDs     []string
	body        string
	signature   string
}{
	secret:      evictSecret,
	timestamp:   1700000000,
	nonce:       "00112233445566778899aabbccddeeff",
	sessionKeys: []string{"3z0a2m5pwq8t1n4k7c6v9x0b2d5f8h1j"},
	userIDs:     []string{"1"},
	body:        `{"nonce":"00112233445566778899aabbccddeeff","session_keys":["3z0a2m5pwq8t1n4k7c6v9x0b2d5f8h1j"],"user_ids":["1"]}`,
	signature:   "v1=8f65732ff67605e05f2dfbfe7708ba9147a7e257f048c91ad4927ffcda401bd7",
}

// The snippet's wire format, checked without Python: its header names,
// signing line and serialization are those of the Go side, and a request it
// signed (a recorded vector) is accepted.
func Test_EvictSnippet_Vector(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(snippetPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`TIMESTAMP_HEADER = "` + headless.HeaderEvictTimestamp + `"`,
		`SIGNATURE_HEADER = "` + headless.HeaderEvictSignature + `"`,
		`mac = hmac.new(secret, b"%d." % timestamp + body, hashlib.sha256)`,
		`return "v1=" + mac.hexdigest()`,
		`json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()`,
		`"Content-Type": "application/json",`,
		`payload = {"nonce": nonce or secrets.token_hex(16)}`,
		`payload["session_keys"] = [str(k) for k in session_keys]`,
		`payload["user_ids"] = [str(u) for u in user_ids]`,
		`timestamp = int(time.time())`,
		"# ---- Django wiring",
	} {
		if !strings.Contains(string(src), want) {
			t.Errorf("%s no longer has %q: update the Go side and snippetVector (Test_EvictSnippet_Python recomputes it)", snippetPath, want)
		}
	}

	v := snippetVector
	if got := string(evictBodyNonce(t, v.nonce, v.sessionKeys, v.userIDs)); got != v.body {
		t.Errorf("Go encodes\n%s\nthe snippet\n%s", got, v.body)
	}
	if got := headless.SignEvict([]byte(v.secret), v.timestamp, []byte(v.body)); got != v.signature {
		t.Errorf("SignEvict = %s, the snippet %s", got, v.signature)
	}
	srv := newAllauth(t)
	m := newMiddleware(t, srv, fiberauth.Config{UserIndex: true})
	app := newEvictApp(t, headless.EvictConfig{Now: func() time.Time { return time.Unix(v.timestamp+5, 0) }}, m)
	wantEvicted(t, do(t, app, evictReq([]byte(v.body),
		"X-Allauthgo-Timestamp", strconv.FormatInt(v.timestamp, 10),
		"X-Allauthgo-Signature", v.signature)), 0)
}

// python3 runs testdata/evict_driver.py with req on stdin and decodes its
// output into out; the test is skipped without python3.
func python3(t *testing.T, mode string, req, out any) {
	t.Helper()
	stdout, stderr := runPython(t, mode, req)
	if err := json.Unmarshal(stdout, out); err != nil {
		t.Fatalf("python3 output %q: %v\n%s", stdout, err, stderr)
	}
}

// runPython runs testdata/evict_driver.py with req on stdin until it exits
// (at most 30 s), and returns what it wrote.
func runPython(t *testing.T, mode string, req any) (stdout, stderr []byte) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found: the snippet itself is not run (Test_EvictSnippet_Vector still checks the Go side against a vector it computed)")
	}
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, filepath.Base(driverPath), mode)
	cmd.Dir = filepath.Dir(driverPath)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	cmd.Stdin = bytes.NewReader(in)
	var outBuf, errBuf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outBuf, &errBuf
	if err := cmd.Run(); err != nil {
		t.Fatalf("python3 %s %s: %v\n%s", driverPath, mode, err, errBuf.String())
	}
	return outBuf.Bytes(), errBuf.Bytes()
}

// The snippet's own encode and sign, run by python3, give the Go side's
// bytes and signatures (the recorded vector among them), and its post
// reaches a live webhook: accepted with the right secret, refused with 401
// and a reason with a wrong one.
func Test_EvictSnippet_Python(t *testing.T) {
	t.Parallel()
	type pyCase struct {
		Timestamp   int64    `json:"timestamp"`
		Nonce       string   `json:"nonce"`
		SessionKeys []string `json:"session_keys,omitempty"`
		UserIDs     []string `json:"user_ids,omitempty"`
	}
	v := snippetVector
	cases := []pyCase{
		{v.timestamp, v.nonce, v.sessionKeys, v.userIDs},
		{1, "a", []string{"k1", "k2"}, nil},
		{99999999999, "b", nil, []string{"42", "3f2c1a9e-8d4b-4f0e-9a57-2b1d6c7e8f90"}},
		{1700000001, "c", []string{`quote"back\slash`}, []string{"<&>"}},
	}
	var got []struct {
		Body      string `json:"body"`
		Signature string `json:"signature"`
	}
	python3(t, "vectors", map[string]any{"secret": evictSecret, "cases": cases}, &got)
	if len(got) != len(cases) {
		t.Fatalf("%d answers for %d cases", len(got), len(cases))
	}
	if got[0].Body != v.body || got[0].Signature != v.signature {
		t.Errorf("the snippet now gives\n%s %s\nupdate snippetVector", got[0].Body, got[0].Signature)
	}
	for i, c := range cases {
		if want := string(evictBodyNonce(t, c.Nonce, c.SessionKeys, c.UserIDs)); got[i].Body != want {
			t.Errorf("case %d: snippet body %s, Go %s", i, got[i].Body, want)
		}
		if want := headless.SignEvict([]byte(evictSecret), c.Timestamp, []byte(got[i].Body)); got[i].Signature != want {
			t.Errorf("case %d: snippet signature %s, Go %s", i, got[i].Signature, want)
		}
	}

	// A non-ASCII user id: Python writes \u00e9; Go reads it.
	var uni []struct {
		Body      string `json:"body"`
		Signature string `json:"signature"`
	}
	python3(t, "vectors", map[string]any{"secret": evictSecret, "cases": []pyCase{{1700000000, "u", nil, []string{"é"}}}}, &uni)
	if len(uni) != 1 || !strings.Contains(uni[0].Body, `\u00e9`) {
		t.Fatalf("non-ASCII case: %+v", uni)
	}

	srv := newAllauth(t)
	m := newMiddleware(t, srv, fiberauth.Config{UserIndex: true})
	app := newEvictApp(t, headless.EvictConfig{Now: func() time.Time { return time.Unix(1700000000, 0) }}, m)
	wantEvicted(t, do(t, app, evictReq([]byte(uni[0].Body),
		headless.HeaderEvictTimestamp, "1700000000", headless.HeaderEvictSignature, uni[0].Signature)), 0)

	// post() against a live webhook.
	live := newEvictApp(t, headless.EvictConfig{}, m)
	url := listen(t, live) + evictPath
	tok := srv.IssueToken("alice")
	wantUser(t, do(t, live, withToken(tok)), "alice")
	var ok struct {
		Status int             `json:"status"`
		Answer json.RawMessage `json:"answer"`
		Error  int             `json:"error"`
	}
	python3(t, "post", map[string]any{"secret": evictSecret, "url": url, "session_keys": []string{tok}}, &ok)
	if ok.Status != 200 || string(ok.Answer) != `{"status": 200, "data": {"evicted": 1}}` {
		t.Fatalf("post: %+v %s", ok, ok.Answer)
	}
	var refused struct {
		Error  int `json:"error"`
		Answer struct {
			Errors []struct {
				Code string `json:"code"`
			} `json:"errors"`
		} `json:"answer"`
	}
	python3(t, "post", map[string]any{"secret": "not-the-secret-but-long-enough-0123456789", "url": url, "session_keys": []string{tok}}, &refused)
	if refused.Error != 401 || len(refused.Answer.Errors) != 1 || refused.Answer.Errors[0].Code != "bad_signature" {
		t.Fatalf("post with a wrong secret: %+v", refused)
	}
}

// The whole snippet, run over stand-ins for Django's and allauth's modules:
// its receivers send what the README says they send, through its thread, to
// every configured URL, and the Go side acts on it.
func Test_EvictSnippet_DjangoSignals(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	// Two instances over one store (as over one Redis, without needing it).
	cfg := fiberauth.Config{Storage: newMemStorage(), CacheTTL: time.Minute, Recheck: recheckAlways, UserIndex: true, KeyLookup: browserLookup}
	ma := newMiddleware(t, srv, cfg)
	mb := newMiddleware(t, srv, cfg)
	a, b := newEvictApp(t, headless.EvictConfig{}, ma), newEvictApp(t, headless.EvictConfig{}, mb)
	urlA, urlB := listen(t, a)+evictPath, listen(t, b)+evictPath

	tok, cookie, bobTok := srv.IssueToken("alice"), srv.IssueCookie("alice"), srv.IssueToken("bob")
	wantUser(t, do(t, a, withToken(tok)), "alice")
	wantUser(t, do(t, b, withCookie("sessionid", cookie)), "alice")
	wantUser(t, do(t, a, withToken(bobTok)), "bob")
	srv.Logout(tok)

	var out struct {
		Posts []struct {
			URL    string `json:"url"`
			Status int    `json:"status"`
			Body   struct {
				Nonce       string   `json:"nonce"`
				SessionKeys []string `json:"session_keys"`
				UserIDs     []string `json:"user_ids"`
			} `json:"body"`
		} `json:"posts"`
	}
	events := []map[string]any{
		{"kind": "session_deleted", "key": tok, "wait": 2},                   // logout, DB sessions
		{"kind": "session_deleted", "key": "expired-session", "live": false}, // clearsessions: nothing
		{"kind": "session_deleted", "key": "anonymous", "anonymous": true},   // never logged in: nothing
		{"kind": "logged_out", "key": tok, "user": 1},                        // covered by post_delete with DB sessions
		{"kind": "user_saved", "user": 2, "active": true},                    // nothing
		{"kind": "password_changed", "user": 1, "wait": 4},
		{"kind": "user_saved", "user": 2, "active": false, "wait": 6},
	}
	python3(t, "django", map[string]any{"secret": evictSecret, "urls": []string{urlA, urlB}, "events": events, "want_posts": 6}, &out)
	if len(out.Posts) != 6 {
		t.Fatalf("%d POSTs, want 6: %+v", len(out.Posts), out.Posts)
	}
	want := []struct{ keys, users string }{{tok, ""}, {tok, ""}, {"", "1"}, {"", "1"}, {"", "2"}, {"", "2"}}
	for i, p := range out.Posts {
		if p.URL != []string{urlA, urlB}[i%2] || strings.Join(p.Body.SessionKeys, ",") != want[i].keys ||
			strings.Join(p.Body.UserIDs, ",") != want[i].users || len(p.Body.Nonce) != 32 || p.Status != http.StatusOK {
			t.Errorf("POST %d: %+v, want %+v", i, p, want[i])
		}
	}
	if out.Posts[0].Body.Nonce != out.Posts[1].Body.Nonce || out.Posts[0].Body.Nonce == out.Posts[2].Body.Nonce {
		t.Error("one batch is one body for every URL, and each batch has its own nonce")
	}
	wantError(t, do(t, b, withToken(tok)), http.StatusGone, headless.CodeSessionGone)
	// The password change dropped alice's cookie from the cache: asked again.
	calls := srv.SessionCalls()
	wantUser(t, do(t, a, withCookie("sessionid", cookie)), "alice")
	wantCalls(t, srv, calls+1)
	wantUser(t, do(t, a, withToken(bobTok)), "bob")
	wantCalls(t, srv, calls+2)

	// Sessions in the cache backend have no row: user_logged_out sends.
	tok2 := srv.IssueToken("bob")
	wantUser(t, do(t, b, withToken(tok2)), "bob")
	srv.Logout(tok2)
	out.Posts = nil
	python3(t, "django", map[string]any{
		"secret": evictSecret, "urls": []string{urlA}, "want_posts": 1,
		"session_engine": "django.contrib.sessions.backends.cache",
		"events":         []map[string]any{{"kind": "logged_out", "key": tok2, "user": 2}},
	}, &out)
	if len(out.Posts) != 1 || out.Posts[0].Status != http.StatusOK || strings.Join(out.Posts[0].Body.SessionKeys, ",") != tok2 {
		t.Fatalf("logout with cache sessions: %+v", out.Posts)
	}
	wantError(t, do(t, b, withToken(tok2)), http.StatusGone, headless.CodeSessionGone)
}

// docs/revocation.md links the snippet (one source of truth) instead of
// pasting it, and the file it links exists.
func Test_EvictSnippet_Linked(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../docs/revocation.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "](../django/allauthgo_evict.py)") {
		t.Errorf("docs/revocation.md must link %s as ](../django/allauthgo_evict.py)", snippetPath)
	}
	if _, err := os.Stat(snippetPath); err != nil {
		t.Error(err)
	}
}

// countingEvictApp is newEvictApp's app, counting the evictions the webhook
// accepted (200).
func countingEvictApp(t *testing.T, m *fiberauth.Middleware) (*fiber.App, *atomic.Int64) {
	t.Helper()
	var accepted atomic.Int64
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Post(evictPath, func(c *fiber.Ctx) error {
		err := c.Next()
		if c.Response().StatusCode() == http.StatusOK {
			accepted.Add(1)
		}
		return err
	}, mustEvict(t, headless.EvictConfig{Secret: []byte(evictSecret)}, m))
	app.Use(m.Handler)
	app.Get("/*", whoHandler)
	return app, &accepted
}

// A process that fires evictions and exits at once (a management command,
// a short script) still sends them: the snippet flushes its queue at exit
// instead of letting its daemon thread die with the process.
func Test_EvictSnippet_FlushedAtExit(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := newMiddleware(t, srv, fiberauth.Config{UserIndex: true, CacheTTL: time.Hour})
	app, accepted := countingEvictApp(t, m)
	url := listen(t, app) + evictPath

	tok, bobTok := srv.IssueToken("alice"), srv.IssueToken("bob")
	wantUser(t, do(t, app, withToken(tok)), "alice")
	wantUser(t, do(t, app, withToken(bobTok)), "bob")
	srv.Logout(tok)
	wantUser(t, do(t, app, withToken(tok)), "alice") // cached: allauth is not asked
	calls := srv.SessionCalls()

	var out struct {
		Fired int `json:"fired"`
	}
	python3(t, "exit", map[string]any{"secret": evictSecret, "urls": []string{url}, "events": []map[string]any{
		{"kind": "session_deleted", "key": tok},
		{"kind": "password_changed", "user": 2},
	}}, &out)
	if out.Fired != 2 {
		t.Fatalf("fired %d events", out.Fired)
	}
	// The process is gone; what it sent has arrived.
	if accepted.Load() < 1 {
		t.Fatal("no eviction reached the webhook before the process exited")
	}
	wantError(t, do(t, app, withToken(tok)), http.StatusGone, headless.CodeSessionGone)
	wantUser(t, do(t, app, withToken(bobTok)), "bob")
	wantCalls(t, srv, calls+2) // both asked again: both evicted
}

// hungURL returns a loopback URL that accepts connections and never
// answers, until the test ends.
func hungURL(t *testing.T) string {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
	})
	return "http://" + ln.Addr().String() + evictPath
}

// A dead webhook never keeps an exiting process for long, and is logged: a
// refused connection and hung ones each get a warning, and what the bounded
// wait at exit could not send is counted in one more. No log line names
// the session key.
func Test_EvictSnippet_DeadWebhookAtExit(t *testing.T) {
	t.Parallel()
	refused := refusedURL(t) + evictPath
	urls := []string{refused, hungURL(t), hungURL(t), hungURL(t), hungURL(t)}
	const key = "deadwebhooksessionkey00000000000"
	_, stderr := runPython(t, "exit", map[string]any{"secret": evictSecret, "urls": urls, "events": []map[string]any{
		{"kind": "session_deleted", "key": key},
	}})
	log := string(stderr)
	for _, want := range []string{
		"WARNING allauthgo: eviction to " + refused + " failed",
		"WARNING allauthgo: eviction to " + urls[1] + " failed",
		"WARNING allauthgo: exiting with 1 eviction(s) not sent",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, key) {
		t.Errorf("a log line names the session key:\n%s", log)
	}
}
