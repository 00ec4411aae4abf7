package cache

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/allauthgo/headless/introspect"
)

// Defaults for [StorageStore].
const (
	DefaultPrefix       = "allauthgo:"
	DefaultStoreTimeout = 50 * time.Millisecond
)

// ErrStoreUnavailable is returned, without touching the storage, while a
// StorageStore rests after repeated failures.
var ErrStoreUnavailable = errors.New("cache: shared store unavailable, resting after failures")

// errCorrupt marks a value this package did not write, or wrote in a format
// it no longer reads.
var errCorrupt = errors.New("cache: unreadable value in shared store")

// storageWithContext is what gofiber/storage drivers (redis/v3 among them)
// offer beyond fiber.Storage: operations that stop when a context ends.
type storageWithContext interface {
	GetWithContext(ctx context.Context, key string) ([]byte, error)
	SetWithContext(ctx context.Context, key string, val []byte, exp time.Duration) error
	DeleteWithContext(ctx context.Context, key string) error
}

// StorageStore keeps entries in a fiber.Storage (Redis, Memcached, ...), so
// that several instances share them and an eviction reaches all of them.
//
// Each operation is bounded by a short timeout; after three failures in a row
// the store rests for a second, answering ErrStoreUnavailable at once, so a
// dead Redis costs requests nothing but the cache. Values carry a format
// version; one this version cannot read is a miss, never a login.
type StorageStore struct {
	storage   fiber.Storage
	withCtx   storageWithContext // nil when the driver has no context methods
	prefix    string
	timeout   time.Duration
	fails     atomic.Int32
	restUntil atomic.Int64
}

// NewStorageStore wraps storage. Keys are prefix + hex(Key) (prefix ""
// means DefaultPrefix); each operation is bounded by timeout (<= 0 means
// DefaultStoreTimeout). The caller keeps ownership of storage: Close does not
// close it.
func NewStorageStore(storage fiber.Storage, prefix string, timeout time.Duration) *StorageStore {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if timeout <= 0 {
		timeout = DefaultStoreTimeout
	}
	s := &StorageStore{storage: storage, prefix: prefix, timeout: timeout}
	s.withCtx, _ = storage.(storageWithContext)
	return s
}

// StorageKey returns the key under which an entry is stored.
func (s *StorageStore) StorageKey(key Key) string { return s.prefix + key.String() }

// Get reads and decodes the entry under key. A value that cannot be decoded
// is reported as an error (and so counted) and is a miss.
func (s *StorageStore) Get(ctx context.Context, key Key) (*Entry, error) {
	var raw []byte
	err := s.do(ctx, func(ctx context.Context) error {
		var err error
		if s.withCtx != nil {
			raw, err = s.withCtx.GetWithContext(ctx, s.StorageKey(key))
		} else {
			raw, err = s.storage.Get(s.StorageKey(key))
		}
		return err
	})
	if err != nil || len(raw) == 0 {
		return nil, err
	}
	return decodeEntry(raw)
}

// Set encodes e and stores it for ttl.
func (s *StorageStore) Set(ctx context.Context, key Key, e *Entry, ttl time.Duration) error {
	val, err := encodeEntry(e)
	if err != nil {
		return err
	}
	return s.do(ctx, func(ctx context.Context) error {
		if s.withCtx != nil {
			return s.withCtx.SetWithContext(ctx, s.StorageKey(key), val, ttl)
		}
		return s.storage.Set(s.StorageKey(key), val, ttl)
	})
}

// Delete removes the entry under key.
func (s *StorageStore) Delete(ctx context.Context, key Key) error {
	return s.do(ctx, func(ctx context.Context) error {
		if s.withCtx != nil {
			return s.withCtx.DeleteWithContext(ctx, s.StorageKey(key))
		}
		return s.storage.Delete(s.StorageKey(key))
	})
}

// Len is -1: a shared store cannot count its entries cheaply.
func (s *StorageStore) Len() int { return -1 }

// Close does nothing: the storage belongs to the caller.
func (s *StorageStore) Close() error { return nil }

// do runs op within the store's timeout and keeps the failure streak.
func (s *StorageStore) do(ctx context.Context, op func(context.Context) error) error {
	if until := s.restUntil.Load(); until != 0 && time.Now().UnixNano() < until {
		return ErrStoreUnavailable
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var err error
	if s.withCtx != nil {
		err = op(ctx)
	} else {
		err = runBounded(ctx, op)
	}
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

// runBounded waits for op at most until ctx ends. A driver without context
// support may go on in the background; it finishes on its own timeout.
func runBounded(ctx context.Context, op func(context.Context) error) error {
	done := make(chan error, 1)
	go func() { done <- op(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Value format, version 1:
//
//	byte 0      magic 0xA7
//	byte 1      format version (1)
//	byte 2      1 = authenticated (200), 2 = 401, 3 = 410
//	bytes 3-10  FreshUntil, Unix nanoseconds, big endian
//	bytes 11-   for 200 only: the session as allauth's data JSON
const (
	valueMagic   = 0xA7
	valueVersion = 1
	headerLen    = 11
)

func encodeEntry(e *Entry) ([]byte, error) {
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
	buf := make([]byte, headerLen, headerLen+512)
	buf[0], buf[1], buf[2] = valueMagic, valueVersion, kind
	binary.BigEndian.PutUint64(buf[3:], uint64(e.FreshUntil)) //nolint:gosec // a round trip of the same int64
	if e.Session == nil {
		if kind == 1 {
			return nil, errors.New("cache: authenticated entry without a session")
		}
		return buf, nil
	}
	js, err := json.Marshal(e.Session)
	if err != nil {
		return nil, err
	}
	return append(buf, js...), nil
}

func decodeEntry(b []byte) (*Entry, error) {
	if len(b) < headerLen || b[0] != valueMagic || b[1] != valueVersion {
		return nil, errCorrupt
	}
	e := &Entry{FreshUntil: int64(binary.BigEndian.Uint64(b[3:]))} //nolint:gosec // a round trip of the same int64
	body := b[headerLen:]
	switch b[2] {
	case 1:
		var s introspect.Session
		if err := json.Unmarshal(body, &s); err != nil {
			return nil, errCorrupt
		}
		e.Status, e.Session = http.StatusOK, &s
	case 2, 3:
		if len(body) != 0 {
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
