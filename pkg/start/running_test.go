package start

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/qhome"
)

// mainEnv names the root a test binary started by runMain runs Main on;
// argsEnv, Main's arguments (separated by blanks).
// readyWaitEnv, readyWait for that Main (a duration, e.g. "300ms").
const (
	mainEnv      = "HQMAIL_TEST_START_MAIN"
	argsEnv      = "HQMAIL_TEST_START_ARGS"
	readyWaitEnv = "HQMAIL_TEST_START_READYWAIT"
)

// The test binary stands in for a running qmail-send (StartLocker), or
// runs qmail-start's Main in a process of its own (runMain): Main changes
// the working directory and umask and catches signals.
func init() {
	testutil.ActAsLocker()
	if root := os.Getenv(mainEnv); root != "" {
		if d, err := time.ParseDuration(os.Getenv(readyWaitEnv)); err == nil {
			readyWait = d
		}
		os.Exit(Main(strings.Fields(os.Getenv(argsEnv)), root, os.Stdout, os.Stderr))
	}
}

// heldTree makes a tree with an empty control/startheld (hold all remote
// mail at start), no holdremote (released), and queue/lock/sendmutex; it
// returns the root and the sendmutex path.
func heldTree(t *testing.T) (string, string) {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"control", "queue/lock"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "control", "startheld"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	mutex := filepath.Join(root, "queue", "lock", "sendmutex")
	if err := os.WriteFile(mutex, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return root, mutex
}

func holdremoteExists(root string) bool {
	_, err := os.Stat(filepath.Join(root, "control", "holdremote"))
	return err == nil
}

// TestStartHeldNotWhileRunning: a qmail-start run while the tree's
// qmail-send runs (it fails: "already running") does not hold remote mail
// again after an administrator released it; once no qmail-send runs,
// startheld applies as before.
func TestStartHeldNotWhileRunning(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	root, mutex := heldTree(t)
	send := testutil.StartLocker(t, exe, mutex)
	var stderr bytes.Buffer
	if err := startHeldIfStopped(root, &stderr); err != nil {
		t.Fatal(err)
	}
	if holdremoteExists(root) {
		t.Error("control/holdremote created beside a running qmail-send")
	}
	if want := "already running (pid " + strconv.Itoa(send.Process.Pid) + ")"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr %q, want it to contain %q", stderr.String(), want)
	}

	send.Process.Kill()
	send.Wait()
	stderr.Reset()
	if err := startHeldIfStopped(root, &stderr); err != nil {
		t.Fatal(err)
	}
	if !holdremoteExists(root) || stderr.Len() != 0 {
		t.Errorf("no qmail-send running: holdremote %v, stderr %q", holdremoteExists(root), stderr.String())
	}
}

// TestStartHeldWhileLockedUnnamed: sendmutex locked by a process that
// does not name itself in it (past sendlock's wait for a qmail-send
// between its lock and its pid) is no qmail-send known to run: startheld
// is applied, the safe side, and a warning says why. It was left alone,
// and an impostor's lock (qmailq's) made qmail-start skip startheld (QA
// rsec3).
func TestStartHeldWhileLockedUnnamed(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	root, mutex := heldTree(t)
	testutil.StartLocker(t, exe, mutex)
	if err := os.Truncate(mutex, 0); err != nil { // the lock stays, the pid goes
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if err := startHeldIfStopped(root, &stderr); err != nil {
		t.Fatal(err)
	}
	if !holdremoteExists(root) {
		t.Error("control/holdremote not made while sendmutex is locked by a process that does not name itself")
	}
	if !strings.Contains(stderr.String(), "holds no valid pid") || !strings.Contains(stderr.String(), "startheld applied all the same") {
		t.Errorf("stderr %q", stderr.String())
	}
}

// TestMainBesideRunningSend is the administrator's extra start: qmail-start
// on a tree whose qmail-send runs fails (here at once, as the tree has no
// programs to start) and leaves control/holdremote absent, as qmailctl
// release remote left it.
func TestMainBesideRunningSend(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	root, mutex := heldTree(t)
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	ids := qhome.SharedIDs(os.Getuid(), os.Getgid()).Format()
	if err := os.WriteFile(filepath.Join(root, qhome.IDsFile), []byte(ids), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.StartLocker(t, exe, mutex)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), mainEnv+"="+root)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 111 {
		t.Fatalf("qmail-start: %v, want exit 111; stderr:\n%s", err, stderr.String())
	}
	if holdremoteExists(root) {
		t.Errorf("control/holdremote created; stderr:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "qmail-send is already running") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
}
