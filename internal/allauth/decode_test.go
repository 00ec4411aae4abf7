package allauth_test

import (
	"encoding/json"
	"testing"

	"github.com/allauthgo/headless/internal/allauth"

	"github.com/allauthgo/headless/introspect"
)

// BenchmarkDecodeAnswer decodes allauth's recorded 200 and 410 answers: the
// work of every cache miss.
func BenchmarkDecodeAnswer(b *testing.B) {
	for _, bc := range []struct {
		name   string
		status int
		body   string
	}{{"200", 200, recAlice200}, {"410", 410, rec410}} {
		body := []byte(bc.body)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				s, err := allauth.DecodeAnswer(bc.status, body)
				if (bc.status == 200) != (s != nil) || (bc.status == 200) != (err == nil) {
					b.Fatal(s, err)
				}
			}
		})
	}
}

// A Session read back from a shared cache gets the same strict reading as
// allauth's answer: exact names, no identity field twice, a valid id.
func TestSessionUnmarshalJSONStrict(t *testing.T) {
	t.Parallel()
	var s introspect.Session
	if err := json.Unmarshal([]byte(`{"user": {"id": 7, "username": "u", "Username": "x"}, "methods": []}`), &s); err == nil {
		t.Errorf("username twice (in another case): user %+v", s.User)
	}
	for _, in := range []string{
		`{"User": {"id": 7}}`,
		`{"user": {"ID": 7}}`,
		`{"user": {"id": 1, "id": 2}}`,
		`{"user": {"id": 2}, "user": {"id": 1}}`,
		`{"user": {"id": 2}, "USER": {"id": 1}}`,
		`{"user": {"id": ""}}`,
		`{"user": {"id": -0}}`,
		`{"user": {"id": "a\u0000"}}`,
		`{"user": {"id": 1}, "methods": {}}`,
		`[]`, `null`, `{`,
	} {
		var s introspect.Session
		if err := json.Unmarshal([]byte(in), &s); err == nil {
			t.Errorf("%s: accepted as user %q", in, s.User.ID)
		}
		if err := s.UnmarshalJSON([]byte(in)); err == nil {
			t.Errorf("%s: UnmarshalJSON accepted it as user %q", in, s.User.ID)
		}
	}
	// What MarshalJSON writes reads back, and the Session keeps no part of
	// the caller's buffer.
	in := []byte(`{"user": {"id": "3f1c2b8e", "email": "e@example.com", "has_usable_password": true}, "methods": [{"method": "password", "at": 1795711583.5}]}`)
	var back introspect.Session
	if err := json.Unmarshal(in, &back); err != nil {
		t.Fatal(err)
	}
	clear(in)
	out, err := json.Marshal(&back)
	if err != nil || back.User.ID != "3f1c2b8e" || back.User.Email != "e@example.com" || !back.User.HasUsablePassword ||
		len(back.Methods) != 1 || back.Methods[0].Method != "password" {
		t.Fatalf("read back %+v, %v", back, err)
	}
	var again introspect.Session
	if err := json.Unmarshal(out, &again); err != nil || again.User.ID != back.User.ID || again.User.Email != back.User.Email || len(again.Methods) != 1 {
		t.Fatalf("round trip: %+v, %v", again.User, err)
	}
}
