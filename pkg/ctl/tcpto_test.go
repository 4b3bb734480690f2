package ctl

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestReleaseRemoteClearsTcpto(t *testing.T) {
	root := makeTree(t)
	p := filepath.Join(root, "queue", "lock", "tcpto")
	os.MkdirAll(filepath.Dir(p), 0o755)
	seen := bytes.Repeat([]byte{7}, 1024)
	if err := os.WriteFile(p, seen, 0o644); err != nil {
		t.Fatal(err)
	}
	// Holding keeps the table; releasing clears it (qmail-send need not run).
	run(t, root, "hold", "remote")
	if b, _ := os.ReadFile(p); !bytes.Equal(b, seen) {
		t.Fatal("hold changed queue/lock/tcpto")
	}
	run(t, root, "release", "remote")
	if b, _ := os.ReadFile(p); !bytes.Equal(b, make([]byte, 1024)) {
		t.Fatalf("release left queue/lock/tcpto %v...", b[:16])
	}
}
