package httpauth_test

import (
	"strings"
	"testing"

	"github.com/allauthgo/headless/httpauth"
)

// Not parallel: AllocsPerRun refuses to run alongside other tests.
func TestLastCookie(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		want  string // "<none>" when absent
	}{
		{"none", nil, "<none>"},
		{"empty line", []string{""}, "<none>"},
		{"one", []string{"sessionid=abc"}, "abc"},
		{"two cookies", []string{"csrftoken=x; sessionid=abc"}, "abc"},
		{"first of two", []string{"sessionid=abc; csrftoken=x"}, "abc"},
		{"spaces", []string{"  sessionid  =  abc  ;x=y"}, "abc"},
		{"no spaces", []string{"a=1;sessionid=abc;b=2"}, "abc"},
		{"tab kept", []string{"sessionid=\tabc"}, "\tabc"},
		{"no '='", []string{"sessionid; x=y"}, "<none>"},
		{"no '=' after", []string{"sessionid=abc; sessionid"}, "abc"},
		{"empty value", []string{"sessionid="}, ""},
		{"empty value last", []string{"sessionid=abc; sessionid="}, ""},
		{"'=' in value", []string{"sessionid=a=b=c"}, "a=b=c"},
		{"last wins", []string{"sessionid=one; sessionid=two"}, "two"},
		{"several lines", []string{"sessionid=one", "x=y; sessionid=two", "z=1"}, "two"},
		{"in an earlier line", []string{"sessionid=one", "x=y"}, "one"},
		{"prefix name", []string{"xsessionid=abc; sessionidx=def"}, "<none>"},
		{"case matters", []string{"SessionID=abc"}, "<none>"},
		{"quoted", []string{`sessionid="abc"`}, "abc"},
		{"lone quote", []string{`sessionid="`}, `"`},
		{"empty chunks", []string{";;sessionid=abc;;"}, "abc"},
		{"trailing semicolon", []string{"sessionid=abc;"}, "abc"},
	} {
		got, ok := httpauth.LastCookie(tc.lines, "sessionid")
		if !ok {
			got = "<none>"
		}
		if got != tc.want {
			t.Errorf("%s: %q gives %q, want %q", tc.name, tc.lines, got, tc.want)
		}
	}
	lines := []string{"a=1; sessionid=abc", "sessionid=def"}
	if n := testing.AllocsPerRun(100, func() { httpauth.LastCookie(lines, "sessionid") }); n != 0 {
		t.Errorf("%v allocations, want 0", n)
	}
}

// djangoLastCookie is Django's parse_cookie, written plainly (without its
// unescaping of quoted values), for the fuzzer to compare with.
func djangoLastCookie(lines []string, name string) (string, bool) {
	var v string
	var found bool
	for _, line := range lines {
		for _, chunk := range strings.Split(line, ";") {
			key, val, ok := strings.Cut(chunk, "=")
			if !ok {
				key, val = "", chunk
			}
			key, val = strings.Trim(key, " "), strings.Trim(val, " ")
			if key == name && (key != "" || val != "") {
				if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
					val = val[1 : len(val)-1]
				}
				v, found = val, true
			}
		}
	}
	return v, found
}

func FuzzLastCookie(f *testing.F) {
	for _, s := range []string{"sessionid=abc", "a=1; sessionid=x; sessionid=y", " sessionid = \"q\" ", "sessionid", "=;=", "sessionid=\x00;"} {
		f.Add(s, "b=2", "sessionid")
	}
	f.Fuzz(func(t *testing.T, line1, line2, name string) {
		name = strings.Trim(name, " ")
		if name == "" || strings.ContainsAny(name, ";=") {
			t.Skip() // not a cookie name FromCookie would be given
		}
		lines := []string{line1, line2}
		got, ok := httpauth.LastCookie(lines, name)
		want, wantOK := djangoLastCookie(lines, name)
		if got != want || ok != wantOK {
			t.Fatalf("%q, %q: got %q %v, want %q %v", lines, name, got, ok, want, wantOK)
		}
	})
}
