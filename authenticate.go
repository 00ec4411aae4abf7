package headless

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/allauthgo/headless/internal/allauth"
	"github.com/allauthgo/headless/internal/cache"
	"github.com/allauthgo/headless/internal/credential"
	"github.com/allauthgo/headless/introspect"
)

// Result is who is calling: an authenticated session, a refusal, or (both
// nil) an anonymous request that was allowed.
type Result struct {
	// Session is the authenticated session, shared with the cache: read it,
	// do not modify it.
	Session *introspect.Session
	// Err is why the request is refused, with the status to answer.
	Err *Error
}

// Authenticate decides who sent r. With optional, a request without a
// credential is anonymous (an empty Result) instead of a 401; a credential
// that allauth refuses still fails. A cache hit allocates nothing and never
// calls r.Context.
func (a *Authenticator) Authenticate(r Request, optional bool) Result {
	src, value, what := a.extract(r)
	switch what {
	case foundNone:
		if optional {
			a.count(OutcomeAnonymous)
			return Result{}
		}
		return a.fail(a.errNoCredential())
	case foundMalformed:
		return a.fail(a.rejection(src.kind, malformed(src.kind)))
	case foundToken:
	}
	if src.kind == introspect.Bearer && a.jwt != nil {
		return a.authenticateJWT(r, src, value)
	}
	key := cache.NewKey(src.scope, value)
	// The in-process tier needs no context: the request's (which some
	// frameworks pay for) is only asked for on a miss.
	res, ok := a.cache.Get(context.Background(), key)
	if !ok {
		// Only well-formed tokens are ever cached, so a hit proves the
		// bytes; a miss checks them before anything is asked.
		if !credential.WellFormed(uint8(src.kind), value, credential.MaxBytes) {
			return a.fail(a.rejection(src.kind, malformed(src.kind)))
		}
		res = a.load(r.Context(), src, key, value, time.Time{})
	}
	if res.Session == nil {
		return a.fail(a.outcomeError(src.kind, res.Err))
	}
	if res.Refresh {
		a.refreshAhead(src, key, value, res)
	}
	return a.succeed(res.Session)
}

// Skip counts a request the front door let through without authenticating
// it (its Next said so), so that Metrics sees every request.
func (a *Authenticator) Skip() { a.count(OutcomeSkipped) }

// load asks allauth through the cache; notAfter, if not zero, caps how long
// the answer is kept (a JWT's exp). value aliases the request's buffer: it is
// copied here, because the fetch may outlive this request (other requests for
// the same key may still be waiting on it). Each load is a lookup span, a
// child of the request's span in ctx (tracing.go).
func (a *Authenticator) load(ctx context.Context, src *Source, key cache.Key, value []byte, notAfter time.Time) cache.Result {
	ctx, span := a.startLookup(ctx, src.kind)
	cred := allauth.Credential{Kind: src.kind, Token: string(value)}
	res := a.cache.Load(ctx, key, notAfter, func(ctx context.Context) (*introspect.Session, error) {
		return a.ask(ctx, src.kind, key, cred) // records, logs and traces the call (lookup.go)
	})
	a.endLookup(span, res)
	return res
}

func (a *Authenticator) succeed(s *introspect.Session) Result {
	a.count(OutcomeAuthenticated)
	return Result{Session: s}
}

func (a *Authenticator) fail(e *Error) Result {
	a.count(outcomeOf(e))
	return Result{Err: e}
}

// buildJWT returns the verifier Config.JWT asks for, or nil.
func buildJWT(cfg Config, wantsBearer bool) (*allauth.JWTVerifier, error) {
	if cfg.JWT == nil {
		if cfg.JWTStateful {
			return nil, errors.New("headless: Config.JWTStateful needs Config.JWT (the key to verify tokens with)")
		}
		return nil, nil
	}
	if !wantsBearer {
		return nil, errors.New("headless: Config.JWT needs a source reading the Authorization header, where JWTs arrive")
	}
	v, err := allauth.NewJWTVerifier(*cfg.JWT)
	if err != nil {
		return nil, fmt.Errorf("headless: %w", err)
	}
	return v, nil
}

// authenticateJWT checks a Bearer JWT in process and, in stateful mode,
// asks allauth (through the cache) whether its session still lives. Every
// Bearer value is answered here, without allauth, unless it is a valid access
// token: under allauth's JWT strategy nothing else can be valid.
//
// A verified token's answer is kept in process under a cheap key (a seeded
// hash of the token's end and its length, cache.NewTokenKey) with the token's
// own bytes, and a repeat is served only if it is byte for byte the token
// that verified: a token differing in any byte is a miss and is verified
// like a new one. Hashing the whole ~700-byte token with SHA-256 on every
// request, as the shared tier's keys need, would cost more than the rest of
// the hit. The stateful mode keeps those SHA-256 keys: its answers are
// allauth's, shared with other instances.
func (a *Authenticator) authenticateJWT(r Request, src *Source, value []byte) Result {
	if !a.cfg.JWTStateful {
		// A token verified before is answered from the in-process cache:
		// its signature check costs far more than the rest of the request.
		key := cache.NewTokenKey(src.scope, value)
		if s, ok := a.cache.GetToken(key, value); ok {
			return a.succeed(s)
		}
		s, res := a.verifyJWT(src, value)
		if s == nil {
			return res
		}
		a.cache.RememberToken(key, value, s, s.ExpiresAt)
		return a.succeed(s)
	}
	s, res := a.verifyJWT(src, value)
	if s == nil {
		return res
	}
	key := cache.NewKey(src.scope, value)
	cached, ok := a.cache.Get(context.Background(), key)
	if !ok {
		// Nothing is cached past exp: a token allauth vouched for must not
		// outlive its own expiry in the cache.
		cached = a.load(r.Context(), src, key, value, s.ExpiresAt)
	}
	if cached.Session == nil {
		return a.fail(a.outcomeError(src.kind, cached.Err))
	}
	if cached.Session.User.ID != s.User.ID {
		// allauth's session belongs to someone else than sub: never trust
		// either.
		return a.fail(a.rejection(introspect.Bearer, malformed(introspect.Bearer)))
	}
	// The cached session is shared: add this token's claims to a copy.
	out := *cached.Session
	out.User.Claims = s.User.Claims
	out.ExpiresAt = s.ExpiresAt
	return a.succeed(&out)
}

// verifyJWT checks a Bearer value's form and signature: the verified
// session, or nil and the refusal to answer.
func (a *Authenticator) verifyJWT(src *Source, value []byte) (*introspect.Session, Result) {
	if !credential.WellFormed(uint8(src.kind), value, credential.MaxBytes) {
		return nil, a.fail(a.rejection(src.kind, malformed(src.kind)))
	}
	s, err := a.jwt.Verify(string(value))
	if err != nil {
		return nil, a.fail(a.rejection(introspect.Bearer, err))
	}
	return s, Result{}
}
