package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

type fullWriter struct{}

func (fullWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// TestTcptoWriteError: a listing that cannot be written is said as
// qmail-qread, qmail-qstat and qmailctl say it (it was the bare write
// error).
func TestTcptoWriteError(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "queue", "lock"), 0o755); err != nil {
		t.Fatal(err)
	}
	table := make([]byte, 1024)
	copy(table, []byte{192, 0, 2, 7, 3})
	binary.LittleEndian.PutUint32(table[8:12], uint32(time.Now().Unix()))
	if err := os.WriteFile(filepath.Join(root, "queue", "lock", "tcpto"), table, 0o644); err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	code := run(root, fullWriter{}, &errb)
	want := "qmail-tcpto: fatal: unable to write output: no space left on device\n"
	if code != 111 || errb.String() != want {
		t.Errorf("exit %d, stderr %q; want 111, %q", code, errb.String(), want)
	}
}
