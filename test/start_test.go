package test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/cdb"
	"github.com/hqmail/hqmail/pkg/spawn/lspawn"
	"github.com/hqmail/hqmail/pkg/spawnproto"
	"github.com/hqmail/hqmail/test/harness"
)

func sendstatus(tr *harness.Tree) map[string]string {
	m := map[string]string{}
	b, _ := os.ReadFile(tr.Path("queue", "lock", "sendstatus"))
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, " "); ok {
			m[k] = v
		}
	}
	return m
}

// treeProcs returns the live processes whose executable is in the tree.
func treeProcs(tr *harness.Tree) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err == nil && strings.HasPrefix(exe, tr.Path("bin")+"/") {
			st, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
			if bytes.Contains(st, []byte(") Z ")) {
				continue // a zombie its parent has not reaped yet
			}
			out = append(out, e.Name()+" "+exe)
		}
	}
	return out
}

// TestStartSignals: HUP and ALRM sent to qmail-start reach qmail-send;
// TERM makes qmail-send exit, qmail-start exits 0 and no program of the
// tree is left running.
func TestStartSignals(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	tr := harness.Install(t)
	s := startQmail(t, tr, "./Maildir/")
	pid := s.cmd.Process.Pid
	harness.WaitFor(t, 20*time.Second, func() bool { return sendstatus(tr)["generation"] != "" })
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGALRM} {
		gen := sendstatus(tr)["generation"]
		syscall.Kill(pid, sig)
		if !harness.Eventually(20*time.Second, func() bool {
			g := sendstatus(tr)["generation"]
			return g != "" && g != gen
		}) {
			t.Fatalf("%v to qmail-start not handled by qmail-send; log:\n%s", sig, s.log())
		}
	}
	syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("qmail-start did not exit after TERM; log:\n%s", s.log())
	}
	if code := s.state.ExitCode(); code != 0 {
		t.Errorf("qmail-start exit %d, want 0", code)
	}
	if s.count("status: exiting") != 1 {
		t.Errorf("no status: exiting; log:\n%s", s.log())
	}
	if left := treeProcs(tr); len(left) > 0 {
		t.Errorf("processes left after qmail-start exited: %v", left)
	}
}

// TestStartSendKilled: when qmail-send dies, qmail-start exits 111 once
// the spawners, qmail-clean and the logger have seen end of file.
func TestStartSendKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	tr := harness.Install(t)
	s := startQmail(t, tr, "./Maildir/", "cat")
	var send int
	harness.WaitFor(t, 20*time.Second, func() bool {
		b, _ := os.ReadFile(tr.Path("queue", "lock", "sendmutex"))
		fmt.Sscan(string(b), &send)
		return send > 0
	})
	syscall.Kill(send, syscall.SIGKILL)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatal("qmail-start did not exit after qmail-send was killed")
	}
	if code := s.state.ExitCode(); code != 111 {
		t.Errorf("qmail-start exit %d, want 111", code)
	}
	harness.WaitFor(t, 20*time.Second, func() bool { return len(treeProcs(tr)) == 0 })
}

// TestStartSendCrashLogged: a qmail-send that crashes (SIGQUIT makes the
// Go runtime print its goroutines and exit 2, as a panic does) leaves its
// trace in the log, whose descriptor it writes to, and qmail-start says
// that it ended; the trace went to fd 2, the read end of a spawner's
// pipe, and the log stopped mid-stream without a word.
func TestStartSendCrashLogged(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	tr := harness.Install(t)
	var out testutil.SyncBuffer
	cmd := exec.Command(tr.Bin("qmail-start"), "./Maildir/")
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-done })
	var send int
	harness.WaitFor(t, 20*time.Second, func() bool {
		b, _ := os.ReadFile(tr.Path("queue", "lock", "sendmutex"))
		fmt.Sscan(string(b), &send)
		return send > 0 && strings.Contains(out.String(), "status: local")
	})
	syscall.Kill(send, syscall.SIGQUIT)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("qmail-start did not exit after qmail-send crashed")
	}
	log := out.String()
	for _, want := range []string{"SIGQUIT: quit", "goroutine ", "qmail-start: alert: qmail-send exited with status 2"} {
		if !strings.Contains(log, want) {
			t.Errorf("no %q in the log:\n%s", want, log)
		}
	}
}

// TestStartMissingProgram: a program that cannot be started makes
// qmail-start exit 111 with a message; the helpers already started see end
// of file and exit.
func TestStartMissingProgram(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	tr := harness.Install(t)
	os.Remove(tr.Bin("qmail-send"))
	cmd := tr.Command("qmail-start", "./Maildir/")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("qmail-start did not exit")
	}
	if cmd.ProcessState.ExitCode() != 111 || !strings.Contains(stderr.String(), "qmail-start: fatal: unable to start qmail-send") {
		t.Errorf("exit %d, stderr %q", cmd.ProcessState.ExitCode(), stderr.String())
	}
	harness.WaitFor(t, 20*time.Second, func() bool { return len(treeProcs(tr)) == 0 })
}

// TestStartHeld: control/startheld makes qmail-start create holdremote
// before qmail-send starts; an existing holdremote is left alone.
func TestStartHeld(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	tests := []struct {
		name, startheld, before, want, status string
		hasBefore                             bool
	}{
		{"empty startheld holds all", "", "", "1\n", "all", false},
		{"startheld lists domains", "dialup.example\n", "", "dialup.example\n", "dialup.example", false},
		// A hold of every destination goes above domains held by name,
		// as qmailctl boot puts it (QA rdialup2: a VPN host started
		// offline sent mail for every other domain).
		{"existing holdremote: everything held above it", "", "other.example\n", "*\nother.example\n", "all", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := harness.Install(t)
			tr.Control("startheld", tc.startheld)
			if tc.hasBefore {
				tr.Control("holdremote", tc.before)
			} else {
				tr.RemoveControl("holdremote")
			}
			s := startQmail(t, tr, "./Maildir/")
			b, err := os.ReadFile(tr.Path("control", "holdremote"))
			if err != nil || string(b) != tc.want {
				t.Errorf("holdremote = %q, %v; want %q", b, err, tc.want)
			}
			if fi, err := os.Stat(tr.Path("control", "holdremote")); err == nil && fi.Mode().Perm() != 0o644 && !tc.hasBefore {
				t.Errorf("holdremote mode %v", fi.Mode())
			}
			if !harness.Eventually(20*time.Second, func() bool { return sendstatus(tr)["holdremote"] == tc.status }) {
				t.Errorf("sendstatus holdremote %q, want %q; log:\n%s", sendstatus(tr)["holdremote"], tc.status, s.log())
			}
		})
	}
	// Without startheld nothing is created.
	tr := harness.Install(t)
	tr.RemoveControl("startheld")
	tr.RemoveControl("holdremote")
	startQmail(t, tr, "./Maildir/")
	if _, err := os.Stat(tr.Path("control", "holdremote")); err == nil {
		t.Error("holdremote created without startheld")
	}
}

// TestNewu: qmail-newu compiles users/assign; qmail-lspawn's lookup finds
// exact and wildcard entries; a bad file leaves the old cdb in place.
func TestNewu(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	tr := harness.Install(t)
	assign := "=joe:joe:1001:100:/home/joe:::\n" +
		"=joe:second:1:1:/:::\n" +
		"+list-:lists:1002:100:/home/lists:-:l-:\n" +
		"+:alias:1003:100:/var/qmail/alias:-::\n" +
		".\n"
	os.WriteFile(tr.Path("users", "assign"), []byte(assign), 0o644)
	if out, code := tr.Run(t, nil, "qmail-newu"); code != 0 {
		t.Fatalf("qmail-newu: %d %s", code, out)
	}
	fi, err := os.Stat(tr.Path("users", "cdb"))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("users/cdb: %v %v", fi, err)
	}
	// The owner and group qmail-install gave it are kept: -check passes.
	if out, code := tr.Run(t, nil, "qmail-install", "-root", tr.Root, "-check"); code != 0 {
		t.Errorf("qmail-install -check after qmail-newu: exit %d: %s", code, out)
	}
	if _, err := os.Stat(tr.Path("users", "cdb.tmp")); err == nil {
		t.Error("users/cdb.tmp left behind")
	}
	db, err := cdb.Open(tr.Path("users", "cdb"))
	if err != nil {
		t.Fatal(err)
	}
	for local, want := range map[string]string{
		"Joe":      "joe 1001 100 /home/joe  ",
		"list-Foo": "lists 1002 100 /home/lists - l-Foo",
		"bob":      "alias 1003 100 /var/qmail/alias - bob",
	} {
		f, ok, err := lspawn.Lookup(db.Reader, local)
		p, pok := lspawn.ParseFields(f)
		if err != nil || !ok || !pok {
			t.Errorf("%s: %q %v %v", local, f, ok, err)
			continue
		}
		if got := fmt.Sprintf("%s %d %d %s %s %s", p.User, p.UID, p.GID, p.Home, p.Dash, p.Ext); got != want {
			t.Errorf("%s: %q, want %q", local, got, want)
		}
	}
	db.Close()
	before, _ := os.ReadFile(tr.Path("users", "cdb"))
	for _, bad := range []string{"=joe:joe:1:1:/h:::\n", "\n.\n", ":x:1:1:/:::\n.\n", "=joe:1:1\n.\n"} {
		os.WriteFile(tr.Path("users", "assign"), []byte(bad), 0o644)
		out, code := tr.Run(t, nil, "qmail-newu")
		if code != 111 || !strings.Contains(out, "qmail-newu: fatal: bad format in users/assign") {
			t.Errorf("%q: exit %d %q", bad, code, out)
		}
		if after, _ := os.ReadFile(tr.Path("users", "cdb")); !bytes.Equal(before, after) {
			t.Errorf("%q: users/cdb changed", bad)
		}
	}
}

// TestLspawnProtocol drives the real qmail-lspawn as qmail-send would:
// concurrency byte, request checks, uid 0 refused, wrong owner, EOF exit.
func TestLspawnProtocol(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	tr := harness.Install(t)
	ids := tr.IDs()
	os.WriteFile(tr.Path("users", "assign"), []byte("=boss:root:0:0:/root:::\n.\n"), 0o644)
	if out, code := tr.Run(t, nil, "qmail-newu"); code != 0 {
		t.Fatalf("qmail-newu: %d %s", code, out)
	}
	mess := tr.Path("queue", "mess", "0")
	good := filepath.Join(mess, "1001")
	other := filepath.Join(mess, "1002")
	os.WriteFile(good, []byte("x\n"), 0o644)
	os.Chown(good, ids.Qmailq.UID, ids.Qmail)
	os.WriteFile(other, []byte("x\n"), 0o644)
	os.Chown(other, ids.Qmailq.UID+1, ids.Qmail)

	cmd := exec.Command(tr.Bin("qmail-lspawn"), "./Maildir/")
	in, _ := cmd.StdinPipe()
	outp, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	br := bufio.NewReader(outp)
	reports := make(chan spawnproto.Report, 10)
	first := make(chan byte, 1)
	go func() {
		b, err := br.ReadByte()
		if err != nil {
			close(first)
			return
		}
		first <- b
		var dec spawnproto.ReportDecoder
		buf := make([]byte, 512)
		for {
			n, err := br.Read(buf)
			dec.Feed(buf[:n], func(r spawnproto.Report) { reports <- r })
			if err != nil {
				close(reports)
				return
			}
		}
	}()
	select {
	case b := <-first:
		if b != 120 {
			t.Fatalf("concurrency byte %d", b)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no concurrency byte")
	}
	tests := []struct {
		slot       int
		mess, rcpt string
		want       string
	}{
		{1, "0/1001", "boss@testhost.example", "ZNot allowed to perform deliveries as root.\n"},
		{2, "0/1002", "x@testhost.example", "ZSorry, message has wrong owner. (#4.3.5)\n"},
		{3, "0/9999", "x@testhost.example", "Zqmail-spawn unable to open message. (#4.3.0)\n"},
		{4, "0/1001", "nohost", "DSorry, address must include host name. (#5.1.3)\n"},
		{5, "0/x", "a@b", "DInternal error: messid has nonnumerics. (#5.3.5)\n"},
		{6, "0/1001", "@testhost.example", "K"},
	}
	for _, tc := range tests {
		if tc.mess == "0/1002" && os.Geteuid() != 0 {
			continue // cannot give a file to another owner
		}
		r := spawnproto.Request{Slot: tc.slot, Mess: tc.mess, Sender: "s@x", Recipient: tc.rcpt}
		in.Write(r.Encode())
		select {
		case rep := <-reports:
			if got := string(rep.Letter) + rep.Text; rep.Slot != tc.slot || got != tc.want {
				t.Errorf("slot %d: got %d %q, want %q", tc.slot, rep.Slot, got, tc.want)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("slot %d: no report", tc.slot)
		}
	}
	in.Close()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
		if cmd.ProcessState.ExitCode() != 0 {
			t.Errorf("exit %d", cmd.ProcessState.ExitCode())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("qmail-lspawn did not exit at EOF")
	}
}

// TestStartUnprivileged installs and runs a tree as an ordinary user
// (uid TestUIDBase+200, started from root with exec credentials): every
// process runs as that user and local mail reaches the user's home.
func TestStartUnprivileged(t *testing.T) { testShared(t, true) }

// TestStartSharedAsRoot: root starting a tree installed by an ordinary user
// runs every program as that user, not as root.
func TestStartSharedAsRoot(t *testing.T) { testShared(t, false) }

func testShared(t *testing.T, asOwner bool) {
	if testing.Short() {
		t.Skip("integration test")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to become a second ordinary user; as an ordinary user the other tests cover this")
	}
	const uid, gid = harness.TestUIDBase + 200, harness.TestUIDBase + 200
	bin := harness.RequireBin(t, "qmail-install")
	root := harness.TempRoot(t)
	os.Chown(root, uid, gid)
	cred := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{gid}}}
	inst := exec.Command(bin, "-root", root, "-me", "testhost.example")
	inst.Env = []string{"PATH=/usr/bin:/bin", "USER=tester"}
	inst.SysProcAttr = cred
	if out, err := inst.CombinedOutput(); err != nil {
		t.Fatalf("qmail-install as uid %d: %v\n%s", uid, err, out)
	}
	start := exec.Command(filepath.Join(root, "bin", "qmail-start"), "./Maildir/")
	start.Dir = "/"
	start.Env = []string{"PATH=/usr/bin:/bin"}
	start.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if asOwner {
		start.SysProcAttr.Credential = cred.Credential
	}
	out, _ := start.StdoutPipe()
	if err := start.Start(); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	logDone := make(chan struct{})
	go func() { log.ReadFrom(out); close(logDone) }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			syscall.Kill(-start.Process.Pid, syscall.SIGKILL)
			<-logDone
			start.Wait()
		}
	})
	tr := &harness.Tree{Root: root}
	harness.WaitFor(t, 20*time.Second, func() bool { return sendstatus(tr)["pid"] != "" })

	procs := childrenOf(start.Process.Pid)
	// lspawn, rspawn, clean, queued, send
	if len(procs) != 5 {
		t.Errorf("%d children, want 5: %v", len(procs), procs)
	}
	for _, p := range procs {
		if p.uid != [4]int{uid, uid, uid, uid} || p.gid != [4]int{gid, gid, gid, gid} {
			t.Errorf("%s: uid %v gid %v, want %d", p.name, p.uid, p.gid, uid)
		}
	}
	// Queue as the user (qmail-queue is setuid to the user itself here).
	q := exec.Command(filepath.Join(root, "bin", "qmail-inject"), "tester@testhost.example")
	q.Env = []string{"PATH=/usr/bin:/bin", "USER=tester"}
	q.SysProcAttr = cred
	q.Stdin = strings.NewReader("Subject: shared\n\nhello\n")
	if o, err := q.CombinedOutput(); err != nil {
		t.Fatalf("qmail-inject: %v %s", err, o)
	}
	harness.WaitForGlob(t, 30*time.Second, filepath.Join(root, "home", "tester", "Maildir", "new", "*"), 1)
	start.Process.Signal(syscall.SIGTERM)
	<-logDone
	start.Wait()
	stopped = true
	if code := start.ProcessState.ExitCode(); code != 0 {
		t.Errorf("qmail-start exit %d; log:\n%s", code, log.String())
	}
}

// TestRspawnProtocol drives the real qmail-rspawn: tcpto is zero-filled at
// start, $QMAILREMOTE replaces qmail-remote, its output becomes the report;
// after qmail-send's end of the report pipe is gone, a report write fails
// with EPIPE instead of killing qmail-rspawn, which still exits 0 at EOF.
func TestRspawnProtocol(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	tr := harness.Install(t)
	ids := tr.IDs()
	tcpto := tr.Path("queue", "lock", "tcpto")
	if err := os.WriteFile(tcpto, bytes.Repeat([]byte{0x55}, 1024), 0o644); err != nil {
		t.Fatal(err)
	}
	msg := tr.Path("queue", "mess", "0", "2001")
	os.WriteFile(msg, []byte("body\n"), 0o644)
	os.Chown(msg, ids.Qmailq.UID, ids.Qmail)
	fake := filepath.Join(harness.TempRoot(t), "fake-remote")
	os.WriteFile(fake, []byte("#!/bin/sh\ncat >/dev/null\nprintf 's%s does not like recipient.\\n\\000DGiving up on %s.\\n\\000' \"$1\" \"$1\"\n"), 0o755)

	cmd := exec.Command(tr.Bin("qmail-rspawn"))
	cmd.Env = []string{"QMAILREMOTE=" + fake}
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	br := bufio.NewReader(out)
	// The wide announcement: NUL, then 500 in two bytes; slots are two
	// bytes from then on.
	if limit, width, err := spawnproto.ReadAnnounce(br); err != nil || limit != 500 || width != spawnproto.Wide {
		t.Fatalf("announcement %d width %d %v", limit, width, err)
	}
	if b, _ := os.ReadFile(tcpto); !bytes.Equal(b, make([]byte, 1024)) {
		t.Error("tcpto not zero-filled")
	}
	r := spawnproto.Request{Slot: 265, Mess: "0/2001", Sender: "s@x", Recipient: "u@far.example"}
	in.Write(r.EncodeWidth(spawnproto.Wide))
	line, err := br.ReadString(0)
	want := "\x01\x09Zfar.example does not like recipient.\nGiving up on far.example.\n\x00"
	if err != nil || line != want {
		t.Errorf("report %q, %v; want %q", line, err, want)
	}
	// qmail-send's end of the report pipe goes away.
	out.Close()
	r = spawnproto.Request{Slot: 10, Mess: "0/2001", Sender: "s@x", Recipient: "nohost"}
	in.Write(r.EncodeWidth(spawnproto.Wide))
	in.Close()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("qmail-rspawn did not exit at EOF")
	}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() || ws.ExitStatus() != 0 {
		t.Errorf("qmail-rspawn ended with %v, want exit 0", cmd.ProcessState)
	}
}

// TestStartGrace: qmail-send is killed while a delivery hangs; qmail-start
// still exits (after its grace period) instead of waiting for the
// delivery, and qmail-lspawn finishes it on its own.
func TestStartGrace(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	tr := harness.Install(t)
	ids := tr.IDs()
	dotq := tr.Path("alias", ".qmail-slow")
	writeFile(t, dotq, "|echo started > slow.started; exec sleep 300\n", 0o644, ids.Alias.UID, ids.Alias.GID)
	s := startQmail(t, tr, "./Maildir/")
	t.Cleanup(func() { syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL) }) // the sleeping delivery
	if err := tr.Queue(t, "a@testhost.example", []string{"slow@testhost.example"}, []byte("Subject: slow\n\n")); err != nil {
		t.Fatal(err)
	}
	harness.WaitForFile(t, 30*time.Second, tr.Path("alias", "slow.started"))
	var send int
	b, _ := os.ReadFile(tr.Path("queue", "lock", "sendmutex"))
	fmt.Sscan(string(b), &send)
	if send <= 0 {
		t.Fatal("no qmail-send pid")
	}
	syscall.Kill(send, syscall.SIGKILL)
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		t.Fatal("qmail-start still waiting for a hung delivery")
	}
	if code := s.state.ExitCode(); code != 111 {
		t.Errorf("exit %d, want 111", code)
	}
	found := false
	for _, p := range treeProcs(tr) {
		if strings.HasSuffix(p, "/qmail-lspawn") {
			found = true
		}
	}
	if !found {
		t.Error("qmail-lspawn did not outlive qmail-start with its delivery running")
	}
}

// TestDaemonHelp: the programs that qmail-start runs answer -h with a
// usage paragraph instead of exiting 111 in silence, and those that take no
// arguments refuse one with 100.
func TestDaemonHelp(t *testing.T) {
	for _, name := range []string{"qmail-send", "qmail-clean", "qmail-rspawn", "qmail-lspawn", "qmail-start", "qmail-queued"} {
		t.Run(name, func(t *testing.T) {
			bin := harness.RequireBin(t, name)
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(bin, "-h")
			cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(""), &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s -h: %v (stderr %q)", name, err, stderr.String())
			}
			if !strings.HasPrefix(stdout.String(), "usage: "+name) || stderr.Len() != 0 {
				t.Fatalf("%s -h: stdout %q stderr %q", name, stdout.String(), stderr.String())
			}
			if name == "qmail-lspawn" || name == "qmail-start" {
				return // their first argument is defaultdelivery
			}
			stdout.Reset()
			cmd = exec.Command(bin, "extra")
			cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(""), &stdout, &stderr
			err := cmd.Run()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 100 || !strings.HasPrefix(stderr.String(), "usage: "+name) {
				t.Fatalf("%s extra: %v, stderr %q", name, err, stderr.String())
			}
		})
	}
}
