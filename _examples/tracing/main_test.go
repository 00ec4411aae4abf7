package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/allauthgo/headless/internal/exampletest"

	"go.uber.org/goleak"
)

// span is what the test reads of a span printed by the stdout exporter.
type span struct {
	Name        string
	SpanContext struct{ TraceID, SpanID string }
	Parent      struct{ TraceID, SpanID string }
	SpanKind    int
	Attributes  []struct {
		Key   string
		Value struct{ Value any }
	}
}

func (s span) attr(key string) any {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.Value.Value
		}
	}
	return nil
}

// TestDemo runs the demo on a free port and checks its spans: a lookup span
// for the miss (a client span, child of the request's span, in the trace the
// demo's first request carried, and the parent allauth was sent), none for
// the hit, and one saying session_gone for the unknown token.
func TestDemo(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	var out exampletest.SyncBuffer
	vars := map[string]string{"ADDR": "127.0.0.1:0"}
	if err := run(context.Background(), nil, func(k string) string { return vars[k] }, &out); err != nil {
		t.Fatalf("run = %v\noutput:\n%s", err, out.String())
	}

	// The demo's lines start with "#"; the rest is the exporter's JSON.
	var lines []string
	var spansJSON strings.Builder
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		} else {
			spansJSON.WriteString(l + "\n")
		}
	}
	var spans []span
	dec := json.NewDecoder(strings.NewReader(spansJSON.String()))
	for {
		var s span
		if err := dec.Decode(&s); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("spans: %v\n%s", err, spansJSON.String())
		}
		spans = append(spans, s)
	}
	var names []string
	for _, s := range spans {
		names = append(names, s.Name)
	}
	want := []string{"allauth.session_lookup", "GET /api/me", "GET /api/me", "allauth.session_lookup", "GET /api/me"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("spans %q, want %q\n%s", names, want, out.String())
	}
	miss, request, gone := spans[0], spans[1], spans[3]
	if miss.Parent.SpanID != request.SpanContext.SpanID || miss.SpanContext.TraceID != "0af7651916cd43dd8448eb211c80319c" ||
		request.Parent.SpanID != "b7ad6b7169203331" {
		t.Errorf("the miss's lookup span is not the request's child in the caller's trace:\n%s", out.String())
	}
	if miss.SpanKind != 3 || miss.attr("allauth.outcome") != "authenticated" || miss.attr("allauth.credential") != "session_token" {
		t.Errorf("miss span %+v", miss)
	}
	if gone.attr("allauth.outcome") != "session_gone" || gone.Parent.SpanID != spans[4].SpanContext.SpanID {
		t.Errorf("410 span %+v", gone)
	}
	wantLines := []string{
		`^# stand-in allauth on http://127\.0\.0\.1:\d+, API on http://127\.0\.0\.1:\d+$`,
		`^# 1\. GET /api/me: a cache miss`,
		`^# 1\. -> 200; allauth session calls: 1, traceparent allauth received: "00-0af7651916cd43dd8448eb211c80319c-` + miss.SpanContext.SpanID + `-01"$`,
		`^# 2\. GET /api/me: the same token: a cache hit`,
		`^# 2\. -> 200; allauth session calls: 0, traceparent allauth received: ""$`,
		`^# 3\. GET /api/me: an unknown token`,
		`^# 3\. -> 410; allauth session calls: 1, traceparent allauth received: "00-[0-9a-f]{32}-` + gone.SpanContext.SpanID + `-01"$`,
	}
	if len(lines) != len(wantLines) {
		t.Fatalf("%d demo lines, want %d:\n%s", len(lines), len(wantLines), strings.Join(lines, "\n"))
	}
	for i, re := range wantLines {
		if !regexp.MustCompile(re).MatchString(lines[i]) {
			t.Errorf("line %d: %q does not match %s", i+1, lines[i], re)
		}
	}
	goleak.VerifyNone(t, ignore,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	)
}

// TestBadInput checks that a bad flag or ADDR is an input error (exit 2).
func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
	}{
		{[]string{"-nope"}, nil},
		{[]string{"extra"}, nil},
		{nil, map[string]string{"ADDR": "3000"}},
		{nil, map[string]string{"SERVE": "maybe"}},
	} {
		err := run(context.Background(), tc.args, func(k string) string { return tc.env[k] }, io.Discard)
		var bad *inputError
		if !errors.As(err, &bad) {
			t.Errorf("args %q env %v: err %v, want an input error", tc.args, tc.env, err)
		}
	}
}
