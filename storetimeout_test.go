package headless

import (
	"context"
	"sync"
	"testing"
	"time"
)

// deadlineStorage is a shared store that answers at once and records how
// long each read was allowed to take.
type deadlineStorage struct {
	mu    sync.Mutex
	given []time.Duration
}

func (s *deadlineStorage) GetWithContext(ctx context.Context, _ string) ([]byte, error) {
	d, ok := ctx.Deadline()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok {
		d = time.Time{} // recorded as a negative duration: no bound
	}
	s.given = append(s.given, time.Until(d))
	return nil, nil
}

func (s *deadlineStorage) SetWithContext(context.Context, string, []byte, time.Duration) error {
	return nil
}
func (s *deadlineStorage) DeleteWithContext(context.Context, string) error { return nil }
func (s *deadlineStorage) Get(key string) ([]byte, error) {
	return s.GetWithContext(context.Background(), key)
}
func (s *deadlineStorage) Set(string, []byte, time.Duration) error { return nil }
func (s *deadlineStorage) Delete(string) error                     { return nil }
func (s *deadlineStorage) Reset() error                            { return nil }
func (s *deadlineStorage) Close() error                            { return nil }

func (s *deadlineStorage) reads() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.given...)
}

// Config.StoreTimeout is the bound each Storage call gets: the default
// without it, the value given with it (a Redis in another zone needs more
// than 50 ms).
func TestStoreTimeoutBoundsStorageCalls(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		set  time.Duration
		want time.Duration
	}{
		{"default", 0, DefaultStoreTimeout},
		{"set", 750 * time.Millisecond, 750 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newAllauth(t)
			st := &deadlineStorage{}
			// New, not newCore: newCore raises a zero StoreTimeout.
			a, err := New(Config{
				BaseURL: srv.URL, Storage: st, StoreTimeout: tc.set,
				StorageSecret: []byte("0123456789abcdef0123456789abcdef"), Logger: quietLogger(),
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = a.Close() })
			wantUser(t, auth(a, withToken(srv.IssueToken("alice"))), "alice")
			reads := st.reads()
			if len(reads) == 0 {
				t.Fatal("no Storage read on a miss")
			}
			for _, got := range reads {
				// The deadline is set before the call, so what is left is at
				// most the bound; above the default only if the setting
				// reached the store.
				if got <= 0 || got > tc.want || (tc.want > DefaultStoreTimeout && got <= DefaultStoreTimeout) {
					t.Errorf("a Storage read was given %v, want at most %v (and more than the default %v when set above it)", got, tc.want, DefaultStoreTimeout)
				}
			}
		})
	}
}
