package start

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/qhome"
)

// TestStartHeldOverImpostor: sendmutex locked by a process that is not
// the tree's qmail-send (qmailq swapping in a locked sendmutex of its own
// while qmail-start looks) does not make qmail-start skip
// control/startheld: only a qmail-send known to run does. The hold is
// made, the safe side, and a warning says why (QA rsec3: it was "warning:
// control/startheld not applied: ... not qmail-send", and the real
// qmail-send then started with remote delivery released). Here etc/ids
// gives qmails another uid than the stand-in's.
func TestStartHeldOverImpostor(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	root, mutex := heldTree(t)
	ids := qhome.SharedIDs(os.Getuid(), os.Getgid())
	ids.Qmails.UID = os.Geteuid() + 1
	ids.Shared = false
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, qhome.IDsFile), []byte(ids.Format()), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.StartLocker(t, exe, mutex)
	var stderr bytes.Buffer
	if err := startHeldIfStopped(root, &stderr); err != nil {
		t.Fatal(err)
	}
	if !holdremoteExists(root) {
		t.Errorf("control/holdremote not made beside an impostor's sendmutex; stderr %q", stderr.String())
	}
	if !strings.Contains(stderr.String(), "not qmail-send") || strings.Contains(stderr.String(), "not applied") {
		t.Errorf("stderr %q; want a warning saying why startheld is applied", stderr.String())
	}
}
