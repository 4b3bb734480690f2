package forward

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/qerr"
)

// TestSeekablePipe: a message on a pipe is copied to a file and handed
// back at its first byte, ready for a program to read. (It was returned at
// its end: condredirect's test program saw an empty message, and grep -q
// URGENT never matched.)
func TestSeekablePipe(t *testing.T) {
	body := "Subject: URGENT\n\n" + strings.Repeat("a line of the body\n", 10000) // more than a pipe holds
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	done := make(chan error, 1)
	go func() {
		_, err := io.WriteString(w, body)
		w.Close()
		done <- err
	}()
	m, err := Seekable(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if m == io.Reader(r) {
		t.Fatal("the pipe itself was returned")
	}
	if c, ok := m.(io.Closer); ok {
		t.Cleanup(func() { c.Close() })
	}
	got, err := io.ReadAll(m)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != body {
		t.Fatalf("first read gave %d bytes (%.20q...), want the %d-byte message", len(got), got, len(body))
	}
	// And again after a rewind, as Deliver does for each target.
	if err := rewind(m); err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(m); string(got) != body {
		t.Fatalf("after a rewind: %d bytes", len(got))
	}
}

// TestSeekableFile: a file already read from is handed back at its start.
func TestSeekableFile(t *testing.T) {
	f := msgFile(t, "Subject: x\n\nhi\n")
	io.CopyN(io.Discard, f, 5)
	m, err := Seekable(f)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(m); string(got) != "Subject: x\n\nhi\n" {
		t.Fatalf("got %q", got)
	}
}

// TestSeekableCopyFails: a copy that cannot be written is said to be the
// copy, with the reason and where: under a file size limit (ulimit -f)
// forward and condredirect said "Unable to read message", sending the
// reader to look at the input. A failing input is still the input, now
// with the reason. Both are temporary.
func TestSeekableCopyFails(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		// More than the limit; stops when the read end is closed.
		io.WriteString(w, strings.Repeat("a line of the body\n", 2000))
		w.Close()
		close(done)
	}()
	var serr error
	testutil.WithFileSizeLimit(t, 4096, func() { _, serr = Seekable(r) })
	r.Close()
	<-done
	want := "Unable to write a temporary copy of the message in " + dir + ": file too big. (#4.3.0)"
	if serr == nil || serr.Error() != want || qerr.IsPerm(serr) {
		t.Errorf("copy past the file size limit: %v, want temporary %q", serr, want)
	}

	// The write end of a pipe: it cannot be rewound, and reads fail.
	r2, w2, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	defer w2.Close()
	_, serr = Seekable(w2)
	want = "Unable to read message: file descriptor not open. (#4.3.0)"
	if serr == nil || serr.Error() != want || qerr.IsPerm(serr) {
		t.Errorf("unreadable input: %v, want temporary %q", serr, want)
	}

	// No temporary file at all: the directory is named, with the reason.
	t.Setenv("TMPDIR", filepath.Join(dir, "missing"))
	_, serr = Seekable(r2)
	want = "Unable to create a temporary file in " + filepath.Join(dir, "missing") + ": file does not exist. (#4.3.0)"
	if serr == nil || serr.Error() != want || qerr.IsPerm(serr) {
		t.Errorf("no temporary directory: %v, want temporary %q", serr, want)
	}
}
