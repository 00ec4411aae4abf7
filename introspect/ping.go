package introspect

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Ping checks that allauth answers, without a session lookup: it asks the
// session endpoint for credentials of kind k (the app endpoint for
// SessionToken and Bearer, the browser endpoint for Cookie) with no
// credential at all, which allauth answers cheaply with its JSON 401. Use
// the kind your clients send: a project may enable only one of allauth's
// clients (HEADLESS_CLIENTS), and the other endpoint is then a 404.
//
// It returns nil only for allauth's JSON 401, and an [*UpstreamError]
// otherwise: no answer or a timeout (Status 0), another status, or a body
// that is not allauth's. Timeout bounds it, as it bounds [Client.Session];
// a sooner deadline on ctx wins. The request carries no cookie, token or
// Authorization header, so it costs allauth no session lookup.
func (c *Client) Ping(ctx context.Context, k Kind) error {
	if k != SessionToken && k != Bearer && k != Cookie {
		return &UpstreamError{Reason: "ping: unknown credential kind " + k.String()}
	}
	if err := ctx.Err(); err != nil {
		return &UpstreamError{Reason: "caller gave up", Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	resp, err := c.http.R().SetContext(ctx).Get(c.Endpoint(k))
	if err != nil {
		return transportError(resp, err)
	}
	status := resp.StatusCode()
	if status != http.StatusUnauthorized {
		return &UpstreamError{
			Status:     status,
			Reason:     "ping: want allauth's 401 for no credential",
			URL:        c.Endpoint(k),
			RetryAfter: parseRetryAfter(resp.Header().Get("Retry-After"), time.Now()),
		}
	}
	_, err = decodeAnswer(status, resp.Body())
	var auth *AuthError
	if errors.As(err, &auth) {
		return nil // allauth's own JSON 401
	}
	var up *UpstreamError
	if errors.As(err, &up) {
		return up
	}
	return &UpstreamError{Status: status, Reason: "ping: body is not allauth JSON", Err: err}
}
