// Package exampletest holds what the examples' tests share, so that each
// example's own files stay about the example.
package exampletest

import (
	"bytes"
	"regexp"
	"sync"
	"testing"
	"time"
)

// SyncBuffer is a bytes.Buffer that a running example may write while its
// test reads it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// WaitFor waits until buf holds a match of re, while the example runs
// (until done yields), and returns the match and its groups. It fails the
// test if the example stops first, or after 10 s.
func WaitFor(t *testing.T, buf *SyncBuffer, re *regexp.Regexp, done <-chan error) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := re.FindStringSubmatch(buf.String()); m != nil {
			return m
		}
		select {
		case err := <-done:
			t.Fatalf("run returned before printing %v: %v", re, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("run printed nothing matching %v within 10s:\n%s", re, buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Env returns a getenv that knows only vars.
func Env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}
