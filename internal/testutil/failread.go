package testutil

import (
	"os"
	"syscall"
)

// FailingReader gives N bytes of 'x', then an I/O error (EIO, as a read
// of a damaged message file): a message that cannot be read to its end.
// Seek does nothing, so it stands for a message file too.
type FailingReader struct{ N int }

func (r *FailingReader) Read(p []byte) (int, error) {
	if r.N <= 0 {
		return 0, &os.PathError{Op: "read", Path: "msg", Err: syscall.EIO}
	}
	n := min(len(p), r.N)
	for i := range p[:n] {
		p[i] = 'x'
	}
	r.N -= n
	return n, nil
}

// Seek reports offset 0 and changes nothing.
func (r *FailingReader) Seek(int64, int) (int64, error) { return 0, nil }
