package httpauth_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/httpauth"
	"github.com/allauthgo/headless/internal/cache"
	"github.com/allauthgo/headless/introspect"
	"github.com/allauthgo/headless/introspect/allauthtest"
)

// An unknown but well-formed session token: allauth's 410.
const unknownToken = "0123456789abcdefghijklmnopqrstuv"

// The contract for app session tokens: bodies byte for byte, headers, and
// how often allauth is asked.
func TestContract_SessionToken(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	h := newMiddleware(t, srv, httpauth.Config{}).Handler(whoHandler)

	r := do(h, get())
	wantError(t, r, http.StatusUnauthorized, headless.CodeNotAuthenticated)
	if r.Body != `{"status": 401, "errors": [{"code": "not_authenticated", "message": "No credential was provided."}]}` {
		t.Errorf("body = %s", r.Body)
	}
	if h := r.Header.Get("WWW-Authenticate"); h != "" {
		t.Errorf("WWW-Authenticate = %q without an Authorization source", h)
	}
	wantCalls(t, srv, 0)

	tok := srv.IssueToken("alice")
	wantUser(t, do(h, withToken(tok)), "alice")
	wantUser(t, do(h, withToken(" "+tok+"\t")), "alice") // blanks around the value, as HTTP allows
	wantCalls(t, srv, 1)

	r = do(h, withToken(unknownToken))
	wantError(t, r, http.StatusGone, headless.CodeSessionGone)
	if r.Body != `{"status": 410, "errors": [{"code": "session_gone", "message": "The session is gone; log in again."}]}` {
		t.Errorf("body = %s", r.Body)
	}
	wantError(t, do(h, withToken(unknownToken)), http.StatusGone, headless.CodeSessionGone) // negative cache
	wantCalls(t, srv, 2)

	for _, blank := range []string{"", " ", "\t"} {
		wantError(t, do(h, withToken(blank)), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	}
	wantCalls(t, srv, 2)
}

// Bearer tokens: 401s carry WWW-Authenticate (RFC 6750).
func TestContract_Bearer(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	h := newMiddleware(t, srv, httpauth.Config{
		Sources: []headless.Source{headless.FromHeader(headless.HeaderSessionToken), headless.FromAuthHeader("")},
	}).Handler(whoHandler)

	r := do(h, get())
	wantError(t, r, http.StatusUnauthorized, headless.CodeNotAuthenticated)
	if got := r.Header.Get("WWW-Authenticate"); got != "Bearer" {
		t.Errorf("WWW-Authenticate = %q, want Bearer", got)
	}
	// The stand-in without WithJWT ignores Bearer tokens: allauth's 401.
	r = do(h, get("Authorization", "Bearer "+unknownToken))
	wantError(t, r, http.StatusUnauthorized, headless.CodeNotAuthenticated)
	if got := r.Header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
		t.Errorf("WWW-Authenticate = %q", got)
	}
	wantCalls(t, srv, 1)
	// Another scheme is no credential; the session token still works.
	wantUser(t, do(h, get("Authorization", "Basic YTpi", headless.HeaderSessionToken, srv.IssueToken("bob"))), "bob")
}

// Browser cookies: allauth's browser endpoint never says 410, and the last
// cookie of the name wins, across Cookie header lines too.
func TestContract_Cookie(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	h := newMiddleware(t, srv, httpauth.Config{Sources: []headless.Source{headless.FromCookie("sessionid")}}).Handler(whoHandler)
	alice, bob := srv.IssueCookie("alice"), srv.IssueCookie("bob")

	wantUser(t, do(h, get("Cookie", "csrftoken=x; sessionid="+alice)), "alice")
	wantUser(t, do(h, get("Cookie", "sessionid="+alice+"; sessionid="+bob)), "bob")
	wantUser(t, do(h, get("Cookie", "sessionid="+bob, "Cookie", "a=b; sessionid="+alice)), "alice")
	wantUser(t, do(h, get("Cookie", `sessionid="`+bob+`"`)), "bob")
	wantError(t, do(h, get("Cookie", "sessionid="+alice+"; sessionid="+unknownToken)), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	wantError(t, do(h, get("Cookie", "other="+alice)), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	wantError(t, do(h, get(headless.HeaderSessionToken, alice)), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	wantCalls(t, srv, 3)
}

// allauth failing is a 503 with Retry-After, never a 401 or 410.
func TestContract_Unavailable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault allauthtest.Fault
		retry string
	}{
		{"429 with Retry-After", allauthtest.Fault{Status: 429, RetryAfter: "7"}, "7"},
		{"502", allauthtest.Fault{Status: 502}, "1"},
		{"absurd Retry-After", allauthtest.Fault{Status: 503, RetryAfter: "2147483647"}, "300"},
		{"HTML", allauthtest.Fault{Status: 200, Body: "<html></html>", ContentType: "text/html"}, "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newAllauth(t)
			h := newMiddleware(t, srv, httpauth.Config{Breaker: introspect.BreakerConfig{Disabled: true}}).Handler(whoHandler)
			tok := srv.IssueToken("alice")
			srv.SetFault(tc.fault)
			r := do(h, withToken(tok))
			wantError(t, r, http.StatusServiceUnavailable, headless.CodeUpstreamUnavailable)
			if got := r.Header.Get("Retry-After"); got != tc.retry {
				t.Errorf("Retry-After = %q, want %q", got, tc.retry)
			}
			srv.SetFault(allauthtest.Fault{})
			wantUser(t, do(h, withToken(tok)), "alice") // nothing was cached
		})
	}
}

// net/http hands the middleware bytes a real server (or Fiber) would refuse
// before it: they are answered as allauth answers them, without asking it.
func TestMalformedCredentials(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := newMiddleware(t, srv, httpauth.Config{})
	h := m.Handler(whoHandler)
	tok := srv.IssueToken("alice")
	for name, req := range map[string]*http.Request{
		"NUL":             withToken("\x00" + tok[1:]),
		"DEL":             withToken(tok[:31] + "\x7f"),
		"newline":         withToken(tok[:16] + "\n" + tok[16:]),
		"inner space":     withToken(tok[:16] + " " + tok[16:]),
		"high bytes":      withToken(strings.Repeat("\xff", 32)),
		"not UTF-8 tail":  withToken(tok + "\xc3"),
		"too long":        withToken(strings.Repeat("a", 64<<10)),
		"two headers":     get(headless.HeaderSessionToken, tok, headless.HeaderSessionToken, tok),
		"control in mid":  withToken(tok[:10] + "\x01" + tok[11:]),
		"vertical tab":    withToken("\v" + tok),
		"form feed tail":  withToken(tok + "\f"),
		"zero-width char": withToken(tok + "\u200b"),
	} {
		r := do(h, req)
		if r.Status != http.StatusGone || r.Body != `{"status": 410, "errors": [{"code": "session_gone", "message": "The session is gone; log in again."}]}` {
			t.Errorf("%s: %d %s, want allauth's 410", name, r.Status, r.Body)
		}
	}
	// Bearer and cookie credentials that cannot be valid are allauth's 401.
	hb := newMiddleware(t, srv, httpauth.Config{Sources: []headless.Source{headless.FromAuthHeader(""), headless.FromCookie("sessionid")}}).Handler(whoHandler)
	for name, req := range map[string]*http.Request{
		"Bearer NUL":            get("Authorization", "Bearer a\x00b"),
		"two Authorization":     get("Authorization", "Bearer "+tok, "Authorization", "Bearer "+tok),
		"Bearer too long":       get("Authorization", "Bearer "+strings.Repeat("a", 64<<10)),
		"cookie control byte":   get("Cookie", "sessionid="+tok[:5]+"\x01"+tok[6:]),
		"cookie escaped quotes": get("Cookie", `sessionid="`+tok[:5]+`\"`+tok[6:]+`"`),
	} {
		if r := do(hb, req); r.Status != http.StatusUnauthorized {
			t.Errorf("%s: %d %s, want allauth's 401", name, r.Status, r.Body)
		}
	}
	wantCalls(t, srv, 0)
	if s := m.Metrics().Cache; s.Fetches != 0 {
		t.Errorf("stats %+v: a malformed credential reached the cache's loader", s)
	}
	// Odd but visible ASCII could be a session key: allauth is asked, and
	// says 410.
	for _, v := range []string{strings.ToUpper(tok), tok + "," + tok, "../" + tok, `"` + tok + `"`} {
		wantError(t, do(h, withToken(v)), http.StatusGone, headless.CodeSessionGone)
	}
	wantCalls(t, srv, 4)
}

// Next skips the middleware: no user, no refusal, no lookup.
func TestNext(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	h := newMiddleware(t, srv, httpauth.Config{
		Next: func(r *http.Request) bool { return r.URL.Path == "/healthz" },
	}).Handler(whoHandler)
	r := do(h, getPath("/healthz", unknownToken))
	if r.Status != http.StatusOK || r.Body != anonymous {
		t.Fatalf("/healthz: %d %q", r.Status, r.Body)
	}
	wantError(t, do(h, getPath("/api", unknownToken)), http.StatusGone, headless.CodeSessionGone)
	wantCalls(t, srv, 1)
}

// getPath is GET path with an X-Session-Token.
func getPath(path, token string) *http.Request {
	req := get(headless.HeaderSessionToken, token)
	req.URL.Path = path
	return req
}

// Optional: anonymous without a credential, a refused credential still
// fails; Config.Optional makes New (and Handler) optional.
func TestOptional(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := newMiddleware(t, srv, httpauth.Config{})
	tok := srv.IssueToken("alice")
	for name, h := range map[string]http.Handler{
		"Middleware.Optional": m.Optional(whoHandler),
		"Config.Optional":     newMiddleware(t, srv, httpauth.Config{Optional: true}).Handler(whoHandler),
	} {
		r := do(h, get())
		if r.Status != http.StatusOK || r.Body != anonymous {
			t.Errorf("%s, no credential: %d %q", name, r.Status, r.Body)
		}
		wantError(t, do(h, withToken(unknownToken)), http.StatusGone, headless.CodeSessionGone)
		wantUser(t, do(h, withToken(tok)), "alice")
	}
	// Handler and Optional of one Middleware share its cache.
	wantUser(t, do(m.Handler(whoHandler), withToken(tok)), "alice")
	if s := m.Metrics().Cache; s.Fetches != 2 {
		t.Errorf("m asked allauth %d times, want 2 (one per token)", s.Fetches)
	}
}

// A custom ErrorHandler gets the *headless.Error and answers alone.
func TestErrorHandler(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	var got *headless.Error
	h := newMiddleware(t, srv, httpauth.Config{
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			if !errors.As(err, &got) {
				t.Errorf("ErrorHandler got %T, want *headless.Error", err)
			}
			w.WriteHeader(http.StatusTeapot)
		},
	}).Handler(whoHandler)
	r := do(h, withToken(unknownToken))
	if r.Status != http.StatusTeapot || r.Body != "" {
		t.Fatalf("got %d %q, want the handler's 418", r.Status, r.Body)
	}
	if got == nil || got.Status != http.StatusGone || got.Code != headless.CodeSessionGone {
		t.Fatalf("ErrorHandler got %+v", got)
	}
}

// DefaultErrorHandler renders what the Fiber doors render, byte for byte,
// and hides the text of an error that is not a *headless.Error.
func TestDefaultErrorHandler(t *testing.T) {
	t.Parallel()
	e := &headless.Error{Status: http.StatusServiceUnavailable, Code: headless.CodeUpstreamUnavailable, Message: "m", RetryAfter: 3 * time.Second}
	r := do(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpauth.DefaultErrorHandler(w, r, fmt.Errorf("wrapped: %w", e))
	}), get())
	if r.Status != 503 || r.Body != string(e.Body()) || r.Header.Get("Retry-After") != "3" || r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("got %d %v %q", r.Status, r.Header, r.Body)
	}
	r = do(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpauth.DefaultErrorHandler(w, r, errors.New("secret internal detail"))
	}), get())
	if r.Status != 500 || strings.Contains(r.Body, "secret") || !strings.Contains(r.Body, "internal_error") {
		t.Errorf("got %d %q", r.Status, r.Body)
	}
}

// The session is in the handler's context, where UserFrom, SessionFrom and
// headless's own accessors find it, also from contexts derived from it.
func TestUserFrom(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	var checked bool
	h := newMiddleware(t, srv, httpauth.Config{}).Handler(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		u, s := httpauth.UserFrom(ctx), httpauth.SessionFrom(ctx)
		if u == nil || s == nil || u != &s.User || u.Username != "bob" || u.ID != "2" {
			t.Fatalf("UserFrom = %+v, SessionFrom = %+v", u, s)
		}
		type key struct{}
		derived, cancel := context.WithCancel(context.WithValue(ctx, key{}, 1))
		defer cancel()
		for name, got := range map[string]any{
			"UserFrom(derived)":                  httpauth.UserFrom(derived),
			"headless.UserFromContext(ctx)":      headless.UserFromContext(ctx),
			"headless.UserFromContext(derived)":  headless.UserFromContext(derived),
			"SessionFrom(derived).User":          &httpauth.SessionFrom(derived).User,
			"headless.SessionFromContext().User": &headless.SessionFromContext(derived).User,
		} {
			if got != u {
				t.Errorf("%s = %v, want %p", name, got, u)
			}
		}
		if derived.Value(key{}) != 1 {
			t.Error("the request's context lost a value")
		}
		if r.Context().Done() != nil {
			// httptest.NewRequest's context is Background: nothing to cancel.
			t.Error("Done changed")
		}
		checked = true
	}))
	do(h, withToken(srv.IssueToken("bob")))
	if !checked {
		t.Fatal("the handler did not run")
	}
	if httpauth.UserFrom(context.Background()) != nil || httpauth.SessionFrom(context.Background()) != nil {
		t.Error("a context without a session has a user")
	}
}

// The request's context goes on: its values, its cancellation.
func TestContextKeepsParent(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	type key struct{}
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	var done <-chan struct{}
	h := newMiddleware(t, srv, httpauth.Config{}).Handler(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		if r.Context().Value(key{}) != "v" {
			t.Error("value lost")
		}
		done = r.Context().Done()
	}))
	do(h, withToken(srv.IssueToken("alice")).WithContext(ctx))
	cancel()
	select {
	case <-done:
	default:
		t.Fatal("cancelling the request's context did not reach the handler's")
	}
}

// A plain http.ServeMux with Go 1.22 patterns, routes protected one by one
// and the whole mux wrapped (the chi-style r.Use shape).
func TestServeMux(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := newMiddleware(t, srv, httpauth.Config{})
	mux := http.NewServeMux()
	mux.Handle("GET /api/me", m.Handler(whoHandler))
	mux.Handle("GET /api/public", m.Optional(whoHandler))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	tok := srv.IssueToken("alice")
	req := func(path, token string) *http.Request {
		r := get()
		r.URL.Path = path
		if token != "" {
			r.Header.Set(headless.HeaderSessionToken, token)
		}
		return r
	}
	wantUser(t, do(mux, req("/api/me", tok)), "alice")
	wantError(t, do(mux, req("/api/me", "")), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	wantUser(t, do(mux, req("/api/public", "")), anonymous)
	wantUser(t, do(mux, req("/healthz", "")), "ok")

	use := func(mw func(http.Handler) http.Handler) http.Handler { return mw(mux) } // chi's r.Use
	all := use(m.Handler)
	wantUser(t, do(all, req("/api/public", tok)), "alice")
	wantError(t, do(all, req("/healthz", "")), http.StatusUnauthorized, headless.CodeNotAuthenticated)
	wantCalls(t, srv, 1)
}

// Evict makes the next request ask allauth: a logout elsewhere is seen at
// once.
func TestEvict(t *testing.T) {
	t.Parallel()
	srv := newAllauth(t)
	m := newMiddleware(t, srv, httpauth.Config{CacheTTL: time.Hour})
	h := m.Handler(whoHandler)
	tok := srv.IssueToken("alice")
	wantUser(t, do(h, withToken(tok)), "alice")
	srv.Logout(tok)
	wantUser(t, do(h, withToken(tok)), "alice") // cached
	if err := m.Evict(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	wantError(t, do(h, withToken(tok)), http.StatusGone, headless.CodeSessionGone)
	wantCalls(t, srv, 2)
}

// New panics and NewMiddleware returns the error, under this package's
// name, for a config that cannot work.
func TestBadConfig(t *testing.T) {
	t.Parallel()
	const base = "http://127.0.0.1:8000"
	for _, tc := range []struct {
		name string
		cfg  httpauth.Config
		want string
	}{
		{"no BaseURL", httpauth.Config{}, "BaseURL"},
		{"ftp BaseURL", httpauth.Config{BaseURL: "ftp://x"}, "http or https"},
		{"two cookies", httpauth.Config{BaseURL: base, Sources: []headless.Source{headless.FromCookie("a"), headless.FromCookie("b")}}, "2 cookies"},
		{"nameless source", httpauth.Config{BaseURL: base, Sources: []headless.Source{headless.FromHeader(" ")}}, "no header or cookie name"},
		{"JWT without Bearer", httpauth.Config{BaseURL: base, JWT: &introspect.JWTConfig{}}, "Authorization"},
	} {
		m, err := httpauth.NewMiddleware(tc.cfg)
		if m != nil || err == nil || !strings.HasPrefix(err.Error(), "httpauth: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: NewMiddleware = %v, %v", tc.name, m, err)
		}
		func() {
			defer func() {
				if p := recover(); p == nil || fmt.Sprint(p) != err.Error() {
					t.Errorf("%s: New panicked with %v, want %q", tc.name, p, err)
				}
			}()
			httpauth.New(tc.cfg)
		}()
	}
}

// Every field of headless.Config (but Sources) is in httpauth.Config under
// the same name and converts: a Config with every field set keeps every
// value.
func TestConfig_EveryFieldConverts(t *testing.T) {
	t.Parallel()
	var cfg httpauth.Config
	v := reflect.ValueOf(&cfg).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString("x" + v.Type().Field(i).Name)
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(i + 1))
		case reflect.Pointer:
			f.Set(reflect.New(f.Type().Elem()))
		case reflect.Slice:
			f.Set(reflect.MakeSlice(f.Type(), 1, 1))
		case reflect.Func:
			f.Set(reflect.MakeFunc(f.Type(), func([]reflect.Value) []reflect.Value { return nil }))
		case reflect.Interface:
			if f.Type() == reflect.TypeFor[trace.TracerProvider]() {
				f.Set(reflect.ValueOf(trace.TracerProvider(noop.NewTracerProvider())))
				break
			}
			f.Set(reflect.ValueOf(cache.Storage(nopStorage{})))
		case reflect.Struct:
			f.Set(reflect.ValueOf(introspect.BreakerConfig{Disabled: true, Failures: 9, CoolDown: time.Minute}))
		default:
			t.Fatalf("field %s: set it in this test", v.Type().Field(i).Name)
		}
		if f.IsZero() {
			t.Fatalf("field %s is still zero", v.Type().Field(i).Name)
		}
	}
	core := httpauth.Core(cfg)
	cv := reflect.ValueOf(core)
	for i := range cv.NumField() {
		name := cv.Type().Field(i).Name
		if name == "Sources" || !cv.Type().Field(i).IsExported() {
			continue
		}
		if got, want := cv.Field(i).Interface(), v.FieldByName(name).Interface(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: core has %v, want %v", name, got, want)
		}
	}
}

type nopStorage struct{}

func (nopStorage) Get(string) ([]byte, error)              { return nil, nil }
func (nopStorage) Set(string, []byte, time.Duration) error { return nil }
func (nopStorage) Delete(string) error                     { return nil }
func (nopStorage) Reset() error                            { return nil }
func (nopStorage) Close() error                            { return nil }
