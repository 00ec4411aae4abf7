package cache

import (
	"context"
	"testing"
	"time"

	"github.com/allauthgo/headless/introspect"
)

// An eviction that lands while a lookup of the same key is at allauth is not
// undone by the lookup's answer (which may predate the logout): the answer
// is returned to its caller but kept in neither tier. An eviction of a key in
// another stripe costs the lookup nothing.
func TestEvictionRacingALookup(t *testing.T) {
	for _, tc := range []struct {
		name     string
		evict    func(k Key) Key
		wantKept bool
	}{
		{"same key", func(k Key) Key { return k }, false},
		{"another stripe", func(k Key) Key { k[0]++; return k }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storage := newMapStorage()
			c := newTestCache(t, Config{Storage: storage, Prefix: "race:", TTL: time.Minute})
			k := keyFor(1)
			atAllauth, answer := make(chan struct{}), make(chan struct{})
			done := make(chan Result, 1)
			go func() {
				done <- c.Load(context.Background(), k, time.Time{}, func(context.Context) (*introspect.Session, error) {
					close(atAllauth)
					<-answer
					return newSession(t, 1), nil
				})
			}()
			<-atAllauth
			if _, err := c.Evict(context.Background(), tc.evict(k)); err != nil {
				t.Fatal(err)
			}
			close(answer)
			if r := <-done; r.Session == nil {
				t.Fatalf("the caller lost its answer: %+v", r)
			}
			_, local := c.Get(context.Background(), k)
			shared, _ := c.shared.Get(context.Background(), k)
			if local != tc.wantKept || (shared != nil) != tc.wantKept {
				t.Errorf("kept in process %v, in the shared tier %v; want %v", local, shared != nil, tc.wantKept)
			}
		})
	}
}
