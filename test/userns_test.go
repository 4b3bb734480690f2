package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/test/harness"
)

// TestUserNamespaceOneID: in a user namespace that maps one id only
// ("unshare -U -r", a rootless container without subordinate ids), qmail's
// ids cannot be taken or given; the kernel says only "operation not
// permitted" or "invalid argument", so qmail-start and qmail-install name
// the id that is not mapped and where to read more.
func TestUserNamespaceOneID(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: an ordinary user's tree runs as one uid and is not refused")
	}
	if err := exec.Command("unshare", "-U", "-r", "true").Run(); err != nil {
		t.Skipf("no user namespaces here (unshare -U -r true: %v)", err)
	}
	tr := harness.Install(t)
	run := func(args ...string) (string, int) {
		cmd := exec.Command("unshare", append([]string{"-U", "-r"}, args...)...)
		cmd.Dir = tr.Root
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}
	out, code := run(tr.Bin("qmail-start"), "./Maildir/")
	if code != 111 || !strings.Contains(out, "unable to start") || !strings.Contains(out, "is not mapped") ||
		!strings.Contains(out, "docs/containers.md") {
		t.Errorf("qmail-start in a one-id user namespace: exit %d, %q; want 111 and the id not mapped named", code, out)
	}
	out, code = run(tr.Bin("qmail-install"), "-root", filepath.Join(t.TempDir(), "new"))
	if code != 111 || !strings.Contains(out, "unable to chown") || !strings.Contains(out, "is not mapped") {
		t.Errorf("qmail-install in a one-id user namespace: exit %d, %q; want 111 and the id not mapped named", code, out)
	}
}
