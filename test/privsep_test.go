package test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/test/harness"
)

// procInfo is what /proc says about one process.
type procInfo struct {
	pid, ppid int
	name      string // argv[0] base name
	uid, gid  [4]int // real, effective, saved, fs
	groups    []int
	fds       map[int]string // fd -> readlink target
}

func readProc(pid int) (*procInfo, error) {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	p := &procInfo{pid: pid, fds: map[int]string{}}
	for _, line := range strings.Split(string(st), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		switch k {
		case "PPid":
			p.ppid, _ = strconv.Atoi(f[0])
		case "Uid", "Gid":
			var ids [4]int
			for i := 0; i < 4 && i < len(f); i++ {
				ids[i], _ = strconv.Atoi(f[i])
			}
			if k == "Uid" {
				p.uid = ids
			} else {
				p.gid = ids
			}
		case "Groups":
			for _, g := range f {
				n, _ := strconv.Atoi(g)
				p.groups = append(p.groups, n)
			}
		}
	}
	cl, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	argv0, _, _ := strings.Cut(string(cl), "\x00")
	p.name = filepath.Base(argv0)
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, n)); err == nil {
			p.fds[n] = target
		}
	}
	return p, nil
}

// childrenOf returns the processes whose parent is pid.
func childrenOf(pid int) []*procInfo {
	ents, _ := os.ReadDir("/proc")
	var out []*procInfo
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p, err := readProc(n)
		if err == nil && p.ppid == pid {
			out = append(out, p)
		}
	}
	return out
}

// started is a qmail-start run with its stdout collected.
type started struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	out   []string
	done  chan struct{}
	state *os.ProcessState
}

func (s *started) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.out, "\n")
}

func (s *started) count(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.out {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

func (s *started) wait(t *testing.T, sub string, n int) {
	t.Helper()
	if !harness.Eventually(30*time.Second, func() bool { return s.count(sub) >= n }) {
		t.Fatalf("log lines with %q: %d, want %d; log:\n%s", sub, s.count(sub), n, s.log())
	}
}

// startQmail runs ROOT/bin/qmail-start with args through sh, which first
// opens fd 7 on /etc/hostname without close-on-exec: qmail-start must not
// pass it on.
func startQmail(t *testing.T, tr *harness.Tree, args ...string) *started {
	t.Helper()
	script := `exec 7</etc/hostname; exec "$@"`
	cmd := exec.Command("/bin/sh", append([]string{"-c", script, "sh", tr.Bin("qmail-start")}, args...)...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &started{cmd: cmd, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.mu.Lock()
			s.out = append(s.out, sc.Text())
			s.mu.Unlock()
		}
		cmd.Wait()
		s.state = cmd.ProcessState
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
			return
		default:
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
	})
	s.wait(t, "status: local", 1)
	return s
}

func writeFile(t *testing.T, path, content string, mode os.FileMode, uid, gid int) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
}

func procField(t *testing.T, path, key string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == key {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	t.Fatalf("%s: no %s line in\n%s", path, key, b)
	return ""
}

func same(id int) string { return fmt.Sprintf("%d %d %d %d", id, id, id, id) }

// TestPrivsepUIDs runs a root tree and checks, through /proc, the ids of
// every process of DESIGN.md §2: qmail-start and qmail-lspawn root, the
// logger qmaill/nofiles, qmail-send qmails, qmail-rspawn qmailr,
// qmail-clean qmailq (all group qmail), qmail-getpw qmailp/nofiles,
// qmail-remote qmailr and qmail-local (and its program) as the recipient.
// It also checks qmail-send's fds 0-6 against its peers' fds 0 and 1, and
// that a descriptor inherited by qmail-start reaches no child.
func TestPrivsepUIDs(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: checks the uid of every qmail process through /proc")
	}
	tr := harness.Install(t)
	ids := tr.IDs()
	if ids.Shared {
		t.Fatal("tree installed as root is shared")
	}
	const rcptUID, rcptGID = harness.TestUIDBase + 90, harness.TestUIDBase + 91

	// spy: world-writable, where the wrappers record their /proc status.
	spy := tr.Path("spy")
	os.Mkdir(spy, 0o755)
	os.Chmod(spy, 0o1777)

	// The recipient: users/cdb entry, home owned by them, a .qmail program
	// recording qmail-local's (its parent's) status and its own uid.
	home := tr.Path("home-rcpt")
	os.Mkdir(home, 0o755)
	os.Chown(home, rcptUID, rcptGID)
	writeFile(t, filepath.Join(home, ".qmail"),
		"|cat /proc/$PPID/status > local.status; cat /proc/$$/status > prog.status\n",
		0o644, rcptUID, rcptGID)
	// No catch-all: other local parts go to qmail-getpw.
	writeFile(t, tr.Path("users", "assign"),
		fmt.Sprintf("=rcpt:rcpt:%d:%d:%s:::\n.\n", rcptUID, rcptGID, home), 0o644, 0, 0)
	if out, code := tr.Run(t, nil, "qmail-newu"); code != 0 {
		t.Fatalf("qmail-newu: %d %s", code, out)
	}

	// Wrappers for qmail-getpw and qmail-remote.
	if err := os.Rename(tr.Bin("qmail-getpw"), tr.Bin("qmail-getpw.real")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, tr.Bin("qmail-getpw"), fmt.Sprintf("#!/bin/sh\ncat /proc/$$/status > %s/getpw.status\nexec %s \"$@\"\n",
		spy, tr.Bin("qmail-getpw.real")), 0o755, 0, 0)
	writeFile(t, tr.Bin("qmail-remote"), fmt.Sprintf("#!/bin/sh\ncat /proc/$$/status > %s/remote.status\ncat >/dev/null\nprintf 'r\\000K127.0.0.1 accepted message.\\n\\000'\n",
		spy), 0o755, 0, 0)

	s := startQmail(t, tr, "./Maildir/", "cat")
	startPid := s.cmd.Process.Pid
	me, err := readProc(startPid)
	if err != nil {
		t.Fatal(err)
	}
	if me.name != "qmail-start" || me.uid != [4]int{0, 0, 0, 0} {
		t.Errorf("qmail-start: name %q uid %v", me.name, me.uid)
	}

	type want struct {
		uid, gid int
		groups   []int // must be exactly these (nil: must contain gid)
	}
	wants := map[string]want{
		"cat":          {ids.Qmaill.UID, ids.Nofiles, []int{ids.Nofiles}},
		"qmail-lspawn": {0, ids.Qmail, []int{ids.Qmail}},
		"qmail-rspawn": {ids.Qmailr.UID, ids.Qmail, nil},
		"qmail-clean":  {ids.Qmailq.UID, ids.Qmail, []int{ids.Qmail}},
		"qmail-queued": {ids.Qmailq.UID, ids.Qmail, []int{ids.Qmail}},
		"qmail-send":   {ids.Qmails.UID, ids.Qmail, []int{ids.Qmail}},
	}
	procs := map[string]*procInfo{}
	for _, p := range childrenOf(startPid) {
		procs[p.name] = p
	}
	for name, w := range wants {
		p, ok := procs[name]
		if !ok {
			t.Errorf("no %s among qmail-start's children (%v)", name, procs)
			continue
		}
		if p.uid != [4]int{w.uid, w.uid, w.uid, w.uid} || p.gid != [4]int{w.gid, w.gid, w.gid, w.gid} {
			t.Errorf("%s: uid %v gid %v, want %d/%d", name, p.uid, p.gid, w.uid, w.gid)
		}
		if w.groups != nil && fmt.Sprint(p.groups) != fmt.Sprint(w.groups) {
			t.Errorf("%s: groups %v, want %v", name, p.groups, w.groups)
		}
		if w.groups == nil && !containsInt(p.groups, w.gid) {
			t.Errorf("%s: groups %v lack %d", name, p.groups, w.gid)
		}
		for fd, target := range p.fds {
			if target == "/etc/hostname" {
				t.Errorf("%s: inherited fd %d -> %s", name, fd, target)
			}
		}
	}
	if len(procs) != len(wants) {
		t.Errorf("qmail-start has %d children, want %d: %v", len(procs), len(wants), procs)
	}

	// qmail-send's descriptors (scheduler.md §1).
	if send, ok := procs["qmail-send"]; ok {
		pairs := []struct {
			fd   int
			peer string
			pfd  int
		}{
			{0, "cat", 0}, {1, "qmail-lspawn", 0}, {2, "qmail-lspawn", 1},
			{3, "qmail-rspawn", 0}, {4, "qmail-rspawn", 1}, {5, "qmail-clean", 0}, {6, "qmail-clean", 1},
		}
		for _, pr := range pairs {
			peer := procs[pr.peer]
			if peer == nil {
				continue
			}
			got, want := send.fds[pr.fd], peer.fds[pr.pfd]
			if !strings.HasPrefix(got, "pipe:") || got != want {
				t.Errorf("qmail-send fd %d = %q, %s fd %d = %q: want the same pipe", pr.fd, got, pr.peer, pr.pfd, want)
			}
		}
		// A helper's fd 2 is a pipe of its own, which qmail-start copies
		// into the log: none of qmail-send's, the logger's or another
		// helper's descriptors.
		seen := map[string]string{}
		for _, name := range []string{"qmail-send", "cat"} {
			if p := procs[name]; p != nil {
				for _, f := range p.fds {
					seen[f] = name
				}
			}
		}
		for _, name := range []string{"qmail-lspawn", "qmail-rspawn", "qmail-clean"} {
			p := procs[name]
			if p == nil {
				continue
			}
			fd2 := p.fds[2]
			if !strings.HasPrefix(fd2, "pipe:") {
				t.Errorf("%s fd 2 = %q, want a pipe to qmail-start's log copy", name, fd2)
			} else if other, ok := seen[fd2]; ok {
				t.Errorf("%s fd 2 = %q, shared with %s", name, fd2, other)
			}
			seen[fd2] = name
		}
	}

	// Deliveries: local via users/cdb, local via qmail-getpw, remote.
	msg := []byte("Subject: privsep\n\nhello\n")
	for _, rcpt := range []string{"rcpt@testhost.example", "ghost@testhost.example", "someone@remote.example"} {
		if err := tr.Queue(t, "sender@testhost.example", []string{rcpt}, msg); err != nil {
			t.Fatalf("queue to %s: %v", rcpt, err)
		}
	}
	harness.WaitForFile(t, 30*time.Second, filepath.Join(home, "prog.status"))
	harness.WaitForFile(t, 30*time.Second, filepath.Join(spy, "getpw.status"))
	harness.WaitForFile(t, 30*time.Second, filepath.Join(spy, "remote.status"))
	// Every delivery has ended (ghost@ is deferred: the test ids have no
	// passwd entry "alias", or one from another tree).
	s.wait(t, "status: local 0/10 remote 0/20", 2)
	if !harness.Eventually(30*time.Second, func() bool {
		return s.count(": success: ")+s.count(": deferral: ")+s.count(": failure: ") >= 3
	}) {
		t.Fatalf("deliveries did not end; log:\n%s", s.log())
	}
	harness.WaitFor(t, 30*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(home, "prog.status"))
		return strings.Contains(string(b), "Groups:")
	})

	checks := []struct {
		what, file string
		uid, gid   int
		groups     string
	}{
		{"qmail-local", filepath.Join(home, "local.status"), rcptUID, rcptGID, fmt.Sprint(rcptGID)},
		{".qmail program", filepath.Join(home, "prog.status"), rcptUID, rcptGID, fmt.Sprint(rcptGID)},
		{"qmail-getpw", filepath.Join(spy, "getpw.status"), ids.Qmailp.UID, ids.Nofiles, fmt.Sprint(ids.Nofiles)},
		{"qmail-remote", filepath.Join(spy, "remote.status"), ids.Qmailr.UID, ids.Qmail, ""},
	}
	for _, c := range checks {
		if got := procField(t, c.file, "Uid"); got != same(c.uid) {
			t.Errorf("%s: Uid %s, want %s", c.what, got, same(c.uid))
		}
		if got := procField(t, c.file, "Gid"); got != same(c.gid) {
			t.Errorf("%s: Gid %s, want %s", c.what, got, same(c.gid))
		}
		if c.groups != "" {
			if got := procField(t, c.file, "Groups"); got != c.groups {
				t.Errorf("%s: Groups %q, want %q", c.what, got, c.groups)
			}
		}
	}
	// SIGPIPE must reach delivery programs with its default action: the
	// spawners catch it rather than ignore it (an ignored signal would be
	// inherited across exec).
	for _, f := range []string{filepath.Join(home, "local.status"), filepath.Join(spy, "remote.status"), filepath.Join(spy, "getpw.status")} {
		mask, err := strconv.ParseUint(procField(t, f, "SigIgn"), 16, 64)
		if err != nil || mask&(1<<(uint(syscall.SIGPIPE)-1)) != 0 {
			t.Errorf("%s: SIGPIPE ignored (SigIgn %x, %v)", f, mask, err)
		}
	}
	if got := procField(t, filepath.Join(home, "local.status"), "Name"); got != "qmail-local" {
		t.Errorf("parent of the .qmail program is %q, want qmail-local", got)
	}
	if s.count("delivery 1: success") == 0 && s.count("success: did_0+0+1") == 0 {
		t.Errorf("no successful local delivery; log:\n%s", s.log())
	}
}

func containsInt(list []int, x int) bool {
	for _, v := range list {
		if v == x {
			return true
		}
	}
	return false
}
