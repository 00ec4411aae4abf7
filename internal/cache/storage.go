package cache

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/allauthgo/headless/introspect"
)

// Defaults for [storageStore].
const (
	DefaultPrefix       = "allauthgo:"
	DefaultStoreTimeout = 50 * time.Millisecond
)

// ErrStoreUnavailable is returned, without touching the storage, while a
// storageStore rests after repeated failures.
var ErrStoreUnavailable = errors.New("cache: shared store unavailable, resting after failures")

// errCorrupt marks a value this package did not write, or wrote in a format
// it no longer reads; errForged one whose MAC does not match its key.
var (
	errCorrupt = errors.New("cache: unreadable value in shared store")
	errForged  = errors.New("cache: value in shared store fails its MAC")
)

// storageWithContext is what gofiber/storage drivers (redis/v3 among them)
// offer beyond Storage: operations that stop when a context ends.
type storageWithContext interface {
	GetWithContext(ctx context.Context, key string) ([]byte, error)
	SetWithContext(ctx context.Context, key string, val []byte, exp time.Duration) error
	DeleteWithContext(ctx context.Context, key string) error
}

// errStoreBusy is returned, without touching the storage, when
// maxAbandoned operations of a driver without a bounded client are still
// running after their timeout: the driver is stalled, and waiting on it in
// more goroutines would only grow their number.
var errStoreBusy = errors.New("cache: shared store stalled, too many operations still running")

// maxAbandoned bounds the operations of a driver that the Cache cannot bound
// itself (see storageStore.run) that may still be running after the caller
// stopped waiting.
const maxAbandoned = 64

// storageStore keeps entries in a Storage (Redis, Memcached, ...), so that
// several instances share them.
//
// Each operation is bounded by a short timeout (StoreTimeout), whatever the
// driver's own settings: with gofiber/storage's Redis driver every command
// goes through the Cache's own go-redis client, which honours the deadline
// (see redisClient); any other driver is waited for at most the timeout, and
// at most maxAbandoned of its operations may run on past it (errStoreBusy
// beyond). After three failures in a row the store rests for a second,
// answering ErrStoreUnavailable at once, so a dead Redis costs requests
// nothing but the cache (deletes of an eviction are tried all the same).
// Everything read back is untrusted: a value this version cannot read, or
// (with a secret) one whose MAC does not match its key, is a miss, never a
// login.
type storageStore struct {
	storage Storage
	// withCtx is the Cache's own Redis client when there is one, else the
	// driver's context methods, else nil.
	withCtx storageWithContext
	redis   *redisClient  // nil unless the driver is go-redis based
	running chan struct{} // one token per operation running (other drivers)
	prefix  string
	secret  []byte // nil: values are not authenticated
	timeout time.Duration

	fails     atomic.Int32
	restUntil atomic.Int64
	busy      atomic.Int64 // operations refused with errStoreBusy
}

// newStorageStore wraps storage. Keys are prefix + hex(Key) (prefix ""
// means DefaultPrefix); each operation is bounded by timeout (<= 0 means
// DefaultStoreTimeout); a non-empty secret authenticates every value with
// its key. The caller keeps ownership of storage.
func newStorageStore(storage Storage, prefix string, timeout time.Duration, secret []byte) *storageStore {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if timeout <= 0 {
		timeout = DefaultStoreTimeout
	}
	s := &storageStore{storage: storage, prefix: prefix, timeout: timeout}
	if len(secret) > 0 {
		s.secret = bytes.Clone(secret)
	}
	if s.redis = newRedisClient(storage); s.redis != nil {
		s.withCtx = s.redis
	} else {
		s.withCtx, _ = storage.(storageWithContext)
		s.running = make(chan struct{}, maxAbandoned)
	}
	return s
}

// close closes the Cache's own Redis client, if any (the Storage itself
// belongs to the caller).
func (s *storageStore) close() error {
	if s.redis == nil {
		return nil
	}
	return s.redis.close()
}

// storageKey returns the key under which an entry is stored.
func (s *storageStore) storageKey(key Key) string { return s.prefix + key.String() }

// Get reads and decodes the entry under key. A value that cannot be decoded
// is reported as an error (and so counted) and is a miss.
func (s *storageStore) Get(ctx context.Context, key Key) (*entry, error) {
	var raw []byte
	err := s.do(ctx, func(ctx context.Context) error {
		var err error
		if s.withCtx != nil {
			raw, err = s.withCtx.GetWithContext(ctx, s.storageKey(key))
		} else {
			raw, err = s.storage.Get(s.storageKey(key))
		}
		return err
	})
	if err != nil || len(raw) == 0 {
		return nil, err
	}
	return decodeEntry(raw, s.mac(s.storageKey(key)))
}

// Set encodes e and stores it for ttl.
func (s *storageStore) Set(ctx context.Context, key Key, e *entry, ttl time.Duration) error {
	val, err := encodeEntry(e, s.mac(s.storageKey(key)))
	if err != nil {
		return err
	}
	return s.do(ctx, func(ctx context.Context) error {
		if s.withCtx != nil {
			return s.withCtx.SetWithContext(ctx, s.storageKey(key), val, ttl)
		}
		return s.storage.Set(s.storageKey(key), val, ttl)
	})
}

// Delete removes the entry under key.
func (s *storageStore) Delete(ctx context.Context, key Key) error {
	return s.do(ctx, func(ctx context.Context) error {
		if s.withCtx != nil {
			return s.withCtx.DeleteWithContext(ctx, s.storageKey(key))
		}
		return s.storage.Delete(s.storageKey(key))
	})
}

// mac returns the MAC of values stored under storageKey, or nil without a
// secret. Binding the full key (prefix included) means a valid value copied
// under another token's key, or another deployment's prefix, fails the check.
func (s *storageStore) mac(storageKey string) hash.Hash {
	if s.secret == nil {
		return nil
	}
	h := hmac.New(sha256.New, s.secret)
	h.Write([]byte(storageKey))
	return h
}

// purge is Delete even while the store rests: for a positive answer that
// allauth has just refused, which must not outlive the refusal (a delete
// also works on a Redis too full to take the negative answer).
func (s *storageStore) purge(ctx context.Context, key Key) error {
	return s.run(ctx, func(ctx context.Context) error {
		if s.withCtx != nil {
			return s.withCtx.DeleteWithContext(ctx, s.storageKey(key))
		}
		return s.storage.Delete(s.storageKey(key))
	})
}

// do runs op within the store's timeout and keeps the failure streak; while
// the store rests it fails at once.
func (s *storageStore) do(ctx context.Context, op func(context.Context) error) error {
	if until := s.restUntil.Load(); until != 0 && time.Now().UnixNano() < until {
		return ErrStoreUnavailable
	}
	return s.run(ctx, op)
}

// run runs op within the store's timeout, even while the store rests, and
// keeps the failure streak.
func (s *storageStore) run(ctx context.Context, op func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var err error
	if s.redis != nil {
		err = op(ctx) // the own client honours ctx's deadline
	} else {
		err = s.runBounded(ctx, op)
	}
	return s.note(err)
}

// note keeps the failure streak: three failures in a row and the store rests
// for a second. It returns err, wrapped.
func (s *storageStore) note(err error) error {
	if err != nil {
		if s.fails.Add(1) >= 3 {
			s.restUntil.Store(time.Now().Add(time.Second).UnixNano())
			s.fails.Store(0)
		}
		return fmt.Errorf("cache: shared store: %w", err)
	}
	s.fails.Store(0)
	return nil
}

// runBounded waits for op at most until ctx ends. A driver that ignores
// ctx may go on in the background until its own timeout; at most
// maxAbandoned such operations run at once, and beyond that runBounded fails
// at once with errStoreBusy (counted in busy), so that a stalled driver
// cannot grow the goroutines without bound.
func (s *storageStore) runBounded(ctx context.Context, op func(context.Context) error) error {
	select {
	case s.running <- struct{}{}:
	default:
		s.busy.Add(1)
		return errStoreBusy
	}
	done := make(chan error, 1)
	go func() {
		defer func() { <-s.running }()
		done <- op(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Value format, version 2:
//
//	byte 0       magic 0xA7
//	byte 1       format version (2)
//	byte 2       1 = authenticated (200), 2 = 401, 3 = 410
//	bytes 3-10   ObtainedAt, Unix nanoseconds, big endian
//	bytes 11-18  FreshUntil, the writer's limit
//	bytes 19-26  StaleUntil, the writer's limit (0: never stale)
//	bytes 27-    for 200 only: the session as allauth's data JSON
//	last 32      with a secret only: HMAC-SHA256(secret, storage key || all
//	             bytes before it)
//
// Version 1 values (FreshUntil only, trusted as written) are not read: they
// are misses, and are replaced on the next fetch.
const (
	valueMagic   = 0xA7
	valueVersion = 2
	headerLen    = 27
)

func encodeEntry(e *entry, mac hash.Hash) ([]byte, error) {
	var kind byte
	switch e.Status {
	case http.StatusOK:
		kind = 1
	case http.StatusUnauthorized:
		kind = 2
	case http.StatusGone:
		kind = 3
	default:
		return nil, fmt.Errorf("cache: cannot store status %d", e.Status)
	}
	if (kind == 1) != (e.Session != nil) {
		return nil, errors.New("cache: status and session disagree")
	}
	buf := make([]byte, headerLen, headerLen+512)
	buf[0], buf[1], buf[2] = valueMagic, valueVersion, kind
	binary.BigEndian.PutUint64(buf[3:], uint64(e.ObtainedAt))  //nolint:gosec // a round trip of the same int64
	binary.BigEndian.PutUint64(buf[11:], uint64(e.FreshUntil)) //nolint:gosec // a round trip of the same int64
	binary.BigEndian.PutUint64(buf[19:], uint64(e.StaleUntil)) //nolint:gosec // a round trip of the same int64
	if e.Session != nil {
		js, err := json.Marshal(e.Session)
		if err != nil {
			return nil, err
		}
		buf = append(buf, js...)
	}
	if mac != nil {
		mac.Write(buf)
		buf = mac.Sum(buf)
	}
	return buf, nil
}

// decodeEntry reads a stored value. With mac (a secret is set) the value
// must end in a matching MAC; without, a MAC is not expected.
func decodeEntry(b []byte, mac hash.Hash) (*entry, error) {
	if mac != nil {
		if len(b) < headerLen+sha256.Size {
			return nil, errCorrupt
		}
		body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
		mac.Write(body)
		if !hmac.Equal(mac.Sum(nil), sum) {
			return nil, errForged
		}
		b = body
	}
	if len(b) < headerLen || b[0] != valueMagic || b[1] != valueVersion {
		return nil, errCorrupt
	}
	e := &entry{
		ObtainedAt: int64(binary.BigEndian.Uint64(b[3:])),  //nolint:gosec // a round trip of the same int64
		FreshUntil: int64(binary.BigEndian.Uint64(b[11:])), //nolint:gosec // a round trip of the same int64
		StaleUntil: int64(binary.BigEndian.Uint64(b[19:])), //nolint:gosec // a round trip of the same int64
	}
	body := b[headerLen:]
	switch b[2] {
	case 1:
		var s introspect.Session
		if err := json.Unmarshal(body, &s); err != nil || s.User.ID == "" {
			return nil, errCorrupt
		}
		e.Status, e.Session = http.StatusOK, &s
	case 2, 3:
		if len(body) != 0 || e.StaleUntil != 0 {
			return nil, errCorrupt
		}
		e.Status = http.StatusUnauthorized
		if b[2] == 3 {
			e.Status = http.StatusGone
		}
	default:
		return nil, errCorrupt
	}
	return e, nil
}
