// Package testutil holds small helpers shared by the tests of several
// packages.
package testutil

import (
	"strings"
	"sync"
)

// SyncBuffer collects what several goroutines write (a logger's output,
// say) and returns it whole.
type SyncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
