package cache

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"sync"
	"sync/atomic"
	"time"
)

// MaxKeysPerUser bounds how many keys the user index keeps for one user:
// when a user's sessions fill it, the key that expires first is forgotten
// (its entry stays cached, and ends at its TTL).
const MaxKeysPerUser = 32

// ErrNoUserIndex is returned by [Cache.EvictUser] when the Cache keeps no
// user index (Config.UserIndex is off).
var ErrNoUserIndex = errors.New("cache: no user index (set Config.UserIndex)")

// userIndexer remembers which keys hold a user's authenticated entries, so
// that [Cache.EvictUser] can find them. [memoryStore] keeps the index in
// process; [storageStore] keeps it in the shared Storage, where every
// instance sees it. User ids are scoped by Config.Realm (see indexID): user
// "1" of two allauth servers sharing a Storage are two users.
//
// The index is a hint, never an answer: a key it lists may have expired or
// been deleted (deleting it again is harmless), and a key it lost (see the
// bounds of each store) still expires at its TTL.
type userIndexer interface {
	// addUserKey records that key holds an entry of userID for ttl. untrusted
	// counts entries found in the index that failed their MAC (dropped).
	addUserKey(ctx context.Context, userID string, key Key, ttl time.Duration) (untrusted int, err error)
	// userKeys returns the unexpired keys recorded for userID; untrusted
	// counts entries that failed their MAC (left out).
	userKeys(ctx context.Context, userID string) (keys []Key, untrusted int, err error)
}

// indexUser records key under the session's user, when the Cache keeps a
// user index. It runs only when an authenticated entry is stored, never on a
// hit.
func (c *Cache) indexUser(ctx context.Context, userID string, key Key, ttl time.Duration) {
	if c.users == nil || userID == "" {
		return
	}
	untrusted, err := c.users.addUserKey(ctx, c.indexID(userID), key, ttl)
	c.stats.storeErrors.Add(int64(untrusted))
	if err != nil {
		c.stats.storeErrors.Add(1)
	}
}

// indexID scopes a user id by the realm (allauth's origin and mount).
func (c *Cache) indexID(userID string) string { return c.realm + "\x00" + userID }

// EvictUser drops every entry the user index lists for userID (an
// allauth user id, as in introspect.User.ID), so that the next request
// carrying any of the user's credentials asks allauth. It returns how many
// entries were there. Without a user index it returns ErrNoUserIndex.
//
// With Storage the index is shared: one call reaches the entries every
// instance stored (and, with Redis, their in-process copies). Without, it
// reaches this process only. With Config.Secret, entries of the shared index
// that fail their MAC (written by someone without the secret) are left out
// and counted in Stats.StoreErrors; the user's other keys are still evicted.
func (c *Cache) EvictUser(ctx context.Context, userID string) (int, error) {
	if c.users == nil {
		return 0, ErrNoUserIndex
	}
	keys, untrusted, err := c.users.userKeys(ctx, c.indexID(userID))
	c.stats.storeErrors.Add(int64(untrusted))
	if err != nil {
		c.stats.storeErrors.Add(1)
		return 0, err
	}
	return c.Evict(ctx, keys...)
}

// userKey is one key of a user with its expiry (Unix nanoseconds).
type userKey struct {
	key     Key
	expires int64
}

// pruneUserKeys removes from ks the expired keys and key itself (which is
// about to be added again), in place.
func pruneUserKeys(ks []userKey, key Key, now int64) []userKey {
	out := ks[:0]
	for _, k := range ks {
		if k.expires > now && k.key != key {
			out = append(out, k)
		}
	}
	clear(ks[len(out):])
	return out
}

// dropEarliest removes the key that expires first, in place.
func dropEarliest(ks []userKey) []userKey {
	first := 0
	for i, k := range ks {
		if k.expires < ks[first].expires {
			first = i
		}
	}
	ks[first] = ks[len(ks)-1]
	return ks[:len(ks)-1]
}

// memUserIndex is memoryStore's user index. Its zero value is ready.
//
// It holds at most MaxKeysPerUser keys per user and, in all, as many keys as
// the authenticated table holds entries (MaxEntries): every key it lists is
// (or was) an authenticated entry. When full, expired keys go first (a sweep,
// at most once per second); if it is still full the new key is not indexed,
// as the tables decline new entries, and its entry ends at its TTL.
type memUserIndex struct {
	mu        sync.Mutex
	users     map[string][]userKey
	total     int
	lastSweep int64
	rejected  atomic.Int64
}

func (ix *memUserIndex) add(userID string, key Key, expires, now int64, maxTotal int) bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.users == nil {
		ix.users = make(map[string][]userKey)
	}
	ks := ix.users[userID]
	before := len(ks)
	ks = pruneUserKeys(ks, key, now)
	if len(ks) >= MaxKeysPerUser {
		ks = dropEarliest(ks)
	}
	ix.total -= before - len(ks)
	if ix.total >= maxTotal && now-ix.lastSweep >= int64(time.Second) {
		ix.users[userID] = ks // the sweep must see this user's pruned keys
		ix.lastSweep = now
		ix.sweepLocked(now)
		ks = ix.users[userID]
	}
	if ix.total >= maxTotal {
		if len(ks) == 0 {
			delete(ix.users, userID)
		} else {
			ix.users[userID] = ks
		}
		ix.rejected.Add(1)
		return false
	}
	ix.users[userID] = append(ks, userKey{key: key, expires: expires})
	ix.total++
	return true
}

func (ix *memUserIndex) keys(userID string, now int64) []Key {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	var out []Key
	for _, k := range ix.users[userID] {
		if k.expires > now {
			out = append(out, k.key)
		}
	}
	return out
}

func (ix *memUserIndex) sweep(now int64) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.sweepLocked(now)
}

func (ix *memUserIndex) sweepLocked(now int64) {
	for id, ks := range ix.users {
		before := len(ks)
		ks = pruneUserKeys(ks, Key{}, now)
		ix.total -= before - len(ks)
		if len(ks) == 0 {
			delete(ix.users, id)
		} else {
			ix.users[id] = ks
		}
	}
}

func (ix *memUserIndex) len() int {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.total
}

// AddUserKey records key under userID in process (see [memUserIndex] for
// the bounds). It never fails.
func (s *memoryStore) AddUserKey(_ context.Context, userID string, key Key, ttl time.Duration) error {
	now := s.now().UnixNano()
	s.users.add(userID, key, now+int64(ttl), now, s.max)
	return nil
}

// UserKeys returns the unexpired keys recorded for userID. It never fails.
func (s *memoryStore) UserKeys(_ context.Context, userID string) ([]Key, error) {
	return s.users.keys(userID, s.now().UnixNano()), nil
}

func (s *memoryStore) addUserKey(ctx context.Context, userID string, key Key, ttl time.Duration) (int, error) {
	return 0, s.AddUserKey(ctx, userID, key, ttl)
}

func (s *memoryStore) userKeys(ctx context.Context, userID string) ([]Key, int, error) {
	keys, err := s.UserKeys(ctx, userID)
	return keys, 0, err
}

// IndexedKeys returns how many keys the user index holds, expired ones not
// yet swept included.
func (s *memoryStore) IndexedKeys() int { return s.users.len() }

// IndexRejected returns how many keys the user index declined because it
// was full.
func (s *memoryStore) IndexRejected() int64 { return s.users.rejected.Load() }

// The storageStore keeps one value per user, under prefix + "u:" +
// hex(SHA-256(user id)), with the TTL of the user's latest-expiring key.
//
//	byte 0   magic 0xA8
//	byte 1   format version: 1 without a secret, 2 with one
//	then, per key, the Key (32 bytes), its expiry (Unix nanoseconds, 8
//	bytes, big endian) and, in version 2 only, a MAC (32 bytes):
//	HMAC-SHA256(secret, "allauthgo user index" 0x00 || the index's storage
//	key || 0x00 || Key || expiry)
//
// Version 1 holds at most MaxKeysPerUser keys, and a value that breaks the
// format is unreadable as a whole. In version 2 each entry stands alone: one
// that fails its MAC (forged, altered, or copied from another user's index)
// is left out and counted, and the others still count, so a writer without
// the secret cannot hide a user's keys by adding entries; a reader checks at
// most maxIndexEntries entries of one value.
//
// Adding a key is a read, then a write, of that value. Two instances storing
// two new sessions of one user within the same round trip to the storage
// can lose one of the two keys from the index (the last write wins); that
// entry then ends at its TTL instead of at EvictUser. A value this version
// cannot read is overwritten by the next add, and EvictUser reports it.
const (
	userIndexMagic      = 0xA8
	userIndexVersion    = 1
	userIndexVersionMAC = 2
	userKeyLen          = len(Key{}) + 8
	userKeyMACLen       = userKeyLen + sha256.Size
	// maxIndexEntries bounds the entries of one index value a reader
	// checks (and so the MACs it computes): a forger can pad a value, never
	// make a reader work through it all.
	maxIndexEntries = 8 * MaxKeysPerUser
)

// userStorageKey returns the key under which the index of userID (scoped
// by the realm) is stored.
func (s *storageStore) userStorageKey(userID string) string {
	sum := sha256.Sum256([]byte(userID))
	return s.prefix + "u:" + hex.EncodeToString(sum[:])
}

// AddUserKey records key under userID in the shared storage (see the format
// above for the race it accepts).
func (s *storageStore) AddUserKey(ctx context.Context, userID string, key Key, ttl time.Duration) error {
	_, err := s.addUserKey(ctx, userID, key, ttl)
	return err
}

func (s *storageStore) addUserKey(ctx context.Context, userID string, key Key, ttl time.Duration) (int, error) {
	sk := s.userStorageKey(userID)
	raw, err := s.getRaw(ctx, sk)
	if err != nil {
		return 0, err
	}
	ks, untrusted, err := s.decodeIndex(sk, raw)
	if err != nil { // an unreadable value is replaced
		ks, untrusted = nil, 1
	}
	now := time.Now().UnixNano()
	ks = pruneUserKeys(ks, key, now)
	if len(ks) >= MaxKeysPerUser {
		ks = dropEarliest(ks)
	}
	ks = append(ks, userKey{key: key, expires: now + int64(ttl)})
	last := ks[0].expires
	for _, k := range ks {
		last = max(last, k.expires)
	}
	return untrusted, s.setRaw(ctx, sk, s.encodeIndex(sk, ks), time.Duration(last-now))
}

// UserKeys returns the unexpired keys recorded for userID in the shared
// storage. Entries that fail their MAC are left out.
func (s *storageStore) UserKeys(ctx context.Context, userID string) ([]Key, error) {
	keys, _, err := s.userKeys(ctx, userID)
	return keys, err
}

func (s *storageStore) userKeys(ctx context.Context, userID string) ([]Key, int, error) {
	sk := s.userStorageKey(userID)
	raw, err := s.getRaw(ctx, sk)
	if err != nil {
		return nil, 0, err
	}
	ks, untrusted, err := s.decodeIndex(sk, raw)
	if err != nil {
		return nil, 0, err
	}
	now := time.Now().UnixNano()
	var out []Key
	for _, k := range ks {
		if k.expires > now {
			out = append(out, k.key)
		}
	}
	return out, untrusted, nil
}

// encodeIndex encodes ks for the index under sk: version 2 (each entry
// with its MAC) with a secret, else version 1.
func (s *storageStore) encodeIndex(sk string, ks []userKey) []byte {
	if s.secret == nil {
		return encodeUserKeys(ks)
	}
	buf := make([]byte, 2, 2+len(ks)*userKeyMACLen)
	buf[0], buf[1] = userIndexMagic, userIndexVersionMAC
	for _, k := range ks {
		start := len(buf)
		buf = append(buf, k.key[:]...)
		buf = binary.BigEndian.AppendUint64(buf, uint64(k.expires)) //nolint:gosec // a round trip of the same int64
		buf = s.indexMAC(sk, buf[start:]).Sum(buf)
	}
	return buf
}

// indexMAC returns the MAC of one index entry (key and expiry) of the
// index under sk, written but not summed.
func (s *storageStore) indexMAC(sk string, entry []byte) hash.Hash {
	h := hmac.New(sha256.New, s.secret)
	h.Write([]byte("allauthgo user index\x00"))
	h.Write([]byte(sk))
	h.Write([]byte{0})
	h.Write(entry)
	return h
}

// decodeIndex reads the index value under sk. Without a secret it is
// decodeUserKeys. With one, only version 2 is read (anything else is
// errCorrupt, as a whole), and each entry is checked on its own: untrusted
// counts those that fail their MAC, and a trailing partial entry or
// entries past maxIndexEntries; the rest are returned (at most
// MaxKeysPerUser, the latest-expiring, each key once).
func (s *storageStore) decodeIndex(sk string, b []byte) (ks []userKey, untrusted int, err error) {
	if s.secret == nil {
		ks, err = decodeUserKeys(b)
		return ks, 0, err
	}
	if len(b) == 0 {
		return nil, 0, nil
	}
	if len(b) < 2 || b[0] != userIndexMagic || b[1] != userIndexVersionMAC {
		return nil, 0, errCorrupt
	}
	p := b[2:]
	n := len(p) / userKeyMACLen
	if len(p)%userKeyMACLen != 0 {
		untrusted++
	}
	if n > maxIndexEntries {
		untrusted += n - maxIndexEntries
		n = maxIndexEntries
	}
	var sum [sha256.Size]byte
	for i := range n {
		e := p[i*userKeyMACLen : (i+1)*userKeyMACLen]
		body, mac := e[:userKeyLen], e[userKeyLen:]
		if !hmac.Equal(s.indexMAC(sk, body).Sum(sum[:0]), mac) {
			untrusted++
			continue
		}
		var k userKey
		copy(k.key[:], body)
		k.expires = int64(binary.BigEndian.Uint64(body[len(Key{}):])) //nolint:gosec // a round trip of the same int64
		ks = addNewest(ks, k)
	}
	return ks, untrusted, nil
}

// addNewest adds k to ks, once per key (the later expiry wins) and keeping
// at most MaxKeysPerUser (the latest-expiring): authentic entries can only
// exceed that by a replay of older values.
func addNewest(ks []userKey, k userKey) []userKey {
	for i := range ks {
		if ks[i].key == k.key {
			ks[i].expires = max(ks[i].expires, k.expires)
			return ks
		}
	}
	if len(ks) < MaxKeysPerUser {
		return append(ks, k)
	}
	first := 0
	for i := range ks {
		if ks[i].expires < ks[first].expires {
			first = i
		}
	}
	if k.expires > ks[first].expires {
		ks[first] = k
	}
	return ks
}

func (s *storageStore) getRaw(ctx context.Context, key string) ([]byte, error) {
	var raw []byte
	err := s.do(ctx, func(ctx context.Context) error {
		var err error
		if s.withCtx != nil {
			raw, err = s.withCtx.GetWithContext(ctx, key)
		} else {
			raw, err = s.storage.Get(key)
		}
		return err
	})
	return raw, err
}

func (s *storageStore) setRaw(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	return s.do(ctx, func(ctx context.Context) error {
		if s.withCtx != nil {
			return s.withCtx.SetWithContext(ctx, key, val, ttl)
		}
		return s.storage.Set(key, val, ttl)
	})
}

func encodeUserKeys(ks []userKey) []byte {
	buf := make([]byte, 2, 2+len(ks)*userKeyLen)
	buf[0], buf[1] = userIndexMagic, userIndexVersion
	for _, k := range ks {
		buf = append(buf, k.key[:]...)
		buf = binary.BigEndian.AppendUint64(buf, uint64(k.expires)) //nolint:gosec // a round trip of the same int64
	}
	return buf
}

// decodeUserKeys reads a user's index value; nil or empty is no keys.
func decodeUserKeys(b []byte) ([]userKey, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if len(b) < 2 || b[0] != userIndexMagic || b[1] != userIndexVersion ||
		(len(b)-2)%userKeyLen != 0 || (len(b)-2)/userKeyLen > MaxKeysPerUser {
		return nil, errCorrupt
	}
	ks := make([]userKey, 0, (len(b)-2)/userKeyLen+1)
	for p := b[2:]; len(p) > 0; p = p[userKeyLen:] {
		var k userKey
		copy(k.key[:], p)
		k.expires = int64(binary.BigEndian.Uint64(p[len(Key{}):])) //nolint:gosec // a round trip of the same int64
		ks = append(ks, k)
	}
	return ks, nil
}
