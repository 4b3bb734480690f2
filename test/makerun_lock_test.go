package test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hqmail/hqmail/test/harness"
)

// withEnv is a copy of r whose run.sh environment has kv (NAME=value) in
// place of NAME's value.
func (r *runShTree) withEnv(kv string) *runShTree {
	name, _, _ := strings.Cut(kv, "=")
	c := *r
	c.env = []string{kv}
	for _, e := range r.env {
		if !strings.HasPrefix(e, name+"=") {
			c.env = append(c.env, e)
		}
	}
	return &c
}

// runTreeProcs maps the pid of every process running a program of the
// tree's bin/ (one replaced by a reinstall since included) to its name.
func runTreeProcs(t *testing.T, root string) map[int]string {
	t.Helper()
	bin, err := filepath.EvalSymlinks(filepath.Join(root, "bin"))
	if err != nil {
		t.Fatal(err)
	}
	procs := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil {
			continue
		}
		exe = strings.TrimSuffix(exe, " (deleted)")
		if filepath.Dir(exe) == bin {
			procs[pid] = filepath.Base(exe)
		}
	}
	return procs
}

// parentOf is pid's parent, or 0.
func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if err != nil || i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// TestRunScriptConcurrentStarts (QA rnonroot2): two make runs at once on
// one tree, with two ports, take turns: both succeed, and what runs then
// is one system, the one the pid files name (one qmail-start, its
// qmail-send, one listener), which make stop stops whole. Without the
// lock both started a system: the pid files named a dead qmail-start
// (whose log said qmail-send was already running) while the other
// qmail-start, its qmail-send and the other listener ran in no pid file,
// and make stop stopped one listener only.
func TestRunScriptConcurrentStarts(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	addrs := []string{listenAddr(t), listenAddr(t)}
	for _, tc := range []struct {
		name     string
		existing bool
	}{{"existing tree", true}, {"new tree", false}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRunShTree(t, addrs[0], true)
			if tc.existing {
				if out, err := r.script("start"); err != nil {
					t.Fatalf("run.sh start: %v\n%s", err, out)
				}
				if out, err := r.script("stop"); err != nil {
					t.Fatalf("run.sh stop: %v\n%s", err, out)
				}
			}
			outs := make([]string, len(addrs))
			errs := make([]error, len(addrs))
			var wg sync.WaitGroup
			for i, a := range addrs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					outs[i], errs[i] = r.withEnv("LISTEN=" + a).script("start")
				}()
			}
			wg.Wait()
			for i := range addrs {
				if errs[i] != nil || !strings.Contains(outs[i], "hqmail is running") {
					t.Errorf("run.sh start LISTEN=%s beside another: %v\n%s", addrs[i], errs[i], outs[i])
				}
			}

			start, smtpd := r.pid("start.pid"), r.pid("smtpd.pid")
			procs := runTreeProcs(t, r.root)
			count := map[string][]int{}
			for pid, name := range procs {
				count[name] = append(count[name], pid)
			}
			if got := count["qmail-start"]; len(got) != 1 || got[0] != start {
				t.Errorf("qmail-start processes %v, start.pid %d: want one, the pid file's", got, start)
			}
			if got := count["qmail-smtpd"]; len(got) != 1 || got[0] != smtpd {
				t.Errorf("qmail-smtpd processes %v, smtpd.pid %d: want one, the pid file's", got, smtpd)
			}
			if got := count["qmail-send"]; len(got) != 1 || parentOf(got[0]) != start {
				t.Errorf("qmail-send processes %v: want one, under qmail-start (pid %d)", got, start)
			}
			// The listener is the one of the make run that came last.
			up := 0
			for _, a := range addrs {
				if c, err := net.DialTimeout("tcp", a, 5*time.Second); err == nil {
					c.Close()
					up++
				}
			}
			if up != 1 {
				t.Errorf("%d of %v accept connections, want 1", up, addrs)
			}
			if t.Failed() {
				b, _ := os.ReadFile(filepath.Join(r.root, "var", "qmail-send.log"))
				t.Logf("processes of the tree: %v\nqmail-send.log:\n%s", procs, b)
			}

			out, err := r.script("stop")
			if err != nil || !strings.Contains(out, "stopped (tree kept in "+r.root+")") {
				t.Errorf("run.sh stop: %v\n%s", err, out)
			}
			var left map[int]string
			if !harness.Eventually(20*time.Second, func() bool {
				left = runTreeProcs(t, r.root)
				return len(left) == 0
			}) {
				t.Errorf("after run.sh stop, the tree still runs %v", left)
			}
		})
	}
}

// TestRunScriptLockWaitsNamed: a make run that finds another make run or
// make stop at work on the tree says so, naming it, and waits for it.
func TestRunScriptLockWaitsNamed(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("no flock(1): ", err)
	}
	r := newRunShTree(t, listenAddr(t), true)
	if out, err := r.script("start"); err != nil {
		t.Fatalf("run.sh start: %v\n%s", err, out)
	}
	// Another one holds the lock: a make run (as the lock file names
	// it) that ends after two seconds.
	lock := filepath.Join(r.root, "var", "make-run.lock")
	if err := os.WriteFile(lock, []byte("make run LISTEN=127.0.0.1:1 (pid 1)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chown(lock, r.uid, r.gid)
	holder := exec.Command("flock", lock, "sleep", "2")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer holder.Wait()
	if !harness.Eventually(10*time.Second, func() bool {
		return exec.Command("flock", "-n", lock, "true").Run() != nil
	}) {
		t.Fatal("flock did not take the lock")
	}
	out, err := r.script("start")
	if err != nil || !strings.Contains(out, r.root+": waiting (up to 120 s) for make run LISTEN=127.0.0.1:1 (pid 1) to finish") ||
		!strings.Contains(out, "hqmail is running") {
		t.Errorf("run.sh start beside another make run: %v\n%s", err, out)
	}
}

// TestRunScriptListenReason (QA rnonroot2): a LISTEN qmail-smtpd refuses
// shows the reason, not the end of its usage message; a bare port is
// said before anything starts, with the host:port to give.
func TestRunScriptListenReason(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	r := newRunShTree(t, "34528", true)
	out, err := r.script("start")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 ||
		!strings.Contains(out, "LISTEN=34528 is a port alone; LISTEN is host:port: make run RUNROOT="+r.root+" LISTEN=127.0.0.1:34528") {
		t.Errorf("run.sh start LISTEN=34528: %v\n%s", err, out)
	}
	if _, err := os.Stat(r.root); err == nil {
		t.Errorf("run.sh start LISTEN=34528 made %s", r.root)
	}

	out, err = r.withEnv("LISTEN=127.0.0.1:99999").script("start")
	if err == nil || !strings.Contains(out, `qmail-smtpd: -listen "127.0.0.1:99999": port 99999 out of range`) ||
		strings.Contains(out, "usage:") {
		t.Errorf("run.sh start LISTEN=127.0.0.1:99999: %v\n%s", err, out)
	}
}

// TestRunScriptStopMessages (QA rnonroot2): make stop on a RUNROOT that
// is no tree (a typo) says so and fails; on a tree of another user's it
// names the owner and says to stop it as them.
func TestRunScriptStopMessages(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	r := newRunShTree(t, listenAddr(t), true)
	for _, dir := range []string{filepath.Join(r.top, "typo"), filepath.Join(r.top, "runroot")} {
		out, err := r.withEnv("RUNROOT=" + dir).script("stop")
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || out != "no tree at "+dir+": nothing stopped\n" {
			t.Errorf("run.sh stop RUNROOT=%s: %v\n%s", dir, err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(r.top, "typo")); err == nil {
		t.Errorf("run.sh stop made %s/typo", r.top)
	}

	if os.Getuid() != 0 {
		t.Log("not root: the trees of other users are not checked")
		return
	}
	// Trees (a control/ of their own) of root's and of another
	// ordinary user's; run.sh runs as nobody.
	other := ""
	for _, n := range []string{"daemon", "bin", "sys", "games", "man", "mail"} {
		if u, err := user.Lookup(n); err == nil && u.Uid != "0" && u.Uid != strconv.Itoa(r.uid) {
			other = n
			break
		}
	}
	for _, owner := range []string{"root", other} {
		if owner == "" {
			continue
		}
		u, err := user.Lookup(owner)
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		dir := filepath.Join(r.top, "tree-of-"+owner)
		if err := os.MkdirAll(filepath.Join(dir, "control"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		why := "a make run of theirs?"
		if owner == "root" {
			why = "a make run as root?"
		}
		want := dir + " belongs to " + owner + " (" + why + "): stop it as " + owner + " (make stop RUNROOT=" + dir + ", run as " + owner + ")\n"
		out, err := r.withEnv("RUNROOT=" + dir).script("stop")
		if err == nil || out != want {
			t.Errorf("run.sh stop on %s's tree: %v\n%s\nwant\n%s", owner, err, out, want)
		}
	}
}

// TestRunScriptSaysLocalHold (QA rnonroot2): a local hold, which a restart
// keeps, is said by make run with the command that releases it, as the
// remote hold is.
func TestRunScriptSaysLocalHold(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	r := newRunShTree(t, listenAddr(t), true)
	out, err := r.script("start")
	if err != nil {
		t.Fatalf("run.sh start: %v\n%s", err, out)
	}
	if strings.Contains(out, "local delivery is held") {
		t.Errorf("run.sh start says local delivery is held with no control/holdlocal:\n%s", out)
	}
	ctl := filepath.Join(r.root, "bin", "qmailctl")
	if out, err := r.run(nil, ctl, "hold", "local"); err != nil {
		t.Fatalf("qmailctl hold local: %v\n%s", err, out)
	}
	if out, err = r.script("start"); err != nil {
		t.Fatalf("run.sh start: %v\n%s", err, out)
	}
	want := "\n  local delivery is held (control/holdlocal, kept across restarts); release: " + ctl + " release local\n"
	if !strings.Contains(out, want) {
		t.Errorf("run.sh start with local delivery held:\n%s\nwant a line %q", out, want)
	}
}
