package test

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/test/harness"
)

// TestStartEarlyHUP: HUPs sent to qmail-start from the moment it catches
// them (it has started a program) until qmail-send has logged its first
// status line do not kill qmail-send; a TERM then stops everything, exit
// 0, no alert, nothing of the tree left running. Three rounds on one tree
// (QA: a HUP 2-6 ms after the start was forwarded to a qmail-send not yet
// catching it: "qmail-send was killed by signal 1 (hangup)", exit 111).
func TestStartEarlyHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	tr := harness.Install(t)
	for round := 1; round <= 3; round++ {
		earlyHUPRound(t, tr, round)
		if t.Failed() {
			return
		}
	}
}

func earlyHUPRound(t *testing.T, tr *harness.Tree, round int) {
	t.Helper()
	var log, stderr testutil.SyncBuffer
	cmd := exec.Command(tr.Bin("qmail-start"), "./Maildir/")
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=" + tr.Path("bin") + ":/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { syscall.Kill(-pid, syscall.SIGKILL) })
	done := make(chan struct{})
	go func() {
		io.Copy(&log, out) // Wait closes the pipe: read it to the end first
		cmd.Wait()
		close(done)
	}()
	exited := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	// A program started by qmail-start means its handlers are in place
	// (a HUP before that kills qmail-start itself, as any program). Looked
	// for often: qmail-send follows within milliseconds.
	for deadline := time.Now().Add(20 * time.Second); !hasChild(pid) && !exited(); {
		if time.Now().After(deadline) {
			t.Fatalf("round %d: qmail-start started nothing; stderr:\n%s", round, stderr.String())
		}
		time.Sleep(200 * time.Microsecond)
	}
	if exited() {
		t.Fatalf("round %d: qmail-start exited at once; stderr:\n%s", round, stderr.String())
	}
	sent := 0
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); sent++ {
		if exited() || strings.Contains(log.String(), "status: local ") {
			break
		}
		syscall.Kill(pid, syscall.SIGHUP)
		time.Sleep(500 * time.Microsecond)
	}
	if exited() || !strings.Contains(log.String(), "status: local ") {
		t.Fatalf("round %d: qmail-send did not start under %d HUPs; stderr:\n%s\nlog:\n%s", round, sent, stderr.String(), log.String())
	}
	syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("round %d: qmail-start did not exit after TERM; log:\n%s", round, log.String())
	}
	if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); ws.Signaled() || ws.ExitStatus() != 0 {
		t.Errorf("round %d: qmail-start %v, want exit 0; stderr:\n%s", round, ws, stderr.String())
	}
	if s := stderr.String(); strings.Contains(s, "alert") {
		t.Errorf("round %d: alert on stderr:\n%s", round, s)
	}
	if n := strings.Count(log.String(), "status: exiting"); n != 1 {
		t.Errorf("round %d: %d status: exiting; log:\n%s", round, n, log.String())
	}
	if !harness.Eventually(20*time.Second, func() bool { return len(treeProcs(tr)) == 0 }) {
		t.Errorf("round %d: processes left: %v", round, treeProcs(tr))
	}
	t.Logf("round %d: %d HUPs while qmail-send started", round, sent)
}

// hasChild reports whether process pid has a child: a program that any of
// its threads started (/proc/PID/task/TID/children lists those of one
// thread each; without those files, every process's parent is looked at).
func hasChild(pid int) bool {
	files, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "children"))
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			return true
		}
	}
	if len(files) > 0 {
		return false
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold anything but ')'
		// ends it at the last one.
		if i := strings.LastIndexByte(string(b), ')'); i >= 0 {
			if fields := strings.Fields(string(b[i+1:])); len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
				return true
			}
		}
	}
	return false
}
