package headless

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allauthgo/headless/internal/cache"
)

// The eviction webhook (EvictHandler) as any router mounts it: what it
// accepts and refuses, and what an eviction does to the Authenticators'
// caches. The doors only wrap it (fiberauth's EvictHandler).

const (
	evictPath   = "/_allauthgo/evict"
	evictSecret = "allauthgo-test-secret-0123456789abcdef"
	snippetPath = "django/allauthgo_evict.py"
)

// browserSources read an app session token, then a browser's cookie.
var browserSources = []Source{FromHeader(HeaderSessionToken), FromCookie("sessionid")}

// evictApp is a webhook over a (the first of its Authenticators).
type evictApp struct {
	h http.Handler
	a *Authenticator
}

// newEvictApp mounts the webhook for a and more, signed with evictSecret
// unless cfg has a Secret.
func newEvictApp(tb testing.TB, cfg EvictConfig, a *Authenticator, more ...*Authenticator) *evictApp {
	tb.Helper()
	if cfg.Secret == nil {
		cfg.Secret = []byte(evictSecret)
	}
	h, err := EvictHandler(cfg, append([]*Authenticator{a}, more...)...)
	if err != nil {
		tb.Fatal(err)
	}
	return &evictApp{h: h, a: a}
}

// webAnswer is what the webhook answered.
type webAnswer struct {
	Status int
	Body   string
	Header http.Header
}

// post serves one request to the webhook.
func post(tb testing.TB, app *evictApp, r *http.Request) webAnswer {
	tb.Helper()
	rec := httptest.NewRecorder()
	app.h.ServeHTTP(rec, r)
	return webAnswer{Status: rec.Code, Body: rec.Body.String(), Header: rec.Header()}
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
	r := httptest.NewRequest(http.MethodPost, evictPath, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	return r
}

// signedAt is a request signed with evictSecret at ts.
func signedAt(body []byte, ts int64) *http.Request {
	return evictReq(body,
		HeaderEvictTimestamp, strconv.FormatInt(ts, 10),
		HeaderEvictSignature, SignEvict([]byte(evictSecret), ts, body))
}

// signed is a request signed now.
func signed(body []byte) *http.Request { return signedAt(body, time.Now().Unix()) }

// wantEvicted checks a 200 answer of the webhook and its count.
func wantEvicted(tb testing.TB, r webAnswer, want int) {
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

// wantRefused checks an error answer of the webhook: status, the envelope
// with code, JSON, no-store.
func wantRefused(tb testing.TB, r webAnswer, status int, code string) {
	tb.Helper()
	if r.Status != status {
		tb.Fatalf("status = %d, want %d (body %q)", r.Status, status, r.Body)
	}
	var eb errorBody
	if err := json.Unmarshal([]byte(r.Body), &eb); err != nil {
		tb.Fatalf("body %q is not JSON: %v", r.Body, err)
	}
	if eb.Status != status || len(eb.Errors) != 1 || eb.Errors[0].Code != code || eb.Errors[0].Message == "" {
		tb.Fatalf("body = %q, want status %d and one error with code %q and a message", r.Body, status, code)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		tb.Errorf("Content-Type = %q", ct)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		tb.Errorf("Cache-Control = %q, want no-store", cc)
	}
}

// With in-process caches the eviction must reach every instance: a POST to
// A leaves B's cache alone until B gets its own.
func TestEvict_InProcessCachesNeedEachInstance(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	ma, mb := newCore(t, srv, Config{}), newCore(t, srv, Config{})
	a, b := newEvictApp(t, EvictConfig{}, ma), newEvictApp(t, EvictConfig{}, mb)
	tok := srv.IssueToken("alice")
	wantUser(t, auth(a.a, withToken(tok)), "alice")
	wantUser(t, auth(b.a, withToken(tok)), "alice")
	srv.Logout(tok)

	body := evictBody(t, []string{tok}, nil)
	wantEvicted(t, post(t, a, signed(body)), 1)
	wantError(t, auth(a.a, withToken(tok)), http.StatusGone, CodeSessionGone)
	wantUser(t, auth(b.a, withToken(tok)), "alice") // B was not told
	// The same signed request to B: each instance remembers its own replays.
	wantEvicted(t, post(t, b, signed(body)), 1)
	wantError(t, auth(b.a, withToken(tok)), http.StatusGone, CodeSessionGone)
}

// Evicting what nobody cached is a 200 with 0; several middlewares in one
// handler are all evicted.
func TestEvict_UncachedAndSeveralMiddlewares(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m1 := newCore(t, srv, Config{})
	m2 := newCore(t, srv, Config{Sources: []Source{FromCookie("sessionid")}})
	app := newEvictApp(t, EvictConfig{}, m1, m2)
	wantEvicted(t, post(t, app, signed(evictBody(t, []string{"never-seen-anywhere-0123456789ab"}, nil))), 0)

	tok := srv.IssueToken("alice")
	wantUser(t, auth(app.a, withToken(tok)), "alice")
	other := &evictApp{a: m2}
	wantUser(t, auth(other.a, withCookie("sessionid", tok)), "alice")
	wantCalls(t, srv, 2)
	wantEvicted(t, post(t, app, signed(evictBody(t, []string{tok}, nil))), 2)
	wantUser(t, auth(app.a, withToken(tok)), "alice")
	wantUser(t, auth(other.a, withCookie("sessionid", tok)), "alice")
	wantCalls(t, srv, 4)
}

// Every request the webhook refuses, with the status and code that say why,
// and none of them evicts anything.
func TestEvict_Rejections(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := newCore(t, srv, Config{})
	now := time.Unix(1_800_000_000, 0)
	cfg := EvictConfig{MaxSkew: 30 * time.Second, Now: func() time.Time { return now }}
	app := newEvictApp(t, cfg, m)
	all := app // the handler answers every method

	tok := srv.IssueToken("alice")
	wantUser(t, auth(app.a, withToken(tok)), "alice")
	body := evictBody(t, []string{tok}, nil)
	ts := now.Unix()
	tsS := strconv.FormatInt(ts, 10)
	sig := SignEvict([]byte(evictSecret), ts, body)
	sigAt := func(ts int64, b []byte) string { return SignEvict([]byte(evictSecret), ts, b) }
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
	wrongSecret := SignEvict([]byte("another-secret-of-enough-length-0123456789"), ts, body)

	cases := []struct {
		name   string
		req    *http.Request
		app    *evictApp
		status int
		code   string
	}{
		{"GET", httptest.NewRequest(http.MethodGet, evictPath, http.NoBody), all, 405, "method_not_allowed"},
		{"PUT", func() *http.Request { r := signedAt(body, ts); r.Method = http.MethodPut; return r }(), all, 405, "method_not_allowed"},
		{"no content type", withCT(""), app, 415, "unsupported_media_type"},
		{"text/plain", withCT("text/plain"), app, 415, "unsupported_media_type"},
		{"form", withCT("application/x-www-form-urlencoded"), app, 415, "unsupported_media_type"},
		{"oversized body", evictReq(big, HeaderEvictTimestamp, tsS, HeaderEvictSignature, sigAt(ts, big)), app, 413, "body_too_large"},
		{"no headers", evictReq(body), app, 401, "unsigned"},
		{"no signature", evictReq(body, HeaderEvictTimestamp, tsS), app, 401, "unsigned"},
		{"no timestamp", evictReq(body, HeaderEvictSignature, sig), app, 401, "unsigned"},
		{"empty signature", evictReq(body, HeaderEvictTimestamp, tsS, HeaderEvictSignature, ""), app, 401, "unsigned"},
		{"timestamp in ms", evictReq(body, HeaderEvictTimestamp, tsS+"000", HeaderEvictSignature, sigAt(ts*1000, body)), app, 401, "bad_timestamp"},
		{"timestamp not a number", evictReq(body, HeaderEvictTimestamp, "yesterday", HeaderEvictSignature, sig), app, 401, "bad_timestamp"},
		{"timestamp with a sign", evictReq(body, HeaderEvictTimestamp, "+"+tsS, HeaderEvictSignature, sig), app, 401, "bad_timestamp"},
		{"timestamp negative", evictReq(body, HeaderEvictTimestamp, "-5", HeaderEvictSignature, sigAt(-5, body)), app, 401, "bad_timestamp"},
		{"timestamp fractional", evictReq(body, HeaderEvictTimestamp, tsS+".5", HeaderEvictSignature, sig), app, 401, "bad_timestamp"},
		{"stale past skew", signedAt(body, ts-31), app, 401, "stale"},
		{"future past skew", signedAt(body, ts+31), app, 401, "stale"},
		{"wrong signature", evictReq(body, HeaderEvictTimestamp, tsS, HeaderEvictSignature, "v1="+strings.Repeat("ab", 32)), app, 401, "bad_signature"},
		{"wrong secret", evictReq(body, HeaderEvictTimestamp, tsS, HeaderEvictSignature, wrongSecret), app, 401, "bad_signature"},
		{"signature over another body", evictReq(body, HeaderEvictTimestamp, tsS, HeaderEvictSignature, sigAt(ts, evictBody(t, []string{"other"}, nil))), app, 401, "bad_signature"},
		{"signature for another timestamp", evictReq(body, HeaderEvictTimestamp, tsS, HeaderEvictSignature, sigAt(ts-1, body)), app, 401, "bad_signature"},
		{"body changed after signing", evictReq(append(bytes.Clone(body), ' '), HeaderEvictTimestamp, tsS, HeaderEvictSignature, sig), app, 401, "bad_signature"},
		{"another scheme", evictReq(body, HeaderEvictTimestamp, tsS, HeaderEvictSignature, "v2="+sig[3:]), app, 401, "bad_signature"},
		{"bare hex", evictReq(body, HeaderEvictTimestamp, tsS, HeaderEvictSignature, sig[3:]), app, 401, "bad_signature"},
		{"short signature", evictReq(body, HeaderEvictTimestamp, tsS, HeaderEvictSignature, sig[:len(sig)-2]), app, 401, "bad_signature"},
		{"not hex", evictReq(body, HeaderEvictTimestamp, tsS, HeaderEvictSignature, "v1="+strings.Repeat("zz", 32)), app, 401, "bad_signature"},
		{"two signatures", evictReq(body, HeaderEvictTimestamp, tsS, HeaderEvictSignature, sig+","+sig), app, 401, "bad_signature"},
	}
	for _, tc := range cases {
		r := post(t, tc.app, tc.req)
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
	wantUser(t, auth(app.a, withToken(tok)), "alice")
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
		wantRefused(t, post(t, app, signedAt([]byte(b), ts)), http.StatusBadRequest, "bad_request")
		_ = name
	}

	// At the edge of the skew: accepted both ways. Then replays are refused,
	// even of a request whose eviction was accepted.
	early := evictBody(t, []string{"edge-early"}, nil)
	late := evictBody(t, []string{"edge-late"}, nil)
	wantEvicted(t, post(t, app, signedAt(early, ts-30)), 0)
	wantEvicted(t, post(t, app, signedAt(late, ts+30)), 0)
	wantRefused(t, post(t, app, signedAt(early, ts-30)), http.StatusUnauthorized, "replayed")
	wantRefused(t, post(t, app, signedAt(late, ts+30)), http.StatusUnauthorized, "replayed")
	wantEvicted(t, post(t, app, signedAt(body, ts)), 1)
	wantRefused(t, post(t, app, signedAt(body, ts)), http.StatusUnauthorized, "replayed")
	// The same body at another second is another request.
	wantEvicted(t, post(t, app, signedAt(body, ts+1)), 0)
	// A charset parameter is fine.
	r := signedAt(evictBody(t, []string{"x"}, nil), ts)
	r.Header.Set("Content-Type", "application/json; charset=utf-8")
	wantEvicted(t, post(t, app, r), 0)
}

// OldSecrets are accepted during a rotation; short secrets are refused at
// start, as a bad middleware config is.
func TestEvict_SecretRotationAndConfig(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := newCore(t, srv, Config{})
	old := []byte("the-previous-secret-0123456789abcdef")
	app := newEvictApp(t, EvictConfig{Secret: []byte("the-next-secret-0123456789abcdefgh"), OldSecrets: [][]byte{old}}, m)
	body := evictBody(t, []string{"k"}, nil)
	ts := time.Now().Unix()
	wantEvicted(t, post(t, app, evictReq(body,
		HeaderEvictTimestamp, strconv.FormatInt(ts, 10),
		HeaderEvictSignature, SignEvict(old, ts, body))), 0)
	wantRefused(t, post(t, app, signed(evictBody(t, []string{"k"}, nil))), http.StatusUnauthorized, "bad_signature")

	for name, cfg := range map[string]EvictConfig{
		"no secret":       {},
		"short secret":    {Secret: []byte("short")},
		"short old":       {Secret: []byte(evictSecret), OldSecrets: [][]byte{[]byte("short")}},
		"31-byte secret":  {Secret: bytes.Repeat([]byte("s"), 31)},
		"empty old entry": {Secret: []byte(evictSecret), OldSecrets: [][]byte{nil}},
	} {
		func() {
			if _, err := EvictHandler(cfg, m); err == nil || !strings.Contains(err.Error(), "32 bytes") {
				t.Errorf("%s: EvictHandler = %v", name, err)
			}
		}()
	}
}

// The replay set is bounded: with MaxReplays 2, a third signature pushes the
// first out, which may then be replayed (an eviction again, nothing more).
func TestEvict_ReplaySetBounded(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := newCore(t, srv, Config{})
	now := time.Now()
	app := newEvictApp(t, EvictConfig{MaxReplays: 2, Now: func() time.Time { return now }}, m)
	var reqs [3][]byte
	for i := range reqs {
		reqs[i] = evictBody(t, []string{"k" + strconv.Itoa(i)}, nil)
		wantEvicted(t, post(t, app, signedAt(reqs[i], now.Unix())), 0)
	}
	wantRefused(t, post(t, app, signedAt(reqs[2], now.Unix())), http.StatusUnauthorized, "replayed")
	wantRefused(t, post(t, app, signedAt(reqs[1], now.Unix())), http.StatusUnauthorized, "replayed")
	wantEvicted(t, post(t, app, signedAt(reqs[0], now.Unix())), 0) // forgotten
}

// A store that cannot delete makes the webhook answer 503, so that Django
// logs it; user_ids without a user index answer 501 after the session keys
// were evicted.
func TestEvict_StoreFailureAndNoIndex(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	mb := newCore(t, srv, Config{Storage: failingStorage{}})
	r := post(t, newEvictApp(t, EvictConfig{}, mb), signed(evictBody(t, []string{"k"}, nil)))
	wantRefused(t, r, http.StatusServiceUnavailable, "store_unavailable")
	if r.Header.Get("Retry-After") != "1" {
		t.Errorf("Retry-After = %q", r.Header.Get("Retry-After"))
	}

	m := newCore(t, srv, Config{})
	app := newEvictApp(t, EvictConfig{}, m)
	tok := srv.IssueToken("alice")
	wantUser(t, auth(app.a, withToken(tok)), "alice")
	wantRefused(t, post(t, app, signed(evictBody(t, []string{tok}, []string{"1"}))), http.StatusNotImplemented, "user_index_off")
	wantUser(t, auth(app.a, withToken(tok)), "alice")
	wantCalls(t, srv, 2) // the session key was evicted all the same
	if n, err := m.EvictUser(t.Context(), "1"); n != 0 || !errors.Is(err, cache.ErrNoUserIndex) {
		t.Errorf("EvictUser without an index = %d, %v", n, err)
	}
}

// failingStorage is a cache.Storage that always fails.
type failingStorage struct{}

var errFailing = errors.New("storage down")

func (failingStorage) Get(string) ([]byte, error)              { return nil, errFailing }
func (failingStorage) Set(string, []byte, time.Duration) error { return errFailing }
func (failingStorage) Delete(string) error                     { return errFailing }
func (failingStorage) Reset() error                            { return errFailing }
func (failingStorage) Close() error                            { return nil }

// EvictUser (in process) drops every session of one user, app tokens and
// cookies alike, and no other user's; so do user_ids sent to the webhook.
func TestEvict_UserInProcess(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := newCore(t, srv, Config{Sources: browserSources, UserIndex: true})
	app := newEvictApp(t, EvictConfig{}, m)
	a1, a2, ac := srv.IssueToken("alice"), srv.IssueToken("alice"), srv.IssueCookie("alice")
	b1 := srv.IssueToken("bob")
	wantUser(t, auth(app.a, withToken(a1)), "alice")
	wantUser(t, auth(app.a, withToken(a2)), "alice")
	wantUser(t, auth(app.a, withCookie("sessionid", ac)), "alice")
	wantUser(t, auth(app.a, withToken(b1)), "bob")
	wantCalls(t, srv, 4)

	srv.SetActive("alice", false)
	if n, err := m.EvictUser(t.Context(), "1"); n != 3 || err != nil {
		t.Fatalf("EvictUser = %d, %v; want 3", n, err)
	}
	wantError(t, auth(app.a, withToken(a1)), http.StatusUnauthorized, CodeNotAuthenticated)
	wantError(t, auth(app.a, withToken(a2)), http.StatusUnauthorized, CodeNotAuthenticated)
	wantError(t, auth(app.a, withCookie("sessionid", ac)), http.StatusUnauthorized, CodeNotAuthenticated)
	wantUser(t, auth(app.a, withToken(b1)), "bob")
	wantCalls(t, srv, 7)

	srv.SetActive("bob", false)
	wantEvicted(t, post(t, app, signed(evictBody(t, nil, []string{"2", "99"}))), 1)
	wantError(t, auth(app.a, withToken(b1)), http.StatusUnauthorized, CodeNotAuthenticated)
}

// --- The Django snippet and the Go side cannot drift. ---

// snippetVector was computed by the snippet's encode and sign (see
// fiberauth's Test_EvictSnippet_Python, which recomputes it whenever python3 is there).
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
func TestEvictSnippet_Vector(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(snippetPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`TIMESTAMP_HEADER = "` + HeaderEvictTimestamp + `"`,
		`SIGNATURE_HEADER = "` + HeaderEvictSignature + `"`,
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
			t.Errorf("%s no longer has %q: update the Go side and snippetVector (fiberauth's Test_EvictSnippet_Python recomputes it)", snippetPath, want)
		}
	}

	v := snippetVector
	if got := string(evictBodyNonce(t, v.nonce, v.sessionKeys, v.userIDs)); got != v.body {
		t.Errorf("Go encodes\n%s\nthe snippet\n%s", got, v.body)
	}
	if got := SignEvict([]byte(v.secret), v.timestamp, []byte(v.body)); got != v.signature {
		t.Errorf("SignEvict = %s, the snippet %s", got, v.signature)
	}
	srv := newAllauth(t)
	m := newCore(t, srv, Config{UserIndex: true})
	app := newEvictApp(t, EvictConfig{Now: func() time.Time { return time.Unix(v.timestamp+5, 0) }}, m)
	wantEvicted(t, post(t, app, evictReq([]byte(v.body),
		"X-Allauthgo-Timestamp", strconv.FormatInt(v.timestamp, 10),
		"X-Allauthgo-Signature", v.signature)), 0)
}

// A Django logout stops the token on every instance within a second: two
// instances share a Redis cache, the eviction goes to one of them, and the
// next request through either gets 410 (app token) or 401 (browser cookie).
func TestEvict_LogoutEverywhereRedis(t *testing.T) {
	t.Parallel()
	prefix := redisPrefix(t)
	st := newRedis(t, prefix)
	srv := newAllauth(t)
	cfg := Config{Storage: st, Prefix: prefix, CacheTTL: time.Minute, Sources: browserSources}
	ma := newCore(t, srv, cfg)
	mb := newCore(t, srv, cfg)
	a, b := newEvictApp(t, EvictConfig{}, ma), newEvictApp(t, EvictConfig{}, mb)
	waitSubscribed(t, ma, mb)

	tok, cookie := srv.IssueToken("alice"), srv.IssueCookie("bob")
	for _, app := range []*evictApp{a, b} {
		wantUser(t, auth(app.a, withToken(tok)), "alice")
		wantUser(t, auth(app.a, withCookie("sessionid", cookie)), "bob")
	}
	wantCalls(t, srv, 2)

	// Without an eviction the cache would keep serving both for a minute.
	srv.Logout(tok)
	srv.Logout(cookie)
	loggedOut := time.Now()
	wantUser(t, auth(b.a, withToken(tok)), "alice")
	wantUser(t, auth(b.a, withCookie("sessionid", cookie)), "bob")

	wantEvicted(t, post(t, a, signed(evictBody(t, []string{tok, cookie}, nil))), 2)
	waitHeard(t, mb, 1) // by Redis pub/sub
	for name, app := range map[string]*evictApp{"A": a, "B": b} {
		wantError(t, auth(app.a, withToken(tok)), http.StatusGone, CodeSessionGone)
		wantError(t, auth(app.a, withCookie("sessionid", cookie)), http.StatusUnauthorized, CodeNotAuthenticated)
		if d := time.Since(loggedOut); d >= time.Second {
			t.Errorf("instance %s refused the session %v after the logout", name, d)
		}
	}
	// One lookup per credential, shared by both instances (negative caching).
	wantCalls(t, srv, 4)
}

// With Redis the user index is shared: a user's sessions cached by two
// instances are dropped by one webhook call to one of them, and both
// refuse them within a second of the deactivation.
func TestEvict_UserRedis(t *testing.T) {
	t.Parallel()
	prefix := redisPrefix(t)
	st := newRedis(t, prefix)
	srv := newAllauth(t)
	cfg := Config{Storage: st, Prefix: prefix, CacheTTL: time.Minute, UserIndex: true}
	ma := newCore(t, srv, cfg)
	mb := newCore(t, srv, cfg)
	a, b := newEvictApp(t, EvictConfig{}, ma), newEvictApp(t, EvictConfig{}, mb)
	waitSubscribed(t, ma, mb)
	t1, t2, tb := srv.IssueToken("alice"), srv.IssueToken("alice"), srv.IssueToken("bob")
	wantUser(t, auth(a.a, withToken(t1)), "alice")
	wantUser(t, auth(b.a, withToken(t2)), "alice")
	wantUser(t, auth(b.a, withToken(tb)), "bob")
	wantUser(t, auth(a.a, withToken(t2)), "alice") // a hit
	wantCalls(t, srv, 3)

	srv.SetActive("alice", false)
	deactivated := time.Now()
	wantEvicted(t, post(t, b, signed(evictBody(t, nil, []string{"1"}))), 2)
	waitHeard(t, ma, 1) // by Redis pub/sub
	for _, app := range []*evictApp{a, b} {
		wantError(t, auth(app.a, withToken(t1)), http.StatusUnauthorized, CodeNotAuthenticated)
		wantError(t, auth(app.a, withToken(t2)), http.StatusUnauthorized, CodeNotAuthenticated)
		wantUser(t, auth(app.a, withToken(tb)), "bob")
	}
	if d := time.Since(deactivated); d >= time.Second {
		t.Errorf("took %v", d)
	}
	wantCalls(t, srv, 5)

	// Go code can do the same.
	wantUser(t, auth(a.a, withToken(tb)), "bob")
	if n, err := ma.EvictUser(t.Context(), "2"); n != 1 || err != nil {
		t.Errorf("EvictUser = %d, %v", n, err)
	}
	waitHeard(t, mb, 1)
	wantUser(t, auth(b.a, withToken(tb)), "bob")
	wantCalls(t, srv, 6)
}
