package start

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/internal/testutil"
)

// TestAsPID1: qmail-start as process 1 of a PID namespace (a container's
// entrypoint; here unshare) reaps the orphans deliveries leave behind
// (QA ctr: one zombie per delivery, then "Unable_to_fork" under a pids
// limit), passes a TERM sent to it on to qmail-send, lets an orphan still
// running when qmail-send has gone finish (it was killed with the
// namespace as PID 1 exited), and exits with qmail-send's code.
//
// The fake qmail-send leaves five orphans behind, each a script that
// sleeps a moment, waits until none is left in the namespace's /proc,
// dead or alive (some seconds at most), and writes how many zombies remain. On
// TERM it leaves one more orphan, which marks that it finished a second
// later, and exits 7.
func TestAsPID1(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (unshare -p)")
	}
	if err := exec.Command("unshare", "-p", "-f", "--mount-proc", "true").Run(); err != nil {
		t.Skipf("cannot make a PID namespace here (unshare -p -f --mount-proc true: %v)", err)
	}
	root := fakeTree(t, map[string]string{
		"qmail-lspawn": "cat >/dev/null\n",
		"qmail-rspawn": "cat >/dev/null\n",
		"qmail-clean":  "cat >/dev/null\n",
		"orphan":       "sleep 0.2\n",
		"qmail-send": "bin=\"${0%/*}\"\n" +
			"trap '(sleep 1; : > \"$0.late\") </dev/null >/dev/null 2>&1 3>&- 4>&- 5>&- 6>&- &\n" +
			"  echo term > \"$0.term\"; exit 7' TERM\n" +
			"exec 7>&-\n" +
			"for i in 1 2 3 4 5; do (\"$bin/orphan\" </dev/null >/dev/null 2>&1 3>&- 4>&- 5>&- 6>&- &); done\n" +
			"i=0\n" +
			"while cat /proc/[0-9]*/stat 2>/dev/null | grep -q '(orphan)' && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done\n" +
			"cat /proc/[0-9]*/stat 2>/dev/null | grep -c '(orphan) Z' > \"$0.zombies\"\n" +
			": > \"$0.up\"\n" +
			"while :; do sleep 0.05; done\n",
	})
	send := filepath.Join(root, "bin", "qmail-send")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var stderr testutil.SyncBuffer
	cmd := exec.Command("unshare", "-p", "-f", "--mount-proc", exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), mainEnv+"="+root, argsEnv+"=./Maildir/")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })
	ended := make(chan mainEnd, 1)
	go func() {
		ws, ok := waitMain(t, cmd)
		ended <- mainEnd{ws, ok}
	}()

	for i := 0; i < 3000 && !fileExistsT(send+".up"); i++ {
		select {
		case e := <-ended:
			t.Fatalf("unshare ended (%v) before qmail-send was up; stderr:\n%s", e.ws, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if !fileExistsT(send + ".up") {
		t.Fatalf("qmail-send not up after 30s; stderr:\n%s", stderr.String())
	}
	b, _ := os.ReadFile(send + ".zombies")
	if z := strings.TrimSpace(string(b)); z != "0" {
		t.Errorf("%s orphans left as zombies in the namespace, want 0", z)
	}

	pid1 := childOf(cmd.Process.Pid)
	if pid1 == 0 {
		t.Fatal("no process 1 of the namespace found under unshare")
	}
	if err := syscall.Kill(pid1, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	e := <-ended
	if !e.ok || e.ws.Signaled() || e.ws.ExitStatus() != 7 {
		t.Errorf("process 1: %v (ended: %v), want qmail-send's exit 7; stderr:\n%s", e.ws, e.ok, stderr.String())
	}
	if !fileExistsT(send + ".term") {
		t.Error("the TERM sent to process 1 did not reach qmail-send")
	}
	if !fileExistsT(send + ".late") {
		t.Error("the orphan running when qmail-send exited did not finish: process 1 exited before it")
	}
}

// childOf returns the pid of a child of ppid (unshare's only one: the
// namespace's process 1, seen from here), 0 if none.
func childOf(ppid int) int {
	names, _ := filepath.Glob("/proc/[0-9]*/status")
	for _, name := range names {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "PPid:"); ok {
				if p, _ := strconv.Atoi(strings.TrimSpace(v)); p == ppid {
					f.Close()
					pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(name)))
					return pid
				}
				break
			}
		}
		f.Close()
	}
	return 0
}
