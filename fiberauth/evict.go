package fiberauth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/allauthgo/headless/cache"
	"github.com/allauthgo/headless/introspect"
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

// Defaults for [EvictConfig].
const (
	DefaultEvictMaxSkew    = 30 * time.Second
	DefaultEvictMaxBody    = 64 << 10
	DefaultEvictMaxReplays = 10_000
	minEvictSecret         = 32
)

// Codes in the error bodies of the eviction webhook.
const (
	CodeEvictMethod       = "method_not_allowed"     // 405: not a POST
	CodeEvictMediaType    = "unsupported_media_type" // 415: not application/json
	CodeEvictTooLarge     = "body_too_large"         // 413: over MaxBody
	CodeEvictUnsigned     = "unsigned"               // 401: a header is missing
	CodeEvictBadTimestamp = "bad_timestamp"          // 401: not Unix seconds
	CodeEvictStale        = "stale"                  // 401: timestamp outside ±MaxSkew
	CodeEvictBadSignature = "bad_signature"          // 401: malformed, or not the HMAC of this body
	CodeEvictReplayed     = "replayed"               // 401: this signature was already accepted
	CodeEvictBadRequest   = "bad_request"            // 400: the body is not an eviction
	CodeEvictNoUserIndex  = "user_index_off"         // 501: user_ids without Config.UserIndex
	CodeEvictStore        = "store_unavailable"      // 503: the cache could not delete
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
	// before it is authenticated. The app's own BodyLimit (4 MiB by default)
	// bounds what is read.
	//
	// Optional. Default: 64 KiB
	MaxBody int

	// MaxReplays bounds how many accepted signatures are remembered. When
	// it is full, the oldest is forgotten first (its request could then be
	// replayed within MaxSkew, which only evicts the same keys again).
	//
	// Optional. Default: 10000
	MaxReplays int

	// Now is the clock; tests inject one.
	//
	// Optional. Default: time.Now
	Now func() time.Time
}

// EvictHandler returns the eviction webhook that Django calls when sessions
// end (see django/allauthgo_evict.py for the sending side):
//
//	app.Post("/_allauthgo/evict", fiberauth.EvictHandler(fiberauth.EvictConfig{Secret: secret}, m))
//	app.Use(m.Handler) // after the webhook, which carries no user credential
//
// It drops the given session keys and users from the cache of every
// middleware passed (with a shared Storage, from every instance) and answers
// 200 {"status": 200, "data": {"evicted": <entries that were cached>}};
// evicting what nobody cached is a 200 with 0. Refusals use the middleware's
// error envelope: 405 for another method, 415 for a body that is not
// application/json, 413 for a body over MaxBody, 401 for a request that is
// unsigned, mis-signed, stale, from the future or replayed (checked in that
// order, with a constant-time comparison, before the body is parsed), 400 for
// a body that is no eviction, 501 for user_ids when a middleware keeps no
// user index, and 503 (Retry-After: 1) when the cache could not delete.
//
// It panics, like NewMiddleware, when the Secret is shorter than 32 bytes.
func EvictHandler(cfg EvictConfig, m *Middleware, more ...*Middleware) fiber.Handler {
	if len(cfg.Secret) < minEvictSecret {
		panic("fiberauth: EvictConfig.Secret must be at least 32 bytes, shared with Django (ALLAUTHGO_EVICT_SECRET)")
	}
	for _, s := range cfg.OldSecrets {
		if len(s) < minEvictSecret {
			panic("fiberauth: every EvictConfig.OldSecrets entry must be at least 32 bytes")
		}
	}
	if cfg.MaxSkew <= 0 {
		cfg.MaxSkew = DefaultEvictMaxSkew
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultEvictMaxBody
	}
	if cfg.MaxReplays <= 0 {
		cfg.MaxReplays = DefaultEvictMaxReplays
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	secrets := [][]byte{bytes.Clone(cfg.Secret)}
	for _, s := range cfg.OldSecrets {
		secrets = append(secrets, bytes.Clone(s))
	}
	e := &evictor{cfg: cfg, secrets: secrets, ms: append([]*Middleware{m}, more...), replays: newReplaySet(cfg.MaxReplays)}
	return e.handle
}

type evictor struct {
	cfg     EvictConfig
	secrets [][]byte
	ms      []*Middleware
	replays *replaySet
}

// evictRequest is the webhook's body.
type evictRequest struct {
	SessionKeys []string `json:"session_keys"`
	UserIDs     []string `json:"user_ids"`
}

func (e *evictor) handle(c *fiber.Ctx) error {
	if c.Method() != fiber.MethodPost {
		c.Set(fiber.HeaderAllow, fiber.MethodPost)
		return evictFail(c, http.StatusMethodNotAllowed, CodeEvictMethod, "Use POST.")
	}
	if mt, _, err := mime.ParseMediaType(string(c.Request().Header.ContentType())); err != nil || mt != fiber.MIMEApplicationJSON {
		return evictFail(c, http.StatusUnsupportedMediaType, CodeEvictMediaType, "The body must be application/json.")
	}
	// The raw body: the signature covers the bytes sent, so no decoding.
	body := c.Request().Body()
	if len(body) > e.cfg.MaxBody || c.Request().Header.ContentLength() > e.cfg.MaxBody {
		return evictFail(c, http.StatusRequestEntityTooLarge, CodeEvictTooLarge, "The body is too large.")
	}
	if code, msg := e.authenticate(c, body); code != "" {
		return evictFail(c, http.StatusUnauthorized, code, msg)
	}

	var req evictRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return evictFail(c, http.StatusBadRequest, CodeEvictBadRequest, "The body is not a JSON eviction.")
	}
	if len(req.SessionKeys) == 0 && len(req.UserIDs) == 0 {
		return evictFail(c, http.StatusBadRequest, CodeEvictBadRequest, "Nothing to evict: give session_keys or user_ids.")
	}
	for _, s := range req.SessionKeys {
		if s == "" || len(s) > introspect.DefaultMaxCredentialBytes {
			return evictFail(c, http.StatusBadRequest, CodeEvictBadRequest, "A session key is empty or too long.")
		}
	}
	for _, s := range req.UserIDs {
		if s == "" || len(s) > 256 {
			return evictFail(c, http.StatusBadRequest, CodeEvictBadRequest, "A user id is empty or too long.")
		}
	}

	ctx := c.UserContext()
	var n int
	var storeErr error
	noIndex := false
	for _, m := range e.ms {
		for _, key := range req.SessionKeys {
			k, err := m.evictToken(ctx, key)
			n += k
			storeErr = errors.Join(storeErr, err)
		}
		for _, id := range req.UserIDs {
			k, err := m.EvictUser(ctx, id)
			n += k
			if errors.Is(err, cache.ErrNoUserIndex) {
				noIndex = true
			} else {
				storeErr = errors.Join(storeErr, err)
			}
		}
	}
	switch {
	case storeErr != nil:
		c.Set(fiber.HeaderRetryAfter, "1")
		return evictFail(c, http.StatusServiceUnavailable, CodeEvictStore, "The cache could not delete every entry; retry.")
	case noIndex:
		return evictFail(c, http.StatusNotImplemented, CodeEvictNoUserIndex,
			"user_ids need fiberauth.Config.UserIndex (or cache.Config.UserIndex); session_keys were evicted.")
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	b := make([]byte, 0, 48)
	b = append(b, `{"status": 200, "data": {"evicted": `...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, `}}`...)
	return c.Status(http.StatusOK).Send(b)
}

// authenticate checks the signature headers against body. It returns an
// error code and message, or "" when the request is authentic, fresh and
// seen for the first time.
func (e *evictor) authenticate(c *fiber.Ctx, body []byte) (code, msg string) {
	h := &c.Request().Header
	tsRaw, sigRaw := h.Peek(HeaderEvictTimestamp), h.Peek(HeaderEvictSignature)
	if len(tsRaw) == 0 || len(sigRaw) == 0 {
		return CodeEvictUnsigned, "The request is not signed."
	}
	ts, ok := parseUnixSeconds(tsRaw)
	if !ok {
		return CodeEvictBadTimestamp, "The timestamp is not Unix seconds."
	}
	now := e.cfg.Now()
	skew := now.Sub(time.Unix(ts, 0))
	if skew > e.cfg.MaxSkew || skew < -e.cfg.MaxSkew {
		return CodeEvictStale, "The timestamp is too far from this server's clock."
	}
	var got [sha256.Size]byte
	if !bytes.HasPrefix(sigRaw, []byte(evictSignatureScheme)) ||
		hex.DecodedLen(len(sigRaw)-len(evictSignatureScheme)) != len(got) {
		return CodeEvictBadSignature, "The signature is not v1=<64 hex digits>."
	}
	if _, err := hex.Decode(got[:], sigRaw[len(evictSignatureScheme):]); err != nil {
		return CodeEvictBadSignature, "The signature is not v1=<64 hex digits>."
	}
	valid := false
	for _, secret := range e.secrets {
		// Every secret is tried, so the time taken does not say which matched.
		want := evictMAC(secret, tsRaw, body)
		valid = hmac.Equal(got[:], want[:]) || valid
	}
	if !valid {
		return CodeEvictBadSignature, "The signature does not match the body."
	}
	// Remembered until the timestamp is stale, plus a second of margin.
	expires := time.Unix(ts, 0).Add(e.cfg.MaxSkew + time.Second).UnixNano()
	if !e.replays.add(got, expires, now.UnixNano()) {
		return CodeEvictReplayed, "This request was already accepted."
	}
	return "", ""
}

// parseUnixSeconds accepts 1 to 12 decimal digits and nothing else.
func parseUnixSeconds(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 12 {
		return 0, false
	}
	var n int64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + int64(ch-'0')
	}
	return n, true
}

func evictMAC(secret, timestamp, body []byte) [sha256.Size]byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write(timestamp)
	mac.Write([]byte{'.'})
	mac.Write(body)
	var out [sha256.Size]byte
	mac.Sum(out[:0])
	return out
}

// SignEvict returns the X-Allauthgo-Signature value for body sent at
// timestamp (Unix seconds), for Go code that calls an eviction webhook:
// "v1=" and the hex HMAC-SHA256 of the decimal timestamp, ".", and body.
func SignEvict(secret []byte, timestamp int64, body []byte) string {
	mac := evictMAC(secret, strconv.AppendInt(nil, timestamp, 10), body)
	return evictSignatureScheme + hex.EncodeToString(mac[:])
}

func evictFail(c *fiber.Ctx, status int, code, msg string) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Status(status).Send(envelope(&Error{Status: status, Code: code, Message: msg}))
}

// EvictUser drops every cached answer the user index lists for userID (an
// allauth user id, as in introspect.User.ID): all of the user's sessions,
// tokens and cookies alike, ask allauth on their next request. It returns how
// many entries were cached. It needs Config.UserIndex (or a Cache made with
// cache.Config.UserIndex), else it returns cache.ErrNoUserIndex. With a
// shared Storage the index is shared and one call reaches every instance;
// in process it reaches this one.
func (m *Middleware) EvictUser(ctx context.Context, userID string) (int, error) {
	return m.cache.DeleteUser(ctx, userID)
}

// evictToken is Evict, counting the entries that were cached.
func (m *Middleware) evictToken(ctx context.Context, token string) (int, error) {
	kinds := [...]introspect.Kind{introspect.SessionToken, introspect.Cookie, introspect.Bearer}
	var keys [len(kinds)]cache.Key
	for i, kind := range kinds {
		keys[i] = cache.NewKey(cache.NewScope(kind, m.client.Endpoint(kind)), token)
	}
	return m.cache.Drop(ctx, keys[:]...)
}

// replaySet remembers accepted signatures until they would be stale anyway.
// It is bounded: when full, the oldest signature is forgotten first.
type replaySet struct {
	mu   sync.Mutex
	max  int
	seen map[[sha256.Size]byte]int64 // signature → expiry, Unix nanoseconds
	fifo []replayRec                 // a ring, in insertion order
	head int
	n    int
}

type replayRec struct {
	sig     [sha256.Size]byte
	expires int64
}

func newReplaySet(maxEntries int) *replaySet {
	return &replaySet{max: maxEntries, seen: make(map[[sha256.Size]byte]int64)}
}

// add records sig until expires and reports whether it was new (or its
// earlier record had expired).
func (r *replaySet) add(sig [sha256.Size]byte, expires, now int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Records are about in expiry order (timestamps are within ±MaxSkew of
	// now): drop the expired ones at the head.
	for r.n > 0 && r.fifo[r.head].expires <= now {
		r.pop()
	}
	if exp, ok := r.seen[sig]; ok && exp > now {
		return false
	}
	if r.n == r.max {
		r.pop()
	}
	if r.n == len(r.fifo) { // grow the ring, up to max
		grown := make([]replayRec, min(max(2*len(r.fifo), 64), r.max))
		for i := range r.n {
			grown[i] = r.fifo[(r.head+i)%len(r.fifo)]
		}
		r.fifo, r.head = grown, 0
	}
	r.fifo[(r.head+r.n)%len(r.fifo)] = replayRec{sig: sig, expires: expires}
	r.n++
	r.seen[sig] = expires
	return true
}

func (r *replaySet) pop() {
	rec := r.fifo[r.head]
	if r.seen[rec.sig] == rec.expires { // not re-added since
		delete(r.seen, rec.sig)
	}
	r.head = (r.head + 1) % len(r.fifo)
	r.n--
}
