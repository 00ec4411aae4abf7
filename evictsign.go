package headless

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"
)

// evictSig is an authentic request's signature, and until when it must be
// remembered to refuse its replay (Unix nanoseconds).
type evictSig struct {
	mac     [sha256.Size]byte
	expires int64
}

// authenticate checks the signature headers against body. It returns the
// signature, or an error code and message when the request is not
// authentic, not fresh, or a replay of one already applied. It does not
// record the signature: ServeHTTP does once the eviction is applied.
func (e *evictor) authenticate(h http.Header, body []byte) (sig evictSig, code, msg string) {
	tsRaw, sigRaw := []byte(h.Get(HeaderEvictTimestamp)), []byte(h.Get(HeaderEvictSignature))
	if len(tsRaw) == 0 || len(sigRaw) == 0 {
		return sig, codeEvictUnsigned, "The request is not signed."
	}
	ts, ok := parseUnixSeconds(tsRaw)
	if !ok {
		return sig, codeEvictBadTimestamp, "The timestamp is not Unix seconds."
	}
	now := e.cfg.Now()
	skew := now.Sub(time.Unix(ts, 0))
	if skew > e.cfg.MaxSkew || skew < -e.cfg.MaxSkew {
		return sig, codeEvictStale, "The timestamp is too far from this server's clock."
	}
	var got [sha256.Size]byte
	if !bytes.HasPrefix(sigRaw, []byte(evictSignatureScheme)) ||
		hex.DecodedLen(len(sigRaw)-len(evictSignatureScheme)) != len(got) {
		return sig, codeEvictBadSignature, "The signature is not v1=<64 hex digits>."
	}
	if _, err := hex.Decode(got[:], sigRaw[len(evictSignatureScheme):]); err != nil {
		return sig, codeEvictBadSignature, "The signature is not v1=<64 hex digits>."
	}
	valid := false
	for _, secret := range e.secrets {
		// Every secret is tried, so the time taken does not say which matched.
		want := evictMAC(secret, tsRaw, body)
		valid = hmac.Equal(got[:], want[:]) || valid
	}
	if !valid {
		return sig, codeEvictBadSignature, "The signature does not match the body."
	}
	if e.replays.has(got, now.UnixNano()) {
		return sig, codeEvictReplayed, "This request was already accepted."
	}
	// Remembered until the timestamp is stale, plus a second of margin.
	expires := time.Unix(ts, 0).Add(e.cfg.MaxSkew + time.Second).UnixNano()
	return evictSig{mac: got, expires: expires}, "", ""
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
