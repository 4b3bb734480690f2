package ctl

import (
	"path/filepath"
	"syscall"
	"testing"
)

// TestEditHoldFIFO: a control/holdremote that is no regular file is an
// error, as qmail-send finds it, not a read that waits for ever while
// qmailctl holds the directory lock.
func TestEditHoldFIFO(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "holdremote"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := EditHold(dir, "holdremote", true, nil); err == nil {
		t.Error("EditHold over a FIFO: no error")
	}
}
