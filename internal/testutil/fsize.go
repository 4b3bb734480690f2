package testutil

import (
	"flag"
	"os/signal"
	"syscall"
	"testing"
)

// WithFileSizeLimit runs f with the process's file size limit
// (RLIMIT_FSIZE) at n bytes, SIGXFSZ ignored: a write past n fails with
// EFBIG after writing what fits, as a write to a full disk is cut short.
// The limit is the whole process's: f must be the only thing writing
// files meanwhile. The test is skipped when the limit cannot be set.
func WithFileSizeLimit(t *testing.T, n uint64, f func()) {
	t.Helper()
	// go test keeps a log of the files a cacheable run opens, written
	// by this process: past the limit it would be cut, and the run fail
	// ("can't write testlog.txt: file too large"). make test runs with
	// -count=1, which keeps no such log.
	if fl := flag.Lookup("test.testlogfile"); fl != nil && fl.Value.String() != "" {
		t.Skip("a file size limit would cut go test's log of this cacheable run; run with -count=1")
	}
	var was syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &was); err != nil {
		t.Fatal(err)
	}
	signal.Ignore(syscall.SIGXFSZ)
	defer signal.Reset(syscall.SIGXFSZ)
	lim := was
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Skipf("cannot set a file size limit: %v", err)
	}
	defer func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &was); err != nil {
			t.Fatal(err)
		}
	}()
	f()
}
