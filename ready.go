package headless

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/allauthgo/headless/introspect"
)

// ReadyConfig tunes [Authenticator.Ready]. The zero value uses the defaults.
type ReadyConfig struct {
	// Window: when allauth's latest answer to a lookup (or to an earlier
	// probe) is one of its own (JSON 200, 401 or 410) and this recent, the
	// check answers "up" without asking allauth.
	//
	// Optional. Default: 30 * time.Second
	Window time.Duration

	// ProbeInterval is how long a probe's result stands (even if lookups
	// fail meanwhile): however often the check is called, allauth sees at
	// most one probe per ProbeInterval, and never two at once.
	//
	// Optional. Default: 5 * time.Second
	ProbeInterval time.Duration

	// Timeout bounds a probe; keep it under the orchestrator's own probe
	// timeout (Kubernetes: 1 s by default).
	//
	// Optional. Default: 800 * time.Millisecond
	Timeout time.Duration
}

// readyConfigDefault is the default ReadyConfig.
var readyConfigDefault = ReadyConfig{
	Window:        30 * time.Second,
	ProbeInterval: 5 * time.Second,
	Timeout:       800 * time.Millisecond,
}

// Ready returns a readiness handler, e.g. for a Kubernetes readinessProbe:
//
//	mux.Handle("GET /readyz", a.Ready()) // not behind the middleware: it carries no credential
//
// The Fiber doors' Middleware.Ready is this check as a fiber.Handler.
//
// It answers 200 when allauth answers, 503 when it does not, with a small
// JSON body and Cache-Control: no-store:
//
//	{"status": "up", "checked": "recent", "age_seconds": 1.204}
//	{"status": "down", "checked": "probe", "age_seconds": 0.003, "reason": "no answer"}
//
// "recent": allauth's latest answer to a lookup, within Window, was one of
// its own (JSON 200, 401 or 410): no request is made. Otherwise (no lookup
// in Window, or the latest one failed) the handler probes allauth now with
// [introspect.Client.Ping], a GET of the session endpoint without a
// credential, which costs allauth no session lookup: "probe". A probe's
// result stands for ProbeInterval and only one runs at a time, so probes
// never hammer allauth however often the check is called. age_seconds is
// the age of the answer the verdict rests on; reason never holds an address
// or a token.
//
// The circuit breaker's state is not consulted: it may open on one client's
// failing lookups while allauth answers the ping, and then the check says
// up. Mind what readiness means for a shared dependency: when allauth is
// down, every instance turns unready together. Mount it where that is what you
// want (e.g. a gateway's upstream check), and use the 503s and metrics
// otherwise.
func (a *Authenticator) Ready(config ...ReadyConfig) http.Handler {
	cfg := readyConfigDefault
	if len(config) > 0 {
		c := config[0]
		if c.Window > 0 {
			cfg.Window = c.Window
		}
		if c.ProbeInterval > 0 {
			cfg.ProbeInterval = c.ProbeInterval
		}
		if c.Timeout > 0 {
			cfg.Timeout = c.Timeout
		}
	}
	kind := introspect.SessionToken
	if len(a.sources) > 0 {
		kind = a.sources[0].kind // ping the endpoint the Authenticator uses
	}
	return &readiness{a: a, cfg: cfg, kind: kind, slot: make(chan struct{}, 1)}
}

type readiness struct {
	a    *Authenticator
	cfg  ReadyConfig
	kind introspect.Kind
	slot chan struct{} // held by the one probe in flight

	mu   sync.Mutex
	last probeResult // zero until the first probe
}

// probeResult is when a probe ended and what it found (nil: allauth is up).
type probeResult struct {
	at  time.Time
	err error
}

func (r *readiness) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	// The circuit breaker's state is not asked: it may have opened on one
	// client's lookups (tokens that make allauth fail) while allauth answers
	// everyone else. Whether allauth answers is what the ping says, and
	// every instance pulled from its load balancer over one client's
	// traffic would be an outage of its own.
	now := time.Now()
	good := r.a.obs.lastAnswer.Load()
	bad := r.a.obs.lastError.Load()
	if good != 0 && good >= bad && now.Sub(time.Unix(0, good)) <= r.cfg.Window {
		answerReady(w, "recent", now.Sub(time.Unix(0, good)), nil)
		return
	}
	p := r.probe(req.Context())
	answerReady(w, "probe", time.Since(p.at), p.err)
}

// probe returns a probe result no older than ProbeInterval, probing now if
// there is none; callers that arrive while a probe runs wait for it.
func (r *readiness) probe(ctx context.Context) probeResult {
	if p, ok := r.cached(); ok {
		return p
	}
	select {
	case r.slot <- struct{}{}:
	case <-ctx.Done():
		return probeResult{at: time.Now(), err: &introspect.UpstreamError{Reason: "caller gave up", Err: ctx.Err()}}
	}
	defer func() { <-r.slot }()
	if p, ok := r.cached(); ok {
		return p // probed while this call waited
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	err := r.a.client.Ping(ctx, r.kind)
	p := probeResult{at: time.Now(), err: err}
	r.a.obs.answered(err == nil, p.at)
	r.mu.Lock()
	r.last = p
	r.mu.Unlock()
	return p
}

// cached returns the last probe's result if it still stands.
func (r *readiness) cached() (probeResult, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last.at.IsZero() || time.Since(r.last.at) > r.cfg.ProbeInterval {
		return probeResult{}, false
	}
	return r.last, true
}

// answerReady writes the verdict.
func answerReady(w http.ResponseWriter, checked string, age time.Duration, err error) {
	status, word := http.StatusOK, "up"
	if err != nil {
		status, word = http.StatusServiceUnavailable, "down"
	}
	b := make([]byte, 0, 96)
	b = append(b, `{"status": "`...)
	b = append(b, word...)
	b = append(b, `", "checked": "`...)
	b = append(b, checked...)
	b = append(b, `", "age_seconds": `...)
	b = strconv.AppendFloat(b, max(age, 0).Round(time.Millisecond).Seconds(), 'f', -1, 64)
	if err != nil {
		b = append(b, `, "reason": `...)
		b = strconv.AppendQuote(b, readyReason(err))
	}
	b = append(b, '}')
	writeJSON(w, status, b)
}

// readyReason says briefly why allauth is down, from fixed phrases and the
// status only: the error's full text may name internal addresses.
func readyReason(err error) string {
	var up *introspect.UpstreamError
	if !errors.As(err, &up) {
		return "probe failed"
	}
	switch {
	case up.Status != 0:
		return "allauth answered " + strconv.Itoa(up.Status) + ", not its JSON 401"
	case up.Timeout():
		return "no answer in time"
	case up.Reason == "caller gave up":
		return "check cancelled"
	default:
		return "no answer"
	}
}
