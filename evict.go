package headless

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/allauthgo/headless/internal/cache"
	"github.com/allauthgo/headless/internal/credential"
)

// The eviction webhook's headers and signature scheme. A request is signed
// with a secret shared with Django:
//
//	X-Allauthgo-Timestamp: <Unix seconds, decimal>
//	X-Allauthgo-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>
//
// and carries a JSON body (Content-Type: application/json):
//
//	{"nonce": "<random>", "session_keys": ["<Django session key>", ...], "user_ids": ["<allauth user id>", ...]}
//
// A session key is an app session token and a browser session cookie value
// alike: it is dropped as both (and as a Bearer token). A user id drops every
// entry the user index lists for that user (Config.UserIndex). The nonce
// only makes two evictions of the same keys within one second differ; any
// other field is ignored.
const (
	HeaderEvictTimestamp = "X-Allauthgo-Timestamp"
	HeaderEvictSignature = "X-Allauthgo-Signature"
	evictSignatureScheme = "v1="
)

// Defaults for EvictConfig, and its shortest secret.
const (
	defaultEvictMaxSkew    = 30 * time.Second
	defaultEvictMaxBody    = 64 << 10
	defaultEvictMaxReplays = 10_000
	defaultEvictTimeout    = 10 * time.Second
	minEvictSecret         = 32
)

// Codes in the error bodies of the eviction webhook.
const (
	codeEvictMethod       = "method_not_allowed"     // 405: not a POST
	codeEvictMediaType    = "unsupported_media_type" // 415: not application/json
	codeEvictTooLarge     = "body_too_large"         // 413: over MaxBody
	codeEvictUnsigned     = "unsigned"               // 401: a header is missing
	codeEvictBadTimestamp = "bad_timestamp"          // 401: not Unix seconds
	codeEvictStale        = "stale"                  // 401: timestamp outside ±MaxSkew
	codeEvictBadSignature = "bad_signature"          // 401: malformed, or not the HMAC of this body
	codeEvictReplayed     = "replayed"               // 401: this signature was already accepted
	codeEvictBadRequest   = "bad_request"            // 400: the body is not an eviction
	codeEvictNoUserIndex  = "user_index_off"         // 501: user_ids without Config.UserIndex
	codeEvictStore        = "store_unavailable"      // 503: the cache could not delete
)

// EvictConfig configures [EvictHandler].
type EvictConfig struct {
	// Secret is shared with Django (ALLAUTHGO_EVICT_SECRET). At least 32
	// bytes; use random ones, e.g. python -c 'import secrets;
	// print(secrets.token_urlsafe(32))'. Required.
	Secret []byte

	// OldSecrets are accepted too, for a rotation: give the new secret to
	// the Go side with the old one here, then to Django, then drop the old.
	//
	// Optional. Default: nil
	OldSecrets [][]byte

	// MaxSkew is how far a request's timestamp may be from this server's
	// clock, either way. It is also how long a signature is remembered to
	// refuse a replay.
	//
	// Optional. Default: 30 * time.Second
	MaxSkew time.Duration

	// MaxBody bounds the body, in bytes; a longer one is refused with 413
	// before it is authenticated, and no more than MaxBody+1 bytes are read.
	//
	// Optional. Default: 64 KiB
	MaxBody int

	// MaxReplays bounds how many accepted signatures are remembered. When
	// it is full, the oldest is forgotten first (its request could then be
	// replayed within MaxSkew, which only evicts the same keys again).
	//
	// Optional. Default: 10000
	MaxReplays int

	// Timeout bounds the work of one eviction (the deletes in the shared
	// store, the message to the other instances), measured from when the
	// request was authenticated. That work does not end with the caller's
	// request: Django's client gives up after 2 s, and an eviction cut
	// there would leave some keys deleted, others not, and no message sent.
	// An eviction that started is carried through, up to Timeout, even if
	// the caller went away. The default leaves room for a large eviction
	// against a slow store (each store call is bounded on its own, and a
	// failing store is skipped at once), while still ending a handler that
	// a hung store would otherwise hold.
	//
	// Optional. Default: 10 * time.Second
	Timeout time.Duration

	// Now is the clock; tests inject one.
	//
	// Optional. Default: time.Now
	Now func() time.Time
}

// EvictHandler returns the eviction webhook that Django calls when sessions
// end (django/allauthgo_evict.py is the sending side), as an http.Handler
// that any router can mount; the front doors wrap it for Fiber:
//
//	h, err := headless.EvictHandler(headless.EvictConfig{Secret: secret}, a)
//	mux.Handle("POST /_allauthgo/evict", h) // it carries no user credential
//
// It drops the given session keys and users from the cache of every
// Authenticator passed (with a shared Storage, from every instance) and
// answers 200 {"status": 200, "data": {"evicted": <entries that were
// cached>}}; evicting what nobody cached is a 200 with 0. Refusals use the
// error envelope: 405 for another method, 415 for a body that is not
// application/json, 413 for a body over MaxBody, 401 for a request that is
// unsigned, mis-signed, stale, from the future or replayed (checked in that
// order, with a constant-time comparison, before the body is parsed), 400 for
// a body that is no eviction, 501 for user_ids when an Authenticator keeps no
// user index, and 503 (Retry-After: 1) when the cache could not delete. The
// error's code says which (method_not_allowed, unsupported_media_type,
// body_too_large, unsigned, bad_timestamp, stale, bad_signature, replayed,
// bad_request, user_index_off, store_unavailable).
//
// The eviction is carried through even if the caller goes away meanwhile
// (bounded by Timeout), and a signature is remembered as a replay only once
// its eviction was applied: the identical request retried after a 503 is
// accepted, a replay after a 200 is refused.
//
// It returns an error when the Secret is shorter than 32 bytes or no
// Authenticator is given.
func EvictHandler(cfg EvictConfig, as ...*Authenticator) (http.Handler, error) {
	if len(cfg.Secret) < minEvictSecret {
		return nil, errors.New("headless: EvictConfig.Secret must be at least 32 bytes, shared with Django (ALLAUTHGO_EVICT_SECRET)")
	}
	for _, s := range cfg.OldSecrets {
		if len(s) < minEvictSecret {
			return nil, errors.New("headless: every EvictConfig.OldSecrets entry must be at least 32 bytes")
		}
	}
	if len(as) == 0 {
		return nil, errors.New("headless: EvictHandler needs the Authenticator(s) whose caches it evicts from")
	}
	if cfg.MaxSkew <= 0 {
		cfg.MaxSkew = defaultEvictMaxSkew
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = defaultEvictMaxBody
	}
	if cfg.MaxReplays <= 0 {
		cfg.MaxReplays = defaultEvictMaxReplays
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultEvictTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	secrets := [][]byte{bytes.Clone(cfg.Secret)}
	for _, s := range cfg.OldSecrets {
		secrets = append(secrets, bytes.Clone(s))
	}
	return &evictor{cfg: cfg, secrets: secrets, as: append([]*Authenticator(nil), as...), replays: newReplaySet(cfg.MaxReplays)}, nil
}

type evictor struct {
	cfg     EvictConfig
	secrets [][]byte
	as      []*Authenticator
	replays *replaySet
}

// evictRequest is the webhook's body.
type evictRequest struct {
	SessionKeys []string `json:"session_keys"`
	UserIDs     []string `json:"user_ids"`
}

func (e *evictor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		evictFail(w, http.StatusMethodNotAllowed, codeEvictMethod, "Use POST.")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		evictFail(w, http.StatusUnsupportedMediaType, codeEvictMediaType, "The body must be application/json.")
		return
	}
	// The raw body: the signature covers the bytes sent, so no decoding.
	if r.ContentLength > int64(e.cfg.MaxBody) {
		evictFail(w, http.StatusRequestEntityTooLarge, codeEvictTooLarge, "The body is too large.")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(e.cfg.MaxBody)+1))
	if err != nil {
		evictFail(w, http.StatusBadRequest, codeEvictBadRequest, "The body could not be read.")
		return
	}
	if len(body) > e.cfg.MaxBody {
		evictFail(w, http.StatusRequestEntityTooLarge, codeEvictTooLarge, "The body is too large.")
		return
	}
	sig, code, msg := e.authenticate(r.Header, body)
	if code != "" {
		evictFail(w, http.StatusUnauthorized, code, msg)
		return
	}

	var req evictRequest
	if err := json.Unmarshal(body, &req); err != nil {
		evictFail(w, http.StatusBadRequest, codeEvictBadRequest, "The body is not a JSON eviction.")
		return
	}
	if len(req.SessionKeys) == 0 && len(req.UserIDs) == 0 {
		evictFail(w, http.StatusBadRequest, codeEvictBadRequest, "Nothing to evict: give session_keys or user_ids.")
		return
	}
	for _, s := range req.SessionKeys {
		if s == "" || len(s) > credential.MaxBytes {
			evictFail(w, http.StatusBadRequest, codeEvictBadRequest, "A session key is empty or too long.")
			return
		}
	}
	for _, s := range req.UserIDs {
		if s == "" || len(s) > 256 {
			evictFail(w, http.StatusBadRequest, codeEvictBadRequest, "A user id is empty or too long.")
			return
		}
	}

	// Detached from the caller: once started, the eviction is finished even
	// if the caller (Django's 2 s client) gives up, so that the deletes and
	// the message to the other instances are not cut halfway. Its own
	// Timeout bounds it instead.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), e.cfg.Timeout)
	defer cancel()
	var n int
	var storeErr error
	noIndex := false
	for _, a := range e.as {
		k, err := a.evictTokens(ctx, req.SessionKeys...)
		n += k
		storeErr = errors.Join(storeErr, err)
		for _, id := range req.UserIDs {
			k, err := a.EvictUser(ctx, id)
			n += k
			if errors.Is(err, cache.ErrNoUserIndex) {
				noIndex = true
			} else {
				storeErr = errors.Join(storeErr, err)
			}
		}
	}
	if storeErr == nil {
		// Applied: from now on the same request is a replay. A failed one
		// is not remembered, so that the identical request retried after
		// the 503 is accepted. Two identical requests running at once may
		// both get here and both evict: evicting the same keys twice is
		// harmless, so that race is not worth a lock around the eviction.
		e.replays.add(sig.mac, sig.expires, e.cfg.Now().UnixNano())
	}
	switch {
	case storeErr != nil:
		w.Header().Set("Retry-After", "1")
		evictFail(w, http.StatusServiceUnavailable, codeEvictStore, "The cache could not delete every entry; retry.")
		return
	case noIndex:
		evictFail(w, http.StatusNotImplemented, codeEvictNoUserIndex,
			"user_ids need Config.UserIndex; session_keys were evicted.")
		return
	}
	b := make([]byte, 0, 48)
	b = append(b, `{"status": 200, "data": {"evicted": `...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, `}}`...)
	writeJSON(w, http.StatusOK, b)
}

func evictFail(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, (&Error{Status: status, Code: code, Message: msg}).Body())
}

// writeJSON answers status with a JSON body that no cache may keep.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
