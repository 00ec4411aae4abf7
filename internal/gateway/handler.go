package gateway

import (
	"net/http"
	"strings"

	"github.com/allauthgo/headless"
	"github.com/allauthgo/headless/internal/httpreq"
)

// The gateway's paths.
const (
	PathAuth      = "/auth"             // and /auth/<anything>, for Envoy's path_prefix
	PathNginxAuth = "/nginx/auth"       // /auth plus the refusal's body in HeaderErrorBody
	PathHealth    = "/healthz"          // liveness: the process answers
	PathReady     = "/readyz"           // readiness: allauth answers (headless.Authenticator.Ready)
	PathMetrics   = "/metrics"          // Prometheus (authprom)
	PathEvict     = "/_allauthgo/evict" // the eviction webhook, with EVICT_SECRET
)

var (
	noStore  = []string{"no-store"}
	jsonType = []string{"application/json"}
	textType = []string{"text/plain; charset=utf-8"}
)

// ServeHTTP routes by path alone: /auth answers any method, since proxies
// forward the original one (Traefik, Envoy) or GET (nginx, Caddy).
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// r's context reaches a lookup through request.Context, on a miss.
	//nolint:contextcheck // see above
	switch p := r.URL.Path; {
	case p == PathAuth:
		g.serveAuth(w, r, false)
	case p == PathHealth:
		h := w.Header()
		h["Content-Type"] = textType
		h["Cache-Control"] = noStore
		_, _ = w.Write([]byte("ok\n"))
	case p == PathNginxAuth:
		g.serveAuth(w, r, true)
	case strings.HasPrefix(p, PathAuth+"/"):
		g.serveAuth(w, r, false)
	case p == PathReady:
		g.ready.ServeHTTP(w, r)
	case p == PathMetrics:
		g.metrics.ServeHTTP(w, r)
	case p == PathEvict && g.evict != nil:
		g.evict.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

// serveAuth answers by the doors' contract: 200 with the identity headers,
// or the refusal's status, allauth's JSON envelope, Cache-Control: no-store,
// WWW-Authenticate and Retry-After, as httpauth.DefaultErrorHandler sends
// them. With bodyHeader the body is also sent in HeaderErrorBody.
func (g *Gateway) serveAuth(w http.ResponseWriter, r *http.Request, bodyHeader bool) {
	res := g.auth.Authenticate(httpreq.Request{R: r}, g.cfg.Optional)
	h := w.Header()
	if e := res.Err; e != nil {
		g.refuse(w, h, e, bodyHeader)
		return
	}
	h["Cache-Control"] = noStore
	setIdentity(h, res)
	w.WriteHeader(http.StatusOK)
}

func (g *Gateway) refuse(w http.ResponseWriter, h http.Header, e *headless.Error, bodyHeader bool) {
	e.Header(h.Set)
	h["Content-Type"] = jsonType
	body := e.Body()
	if bodyHeader {
		h[HeaderErrorBody] = []string{string(body)}
	}
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
}
