package test

import (
	"bytes"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hqmail/hqmail/pkg/qq"
	"github.com/hqmail/hqmail/test/harness"
)

// setidUser is the ordinary user of the tests below: no qmail user of
// the trees (harness.TestUIDBase..+6), no passwd entry needed.
const setidUser = harness.TestUIDBase + 50

// runQueueAs runs the qmail-queue at prog as uid/gid with msg and env and
// returns its exit code and what it wrote on fd 2. With multi, it runs
// qmail-queue -m, msg framed, with fd 6 a file for its result lines.
func runQueueAs(t *testing.T, prog string, uid, gid int, msg, env []byte, multi bool) (int, string) {
	t.Helper()
	ef, err := os.CreateTemp("", "env-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(ef.Name())
	defer ef.Close()
	ef.Write(env)
	ef.Seek(0, 0)
	var stderr bytes.Buffer
	cmd := exec.Command(prog)
	cmd.Stdin = bytes.NewReader(msg)
	if multi {
		cmd.Args = append(cmd.Args, "-m")
		cmd.Stdin = strings.NewReader(strconv.Itoa(len(msg)) + ":" + string(msg) + ",0:,")
		rf, err := os.CreateTemp("", "results-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(rf.Name())
		defer rf.Close()
		cmd.ExtraFiles = []*os.File{nil, nil, nil, rf}
	}
	cmd.Stdout = ef
	cmd.Stderr = &stderr
	cmd.Dir = "/"
	cmd.SysProcAttr = credential(uid, gid)
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), stderr.String()
	}
	if err != nil {
		t.Fatalf("%s: %v", prog, err)
	}
	return 0, stderr.String()
}

// TestQueueSetIDForeignTree: an ordinary user with a hard link to the
// set-uid qmail-queue in a directory of their own (which Linux allows
// where fs.protected_hardlinks is off; root makes the link here) has it
// take that directory for the tree: with a queue link to the real queue
// and an etc/ids naming the user qmaild, the message went into the real
// queue with a forged "invoked from network" Received line. qmail-queue
// refuses such a tree (exit 61, a line on fd 2) and queues nothing; the
// same user through the tree's own qmail-queue still queues, "by uid N".
func TestQueueSetIDForeignTree(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: a set-uid qmail-queue of another user, and a hard link to it")
	}
	tr := harness.Install(t)
	ids := tr.IDs()
	uid := setidUser

	// The user's tree: ~/evil/bin/qmail-queue (the hard link),
	// ~/evil/queue -> the real queue, ~/evil/etc/ids with the user as
	// qmaild; everything the user's, as they would have made it.
	home := harness.TempRoot(t)
	evil := filepath.Join(home, "evil")
	for _, d := range []string{"evil", "evil/bin", "evil/etc"} {
		if err := os.Mkdir(filepath.Join(home, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(evil, "bin", "qmail-queue")
	if err := os.Link(tr.Bin("qmail-queue"), link); err != nil {
		t.Skipf("cannot hard-link the set-uid qmail-queue (another file system?): %v", err)
	}
	if err := os.Symlink(tr.Path("queue"), filepath.Join(evil, "queue")); err != nil {
		t.Fatal(err)
	}
	forged := *ids
	forged.Qmaild.UID, forged.Qmaild.GID = uid, uid
	if err := os.WriteFile(filepath.Join(evil, "etc", "ids"), []byte(forged.Format()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"evil", "evil/bin", "evil/etc", "evil/etc/ids", "evil/queue"} {
		if err := os.Lchown(filepath.Join(home, p), uid, uid); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(link); err != nil || fi.Mode()&os.ModeSetuid == 0 {
		t.Fatalf("%s: %v, mode %v: not the set-uid program", link, err, fi.Mode())
	}

	msg := []byte("Subject: forged\n\nhello\n")
	env := []byte("Fu@example.com\x00Tv@example.com\x00\x00")
	for _, multi := range []bool{false, true} {
		code, stderr := runQueueAs(t, link, uid, uid, msg, env, multi)
		if code != qq.ExitHome {
			t.Errorf("qmail-queue (-m %v) from %s as uid %d: exit %d, want %d (trouble in home directory); fd 2: %q",
				multi, link, uid, code, qq.ExitHome, stderr)
		}
		if !strings.HasPrefix(stderr, "qmail-queue: fatal: refusing the tree "+evil+": "+evil+" is owned by uid "+strconv.Itoa(uid)) {
			t.Errorf("fd 2 does not say which tree is refused and why: %q", stderr)
		}
		t.Logf("-m %v: exit %d, fd 2: %s", multi, code, stderr)
	}
	for _, m := range tr.Glob("queue/mess/*/*") {
		b, _ := os.ReadFile(m)
		t.Logf("queued %s: %q", m, b)
	}
	emptyQueue(t, tr)

	// The same user through the tree's own program: queued, by uid N.
	code, stderr := runQueueAs(t, tr.Bin("qmail-queue"), uid, uid, msg, env, false)
	if code != 0 || stderr != "" {
		t.Fatalf("the tree's own qmail-queue as uid %d: exit %d, fd 2 %q", uid, code, stderr)
	}
	mess := tr.Glob("queue/mess/*/*")
	if len(mess) != 1 {
		t.Fatalf("mess holds %v", mess)
	}
	b, err := os.ReadFile(mess[0])
	if err != nil {
		t.Fatal(err)
	}
	if want := " invoked by uid " + strconv.Itoa(uid) + "); "; !bytes.Contains(b, []byte(want)) {
		t.Errorf("Received line: %q, want %q", b, want)
	}
}

// TestQueueSetIDUsersTree: a tree installed by an ordinary user (every
// file that user's, qmail-queue set-uid to them) is that user's to
// trust: another user's qmail-queue through it, set-uid to the tree's
// owner, queues as before.
func TestQueueSetIDUsersTree(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: a tree of one user run by another")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	owner, _ := strconv.Atoi(nobody.Uid)
	group, _ := strconv.Atoi(nobody.Gid)
	inst := harness.RequireBin(t, "qmail-install")
	top := harness.TempRoot(t)
	os.Chown(top, owner, group)
	root := filepath.Join(top, "tree")
	cmd := exec.Command(inst, "-root", root, "-me", "box.example")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(owner), Gid: uint32(group)}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("qmail-install as nobody: %v\n%s", err, out)
	}
	prog := filepath.Join(root, "bin", "qmail-queue")
	if fi, err := os.Stat(prog); err != nil || fi.Mode()&os.ModeSetuid == 0 ||
		int(fi.Sys().(*syscall.Stat_t).Uid) != owner {
		t.Fatalf("%s: %v: not set-uid nobody", prog, err)
	}
	code, stderr := runQueueAs(t, prog, setidUser, setidUser, []byte("hello\n"), []byte("Fa@b\x00Tc@d\x00\x00"), false)
	if code != 0 || stderr != "" {
		t.Fatalf("qmail-queue of nobody's tree as uid %d: exit %d, fd 2 %q", setidUser, code, stderr)
	}
	if todo, _ := filepath.Glob(filepath.Join(root, "queue", "todo", "*")); len(todo) != 1 {
		t.Errorf("todo: %v", todo)
	}
	// The tree's owner with an effective gid that is not its real one
	// (its caller's doing: qmail-queue is never set-gid) is still its
	// owner: nothing to check, it queues (QA rtoday4: it was refused,
	// "owned by uid N ... owned by root").
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("no setpriv(1): the owner with another effective gid is not tried")
	}
	sp := exec.Command(setpriv, "--reuid", nobody.Uid, "--rgid", nobody.Gid, "--egid", strconv.Itoa(setidUser), "--clear-groups", prog)
	sp.Stdin = strings.NewReader("hello again\n")
	ef, err := os.CreateTemp("", "env-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(ef.Name())
	defer ef.Close()
	ef.WriteString("Fa@b\x00Tc@d\x00\x00")
	ef.Seek(0, 0)
	sp.Stdout = ef
	var spErr bytes.Buffer
	sp.Stderr = &spErr
	if err := sp.Run(); err != nil {
		t.Fatalf("qmail-queue run by its owner with another effective gid: %v\n%s", err, spErr.String())
	}
	if todo, _ := filepath.Glob(filepath.Join(root, "queue", "todo", "*")); len(todo) != 2 {
		t.Errorf("todo after the owner's run: %v", todo)
	}
}
