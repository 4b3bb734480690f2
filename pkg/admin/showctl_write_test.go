package admin

import (
	"bytes"
	"errors"
	"testing"
)

type fullWriter struct{}

func (fullWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// TestShowctlWriteError: a report that cannot be written is said on
// stderr, as qmail-qread and qmail-qstat say it, with exit 111 (it exited
// 111 in silence).
func TestShowctlWriteError(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"control/me": "mx.example.org\n"})
	var errb bytes.Buffer
	code := ShowctlMain(root, fullWriter{}, &errb)
	want := "qmail-showctl: fatal: unable to write output: no space left on device\n"
	if code != 111 || errb.String() != want {
		t.Errorf("exit %d, stderr %q; want 111, %q", code, errb.String(), want)
	}
}
