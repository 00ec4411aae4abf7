// Package exampletest holds what the examples' tests share, so that each
// example's own files stay about the example.
package exampletest

import (
	"bytes"
	"sync"
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
