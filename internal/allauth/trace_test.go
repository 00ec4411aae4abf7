package allauth_test

import (
	"context"
	"testing"

	"github.com/allauthgo/headless/internal/allauth"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/allauthgo/headless/introspect/allauthtest"
)

// spanContext is a sampled remote span context, as a request's span would
// be.
func spanContext(t *testing.T) trace.SpanContext {
	t.Helper()
	tid, err := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := trace.SpanIDFromHex("00f067aa0ba902b7")
	if err != nil {
		t.Fatal(err)
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
}

// TestSessionPropagatesTraceContext proves a lookup carries the W3C trace
// context of the span in its context to allauth, with no propagator set up
// (OpenTelemetry's global one is a no-op by default), and nothing without a
// span.
func TestSessionPropagatesTraceContext(t *testing.T) {
	t.Parallel()
	srv, c := newStandIn(t, allauth.Config{})
	srv.AddUser(allauthtest.User{Username: "alice", Password: "pw"})
	tok := srv.IssueToken("alice")

	if _, err := c.Session(context.Background(), sessionToken(tok)); err != nil {
		t.Fatal(err)
	}
	if got := srv.LastSessionHeader("traceparent"); got != "" {
		t.Errorf("traceparent %q sent without a span", got)
	}

	ctx := trace.ContextWithSpanContext(context.Background(), spanContext(t))
	for _, cred := range []allauth.Credential{sessionToken(tok), cookieCred(tok)} {
		if _, err := c.Session(ctx, cred); err != nil {
			t.Fatal(err)
		}
		if got, want := srv.LastSessionHeader("traceparent"), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"; got != want {
			t.Errorf("%v: traceparent %q, want %q", cred, got, want)
		}
	}
	srv.ResetCounters()
	if got := srv.LastSessionHeader("traceparent"); got != "" {
		t.Errorf("LastSessionHeader after ResetCounters: %q", got)
	}
}

// TestSessionUsesGlobalPropagator proves what the app's global propagator
// adds (here baggage) is sent too, beside traceparent. Not parallel: it sets
// OpenTelemetry's global propagator, and restores a no-op one.
func TestSessionUsesGlobalPropagator(t *testing.T) {
	srv, c := newStandIn(t, allauth.Config{})
	srv.AddUser(allauthtest.User{Username: "alice", Password: "pw"})
	tok := srv.IssueToken("alice")

	otel.SetTextMapPropagator(propagation.Baggage{})
	t.Cleanup(func() { otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator()) })

	member, err := baggage.NewMember("tenant", "acme")
	if err != nil {
		t.Fatal(err)
	}
	bag, err := baggage.New(member)
	if err != nil {
		t.Fatal(err)
	}
	ctx := baggage.ContextWithBaggage(trace.ContextWithSpanContext(context.Background(), spanContext(t)), bag)
	if _, err := c.Session(ctx, sessionToken(tok)); err != nil {
		t.Fatal(err)
	}
	if got := srv.LastSessionHeader("baggage"); got != "tenant=acme" {
		t.Errorf("baggage %q, want tenant=acme", got)
	}
	if got := srv.LastSessionHeader("traceparent"); got == "" {
		t.Error("no traceparent beside the global propagator's fields")
	}
}
