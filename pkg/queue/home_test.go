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
	notSearchable(t, "", qq.ExitHome)
}

// TestQueueDirNotSearchable: the same one level down, a queue/ the
// process may not search (qmail's chdir("queue") fails) is 62: its O_PATH
// open needs no search permission, and the failure showed only at the
// creation of pid/NAME, 63.
func TestQueueDirNotSearchable(t *testing.T) {
	notSearchable(t, "queue", qq.ExitQueueDir)
}

// notSearchable runs one qmail-queue on a root whose directory sub (""
// for the root itself) has mode 0600, and wants exit code want, nothing
// left in the queue and nothing said.
func notSearchable(t *testing.T, sub string, want int) {
	// Searchable by the other user down to the root (t.TempDir and its
	// parent are 0700), so that only the one directory's mode stops it.
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	root := filepath.Join(dir, "q")
	if err := os.Rename(newRoot(t), root); err != nil {
		t.Fatal(err)
	}
	os.Chmod(root, 0o755)
	locked := filepath.Join(root, sub)
	if err := os.Chmod(locked, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(locked, 0o755) })
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
	if code != want {
		t.Errorf("exit %d, want %d", code, want)
	}
	os.Chmod(locked, 0o755)
	if f := files(t, root); len(f) != 0 {
		t.Errorf("left in the queue: %v", f)
	}
}
