package ctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/hold"
	"github.com/hqmail/hqmail/pkg/qhome"
)

// TestBootHoldsOverImpostor: sendmutex locked by a process that is not
// the tree's qmail-send (qmailq can lock a file of its own there, and
// name itself in it) is no qmail-send known to run: boot holds, the safe
// side, and says why; it held nothing and said "already running" (QA
// rsec3). Here the tree's etc/ids gives qmails another uid than the
// fake's, which is what tells it from qmail-send.
func TestBootHoldsOverImpostor(t *testing.T) {
	root := makeTree(t)
	ids := qhome.SharedIDs(os.Getuid(), os.Getgid())
	ids.Qmails.UID = os.Geteuid() + 1
	ids.Shared = false
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, qhome.IDsFile), []byte(ids.Format()), 0o644); err != nil {
		t.Fatal(err)
	}
	startFake(t, root)
	if _, err := LocateSend(root); err == nil || !strings.Contains(err.Error(), "not qmail-send") {
		t.Fatalf("LocateSend: %v, want the impostor refused", err)
	}
	code, out, errs := run(t, root, "-t", "1", "boot")
	got, held := readFlag(t, root, hold.RemoteFile)
	if !held || hold.Parse([]byte(got)).All != true || strings.Contains(out, "already running") {
		t.Errorf("boot with an impostor's sendmutex: holdremote %q (%v), exit %d, %q, %q; want everything held", got, held, code, out, errs)
	}
	if !strings.Contains(errs, "warning:") || !strings.Contains(errs, "not qmail-send") {
		t.Errorf("boot with an impostor's sendmutex: stderr %q; want a warning saying why it holds", errs)
	}
}
