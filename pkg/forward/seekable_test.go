package forward

import (
	"io"
	"os"
	"strings"
	"testing"
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
