package ctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/hold"
	"github.com/hqmail/hqmail/pkg/qread/queuetest"
)

// TestLinkWantApplyForeignOwner: linkwant apply, which the hooks' job
// runs as root, takes the word only from a linkwant written by qmailctl
// linkwant (root's, or this user's): one qmailq put in its queue/lock,
// where linkwant was kept then, saying "release" undid the hold an
// ip-down had made (QA rsec2). In control/ the owner is still checked.
func TestLinkWantApplyForeignOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a linkwant of another user")
	}
	root := makeTree(t)
	fake := startFake(t, root)
	queuetest.WriteFile(t, filepath.Join(root, "control", hold.RemoteFile), []byte("*\n"))
	if code, out, errs := run(t, root, "linkwant", "release"); code != ExitOK {
		t.Fatalf("linkwant release: exit %d, %q, %q", code, out, errs)
	}
	os.Lchown(filepath.Join(root, hold.LinkWantFile), 65534, 65534)
	code, out, errs := run(t, root, "linkwant", "apply")
	if code != ExitTemp || out != "" || !strings.Contains(errs, "nothing applied") || !strings.Contains(errs, "(uid 65534), neither root nor the tree's owner") {
		t.Errorf("apply of a linkwant of uid 65534: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if file, held := readFlag(t, root, hold.RemoteFile); !held || file != "*\n" {
		t.Errorf("holdremote after it: %q, held %v; want the hold kept", file, held)
	}
	// boot holds, and says why the release recorded there is not taken
	// (QA rhold6: it held without a word).
	fake.Process.Kill()
	fake.Wait()
	os.Remove(filepath.Join(root, "control", hold.RemoteFile))
	code, out, errs = run(t, root, "boot")
	if _, held := readFlag(t, root, hold.RemoteFile); !held || !strings.Contains(errs, "qmailctl: note: "+hold.LinkWantFile+" belongs to") {
		t.Errorf("boot with a linkwant of uid 65534: exit %d, held %v, stdout %q, stderr %q", code, held, out, errs)
	}
}
