package queue

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/qq"
)

// runRootEnv, set in the environment of a copy of the test binary, makes
// it queue one message (Run) on that root and exit with the code: a
// qmail-queue run under another uid (TestQueueHomeNotSearchable).
const runRootEnv = "HQMAIL_TEST_QUEUE_RUN_ROOT"

func init() {
	if root := os.Getenv(runRootEnv); root != "" {
		os.Exit(run(root, strings.NewReader("x\n"), strings.NewReader("Fa@b\x00Tc@d\x00\x00")))
	}
}

// TestQueueHomeNotSearchable: a QMAILHOME the process may not search
// (qmail's chdir fails) is 61, trouble in the home directory. The root's
// O_PATH open needs no search permission, and the failure showed only at
// the open of queue/: 62. Root searches anything, so as root the run is
// a copy of the test binary under another uid.
func TestQueueHomeNotSearchable(t *testing.T) {
	// Searchable by the other user down to the root (t.TempDir and its
	// parent are 0700), so that only the root's own mode stops it.
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	root := filepath.Join(dir, "q")
	if err := os.Rename(newRoot(t), root); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(root, 0o755) })
	var code int
	if os.Geteuid() != 0 {
		code = run(root, strings.NewReader("x\n"), strings.NewReader("Fa@b\x00Tc@d\x00\x00"))
	} else {
		const nobody = 65534
		prog := filepath.Join(dir, "qmail-queue")
		testutil.CopyTestBinary(t, prog)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, prog)
		cmd.Env = append(os.Environ(), runRootEnv+"="+root)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		out, err := cmd.CombinedOutput()
		code = cmd.ProcessState.ExitCode()
		if len(out) != 0 {
			t.Errorf("output %q (%v)", out, err)
		}
	}
	if code != qq.ExitHome {
		t.Errorf("exit %d, want %d", code, qq.ExitHome)
	}
	os.Chmod(root, 0o755)
	if f := files(t, root); len(f) != 0 {
		t.Errorf("left in the queue: %v", f)
	}
}
