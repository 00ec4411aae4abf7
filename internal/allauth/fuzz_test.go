package allauth_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode"

	"github.com/allauthgo/headless/internal/allauth"

	"github.com/allauthgo/headless/introspect"
)

// fuzzStatuses are the HTTP statuses FuzzDecode picks from.
var fuzzStatuses = []int{200, 401, 410, 429, 500, 502, 503, 504, 400, 403, 404, 409, 431, 302, 204, 201, 0}

func statusIndex(status int) uint8 {
	for i, s := range fuzzStatuses {
		if s == status {
			return uint8(i)
		}
	}
	panic(fmt.Sprintf("status %d not in fuzzStatuses", status))
}

// FuzzDecode checks the decoding of allauth's answer: it never panics, and it
// gives a Session only for a 200 whose body says status 200,
// meta.is_authenticated true and a valid data.user.id (short, no control
// characters or surrounding spaces), by their exact names.
func FuzzDecode(f *testing.F) {
	for _, r := range recordedBodies {
		f.Add(statusIndex(r.status), []byte(r.body))
		// The same body under another status, e.g. a 200 body on a 401.
		f.Add(statusIndex(401), []byte(r.body))
	}
	for _, seed := range []string{
		session200(`{"id": "3f1c2b8e-6a52-4c8e-9a8e-2f8d6b1e4c71"}`),
		session200(`{"id": 12345678901234567890123}`),
		session200(`{"id": ""}`),
		session200(`{"id": null}`),
		session200(`{"id": 1.5}`),
		session200(`{"id": -1}`),
		session200(`{"id": "1", "id": ""}`),
		session200(`{"id": 1, "id": 2}`),
		session200(`{"id": 1, "ID": 2}`),
		session200(`{"id": 1, "i\u0064": 2}`),
		session200(`{"id": -0}`),
		session200(`{"id": 9223372036854775808}`),
		session200(`{"id": " 1"}`),
		session200(`{"id": "` + strings.Repeat("x", 65) + `"}`),
		`{"Status": 200, "DATA": {"User": {"ID": 7}}, "Meta": {"Is_Authenticated": true}}`,
		`{"status": 200, "data": {"user": {"id": 1}}, "meta": {"is_authenticated": true}, "meta": {}}`,
		`{"STATUS": 200, "Data": {"User": {"ID": 1}}, "META": {"Is_Authenticated": true}}`,
		recAlice200[:100],
		``, `null`, `[]`, `{}`, `"x"`,
	} {
		f.Add(statusIndex(200), []byte(seed))
	}

	f.Fuzz(func(t *testing.T, idx uint8, body []byte) {
		status := fuzzStatuses[int(idx)%len(fuzzStatuses)]
		s, err := allauth.DecodeAnswer(status, body)
		if (s == nil) == (err == nil) {
			t.Fatalf("status %d: Session %v and error %v", status, s, err)
		}
		said := readBody(body)

		if err != nil {
			var ae *introspect.AuthError
			var ue *introspect.UpstreamError
			switch {
			case errors.As(err, &ae):
				if ae.Status != status || allauth.IsLocal(ae) || (status != 401 && status != 410) {
					t.Fatalf("status %d: AuthError %+v", status, ae)
				}
				if said.canonical && said.status != fmt.Sprint(status) {
					t.Fatalf("AuthError %d for a body saying status %q: %q", status, said.status, body)
				}
				if errors.Is(err, introspect.ErrSessionGone) != (status == 410) ||
					errors.Is(err, introspect.ErrUnauthenticated) != (status == 401) {
					t.Fatalf("AuthError %d matches the wrong sentinel", status)
				}
			case errors.As(err, &ue):
				if ue.Status != status {
					t.Fatalf("UpstreamError.Status = %d for HTTP %d", ue.Status, status)
				}
				if errors.Is(err, introspect.ErrSessionGone) || errors.Is(err, introspect.ErrUnauthenticated) {
					t.Fatalf("UpstreamError matches a sentinel: %v", err)
				}
			default:
				t.Fatalf("error %v (%T) is neither AuthError nor UpstreamError", err, err)
			}
			return
		}

		// A Session.
		if status != http.StatusOK {
			t.Fatalf("Session for HTTP %d: %q", status, body)
		}
		if id := s.User.ID; id == "" || len(id) > 64 || strings.TrimSpace(id) != id || strings.ContainsFunc(id, unicode.IsControl) {
			t.Fatalf("Session with user id %q: %q", id, body)
		}
		var user map[string]any
		if err := json.Unmarshal(s.User.Raw, &user); err != nil {
			t.Fatalf("User.Raw %q is not a JSON object: %v", s.User.Raw, err)
		}
		for _, m := range s.Methods {
			if !json.Valid(m.Raw) {
				t.Fatalf("Method.Raw %q is not JSON", m.Raw)
			}
		}
		if said.canonical {
			if said.status != "200" || !said.authenticated || said.id == "" {
				t.Fatalf("Session for a body saying status %q, is_authenticated %v, id %q: %q",
					said.status, said.authenticated, said.id, body)
			}
			if s.User.ID != said.id {
				t.Fatalf("User.ID = %q, body says %q: %q", s.User.ID, said.id, body)
			}
		}
	})
}

// bodySays is what a body says, read independently of the package's decoder,
// by exact member names.
type bodySays struct {
	// canonical is true for a single JSON value without duplicate object
	// keys (compared ignoring case, as encoding/json matches field names);
	// only for such a body are the other fields unambiguous.
	canonical     bool
	status        string // the JSON number literal of "status", or ""
	authenticated bool   // meta.is_authenticated is true
	id            string // a non-empty string id, or an integer literal id
}

func readBody(body []byte) bodySays {
	if !json.Valid(body) || !uniqueKeys(body) {
		return bodySays{}
	}
	var top any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&top); err != nil {
		return bodySays{}
	}
	says := bodySays{canonical: true}
	if n, ok := field(top, "status").(json.Number); ok {
		says.status = n.String()
	}
	says.authenticated, _ = field(field(top, "meta"), "is_authenticated").(bool)
	switch id := field(field(field(top, "data"), "user"), "id").(type) {
	case string:
		says.id = id
	case json.Number:
		lit := strings.TrimPrefix(id.String(), "-")
		if lit != "" && strings.Trim(lit, "0123456789") == "" {
			says.id = id.String()
		}
	}
	return says
}

// field returns the member of object v named exactly key, or nil.
func field(v any, key string) any {
	obj, _ := v.(map[string]any)
	return obj[key]
}

// uniqueKeys reports whether no JSON object in body has two keys that are
// equal ignoring case. body must be valid JSON.
func uniqueKeys(body []byte) bool {
	type frame struct {
		object    bool
		expectKey bool
		keys      []string
	}
	var stack []*frame
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return true
		}
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			continue
		}
		if top != nil && top.object {
			if top.expectKey {
				key, _ := tok.(string)
				for _, k := range top.keys {
					if strings.EqualFold(k, key) {
						return false
					}
				}
				top.keys = append(top.keys, key)
				top.expectKey = false
				continue
			}
			top.expectKey = true // this token is the value
		}
		if d, ok := tok.(json.Delim); ok {
			stack = append(stack, &frame{object: d == '{', expectKey: d == '{'})
		}
	}
}

// FuzzCheckCredential checks the credential check: it never panics, accepts
// only non-empty visible ASCII within the limit (minus each kind's extra
// exclusions), answers as allauth would otherwise, and the credential's
// printed forms never show the token.
func FuzzCheckCredential(f *testing.F) {
	for _, seed := range []struct {
		kind   uint8
		token  string
		maxLen int
	}{
		{1, aliceToken, 0},
		{2, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", 0},
		{3, "888ovua0navcm91tw67i0etmb1k8a7jp", 0},
		{1, "", 0},
		{2, " \t ", 0},
		{3, " " + aliceToken + "\t", 0},
		{1, strings.Repeat("a", 4097), 0},
		{1, strings.Repeat("a", 33), 32},
		{3, "abc;sessionid=evil", 0},
		{2, "abc,def", 0},
		{1, "abc\x00def", 0},
		{1, "abc\r\nX-Evil: 1", 0},
		{1, "abc\x7f", 0},
		{1, "\xff\xfe", 0},
		{1, "abcü€", 0},
		{0, "token-of-unknown-kind", 0},
		{7, `a"b\c`, -5},
	} {
		f.Add(seed.kind, seed.token, seed.maxLen)
	}
	f.Fuzz(func(t *testing.T, kindByte uint8, token string, maxLen int) {
		kind := introspect.Kind(kindByte % 5)
		cred := allauth.Credential{Kind: kind, Token: token}
		err := allauth.CheckCredential(cred, maxLen)

		limit := maxLen
		if limit <= 0 {
			limit = allauth.DefaultMaxCredentialBytes
		}
		trimmed := strings.Trim(token, " \t")
		if trimmed != "" {
			wf, wfBytes := allauth.WellFormed(kind, trimmed, limit), allauth.WellFormed(kind, []byte(trimmed), limit)
			if wf != (err == nil) || wfBytes != wf {
				t.Fatalf("WellFormed = %v (bytes %v), CheckCredential = %v", wf, wfBytes, err)
			}
		}
		if err == nil {
			if trimmed == "" || len(trimmed) > limit {
				t.Fatalf("accepted %q (%d bytes, limit %d)", token, len(trimmed), limit)
			}
			for i := 0; i < len(trimmed); i++ {
				b := trimmed[i]
				if b < 0x21 || b > 0x7e {
					t.Fatalf("accepted %q with byte %#x", token, b)
				}
				if kind == introspect.Cookie && strings.IndexByte(`";,\`, b) >= 0 {
					t.Fatalf("accepted cookie %q with %q", token, b)
				}
				if kind == introspect.Bearer && !isB64Token(b) {
					t.Fatalf("accepted bearer %q with %q", token, b)
				}
			}
		} else {
			var ae *introspect.AuthError
			if !errors.As(err, &ae) || !allauth.IsLocal(ae) || len(ae.Flows) != 0 {
				t.Fatalf("error %v (%T) is not a local AuthError", err, err)
			}
			switch {
			case trimmed == "":
				if ae.Status != http.StatusUnauthorized {
					t.Fatalf("empty token: status %d, want 401", ae.Status)
				}
			case kind == introspect.SessionToken:
				if ae.Status != http.StatusGone {
					t.Fatalf("malformed session token: status %d, want 410", ae.Status)
				}
			default:
				if ae.Status != http.StatusUnauthorized {
					t.Fatalf("malformed %v: status %d, want 401", kind, ae.Status)
				}
			}
			if len(trimmed) >= 4 && strings.Contains(err.Error(), trimmed) {
				t.Fatalf("error %q shows the token", err)
			}
		}

		// The printed forms do not depend on the token at all.
		blank := allauth.Credential{Kind: kind}
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%10.3v"} {
			got, want := fmt.Sprintf(verb, cred), fmt.Sprintf(verb, blank)
			if got != want {
				t.Fatalf("%s of a credential prints %q, want %q whatever the token", verb, got, want)
			}
			if got, want := fmt.Sprintf(verb, []*allauth.Credential{&cred}), fmt.Sprintf(verb, []*allauth.Credential{&blank}); got != want {
				t.Fatalf("%s of []*Credential prints %q, want %q", verb, got, want)
			}
		}
		if cred.LogValue().String() != blank.LogValue().String() {
			t.Fatalf("LogValue %q depends on the token", cred.LogValue())
		}
	})
}

func isB64Token(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || strings.IndexByte("-._~+/=", b) >= 0
}
