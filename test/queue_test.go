package test

import (
	"bytes"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qq"
	"github.com/hqmail/hqmail/test/harness"
)

// runQueue runs ROOT/bin/qmail-queue with msg on fd 0 and env on fd 1 (a
// file), as uid/gid cred when cred is not nil, and returns its exit code.
func runQueue(t *testing.T, tr *harness.Tree, msg, env []byte, cred *syscall.Credential) int {
	t.Helper()
	ef, err := os.CreateTemp("", "env-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(ef.Name())
	defer ef.Close()
	ef.Write(env)
	ef.Seek(0, 0)
	cmd := exec.Command(tr.Bin("qmail-queue"))
	cmd.Stdin = bytes.NewReader(msg)
	cmd.Stdout = ef
	cmd.Dir = "/"
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("qmail-queue: %v", err)
	}
	return 0
}

// queueState lists the files below queue/ that qmail-queue writes.
func queueState(tr *harness.Tree) map[string][]string {
	return map[string][]string{
		"pid": tr.QueueFiles("pid"), "mess": tr.QueueFiles("mess"),
		"intd": tr.QueueFiles("intd"), "todo": tr.QueueFiles("todo"),
	}
}

func emptyQueue(t *testing.T, tr *harness.Tree) {
	t.Helper()
	for d, f := range queueState(tr) {
		if len(f) != 0 {
			t.Errorf("queue/%s holds %v", d, f)
		}
	}
}

func TestQueueByteForByte(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	tr := harness.Install(t)
	msg := []byte("From: a@example.com\nSubject: x\n\n\x00binary\r\n\xfe\nlast line without newline")
	env := qq.Envelope{Sender: "a@example.com", Recipients: []string{"b@example.com", "c@[127.0.0.1]", "d@e"}}
	if err := tr.Queue(t, env.Sender, env.Recipients, msg); err != nil {
		t.Fatal(err)
	}
	todo := tr.QueueFiles("todo")
	if len(todo) != 1 {
		t.Fatalf("todo holds %v", todo)
	}
	id, _ := strconv.ParseUint(todo[0], 10, 64)
	mess := tr.Path("queue", "mess", strconv.FormatUint(id%23, 10), todo[0])
	got, err := os.ReadFile(mess)
	if err != nil {
		t.Fatal(err)
	}
	nl := bytes.IndexByte(got, '\n')
	recv := string(got[:nl+1])
	if !strings.HasPrefix(recv, "Received: (qmail ") || !strings.Contains(recv, fmt.Sprintf(" invoked by uid %d); ", os.Getuid())) ||
		!strings.HasSuffix(recv, " -0000\n") {
		t.Errorf("Received line %q", recv)
	}
	if !bytes.Equal(got[nl+1:], msg) {
		t.Errorf("message differs:\n%q\n%q", got[nl+1:], msg)
	}
	stored, _ := os.ReadFile(tr.Path("queue", "todo", todo[0]))
	// u<uid>\0p<pid>\0 then the records.
	parts := bytes.SplitN(stored, []byte{0}, 3)
	if len(parts) != 3 || string(parts[0]) != "u"+strconv.Itoa(os.Getuid()) || parts[1][0] != 'p' {
		t.Fatalf("todo starts %q", stored)
	}
	back, err := qq.ParseEnvelope(append(parts[2], 0))
	if err != nil {
		t.Fatal(err)
	}
	if back.Sender != env.Sender || strings.Join(back.Recipients, ",") != strings.Join(env.Recipients, ",") {
		t.Errorf("envelope back %+v", back)
	}
	var a, b unix.Stat_t
	unix.Stat(tr.Path("queue", "todo", todo[0]), &a)
	unix.Stat(tr.Path("queue", "intd", todo[0]), &b)
	if a.Ino != b.Ino {
		t.Errorf("todo and intd are different inodes")
	}
	var m unix.Stat_t
	unix.Stat(mess, &m)
	if m.Ino != id {
		t.Errorf("mess inode %d named %d", m.Ino, id)
	}
	if len(tr.QueueFiles("pid")) != 0 {
		t.Errorf("pid/ not empty")
	}
	if os.Geteuid() != 0 {
		return
	}
	// Owners and modes as root: made by qmailq (setuid), mode 0644.
	ids := tr.IDs()
	for _, p := range []string{mess, tr.Path("queue", "todo", todo[0])} {
		var st unix.Stat_t
		unix.Stat(p, &st)
		if int(st.Uid) != ids.Qmailq.UID || st.Mode&0o7777 != 0o644 {
			t.Errorf("%s: uid %d mode %o, want %d 0644", p, st.Uid, st.Mode&0o7777, ids.Qmailq.UID)
		}
	}
}

func TestQueueReceivedWho(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run qmail-queue as alias, qmaild, qmails")
	}
	tr := harness.Install(t)
	ids := tr.IDs()
	for _, tc := range []struct {
		uid  int
		want string
	}{
		{ids.Alias.UID, "by alias"}, {ids.Qmaild.UID, "from network"}, {ids.Qmails.UID, "for bounce"},
		{ids.Qmailr.UID, fmt.Sprintf("by uid %d", ids.Qmailr.UID)}, {4242, "by uid 4242"},
	} {
		before := tr.QueueFiles("mess")
		code := runQueue(t, tr, []byte("x\n"), []byte("Fa@b\x00Tc@d\x00\x00"),
			&syscall.Credential{Uid: uint32(tc.uid), Gid: uint32(ids.Nofiles)})
		if code != 0 {
			t.Fatalf("uid %d: exit %d", tc.uid, code)
		}
		var id string
		seen := map[string]bool{}
		for _, f := range before {
			seen[f] = true
		}
		for _, f := range tr.QueueFiles("mess") {
			if !seen[f] {
				id = f
			}
		}
		n, _ := strconv.ParseUint(id, 10, 64)
		b, _ := os.ReadFile(tr.Path("queue", "mess", strconv.FormatUint(n%23, 10), id))
		if !strings.Contains(string(b), " invoked "+tc.want+"); ") {
			t.Errorf("uid %d: %q", tc.uid, strings.SplitN(string(b), "\n", 2)[0])
		}
		envb, _ := os.ReadFile(tr.Path("queue", "todo", id))
		if !bytes.HasPrefix(envb, []byte("u"+strconv.Itoa(tc.uid)+"\x00")) {
			t.Errorf("uid %d: todo %q", tc.uid, envb)
		}
	}
}

// TestQueueSearchOnlyHome: qmail-queue enters QMAILHOME and queue/ as
// qmail's chdir does, with search permission only: a tree whose home an
// admin made 0711 still takes mail (it exited 61, home trouble).
func TestQueueSearchOnlyHome(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run qmail-queue as another user")
	}
	tr := harness.Install(t)
	ids := tr.IDs()
	if err := os.Chmod(tr.Root, 0o711); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(tr.Root, 0o755)
	code := runQueue(t, tr, []byte("x\n"), []byte("Fa@b\x00Tc@d\x00\x00"),
		&syscall.Credential{Uid: uint32(ids.Alias.UID), Gid: uint32(ids.Nofiles)})
	if code != 0 || len(tr.QueueFiles("todo")) != 1 {
		t.Fatalf("exit %d, todo %q", code, tr.QueueFiles("todo"))
	}
}

// TestQueueMultiNoResults: qmail-queue -m without a writable descriptor
// 6 exits 81 before it queues anything (read-only, it committed the first
// message and then exited 81 on its result line).
func TestQueueMultiNoResults(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	tr := harness.Install(t)
	ro, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	for _, fd6 := range []*os.File{nil, ro} {
		cmd := exec.Command(tr.Bin("qmail-queue"), "-m")
		cmd.Stdin = strings.NewReader("2:x\n,0:,")
		ef, err := os.CreateTemp("", "env-")
		if err != nil {
			t.Fatal(err)
		}
		ef.WriteString("Fa@b\x00Tc@d\x00\x00")
		ef.Seek(0, 0)
		cmd.Stdout = ef
		if fd6 != nil {
			// ExtraFiles[3] is descriptor 6; 3-5 stay closed.
			cmd.ExtraFiles = []*os.File{nil, nil, nil, fd6}
		}
		err = cmd.Run()
		ef.Close()
		os.Remove(ef.Name())
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != 81 || len(tr.QueueFiles("todo")) != 0 || len(tr.QueueFiles("mess")) != 0 {
			t.Errorf("fd 6 %v: exit %d (%v), todo %q, mess %q", fd6, code, err, tr.QueueFiles("todo"), tr.QueueFiles("mess"))
		}
	}
}

func TestQueueBadInputBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	tr := harness.Install(t)
	long := strings.Repeat("x", qq.MaxAddr+1)
	for _, tc := range []struct {
		name string
		env  string
		code int
	}{
		{"no F", "Tc@d\x00\x00", 91},
		{"garbage", "hello\n", 91},
		{"empty", "", 54},
		{"truncated", "Fa@b\x00Tc@d\x00", 54},
		{"truncated in address", "Fa@b\x00Tc@", 54},
		{"too long", "Fa@b\x00T" + long + "\x00\x00", 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code := runQueue(t, tr, []byte("Subject: x\n\nbody\n"), []byte(tc.env), nil); code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			emptyQueue(t, tr)
		})
	}
	// fd 1 not readable (a write-only file) is a read error.
	t.Run("unreadable fd 1", func(t *testing.T) {
		f, _ := os.OpenFile(filepath.Join(t.TempDir(), "w"), os.O_WRONLY|os.O_CREATE, 0o600)
		defer f.Close()
		cmd := exec.Command(tr.Bin("qmail-queue"))
		cmd.Stdin = strings.NewReader("x\n")
		cmd.Stdout = f
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 54 {
			t.Errorf("got %v, want exit 54", err)
		}
		emptyQueue(t, tr)
	})
	t.Run("missing queue/todo", func(t *testing.T) {
		os.Rename(tr.Path("queue", "todo"), tr.Path("queue", "todo.away"))
		defer os.Rename(tr.Path("queue", "todo.away"), tr.Path("queue", "todo"))
		if code := runQueue(t, tr, []byte("x\n"), []byte("Fa@b\x00\x00"), nil); code != 66 {
			t.Errorf("exit %d, want 66", code)
		}
		emptyQueue(t, tr)
	})
	// qmail-queue runs as qmailq (setuid) in a root tree and as the owner
	// in a user's tree: a directory without write permission stops it
	// either way, even when the caller is root.
	for _, d := range []struct {
		glob string
		code int
	}{{"queue/pid", 63}, {"queue/mess/*", 64}, {"queue/intd", 65}, {"queue/todo", 66}} {
		t.Run("unwritable "+d.glob, func(t *testing.T) {
			dirs := tr.Glob(d.glob)
			for _, p := range dirs {
				os.Chmod(p, 0o500)
			}
			defer func() {
				for _, p := range dirs {
					os.Chmod(p, 0o700)
				}
				exec.Command(tr.Bin("qmail-install"), "-root", tr.Root).Run() // restore modes
			}()
			if code := runQueue(t, tr, []byte("x\n"), []byte("Fa@b\x00Tc@d\x00\x00"), nil); code != d.code {
				t.Errorf("exit %d, want %d", code, d.code)
			}
			emptyQueue(t, tr)
		})
	}
	t.Run("missing queue", func(t *testing.T) {
		os.Rename(tr.Path("queue"), tr.Path("queue.away"))
		defer os.Rename(tr.Path("queue.away"), tr.Path("queue"))
		if code := runQueue(t, tr, []byte("x\n"), []byte("Fa@b\x00\x00"), nil); code != 62 {
			t.Errorf("exit %d, want 62", code)
		}
	})
}

// TestQueueDiskFull mounts a small tmpfs over queue/ (root only).
func TestQueueDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root; disk full is simulated in pkg/queue's unit tests")
	}
	tr := harness.Install(t)
	q := tr.Path("queue")
	if err := unix.Mount("tmpfs", q, "tmpfs", 0, "size=256k,mode=0750"); err != nil {
		t.Skipf("cannot mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(q, unix.MNT_DETACH) })
	// Rebuild the queue inside the tmpfs.
	out, err := exec.Command(tr.Bin("qmail-install"), "-root", tr.Root).CombinedOutput()
	if err != nil {
		t.Fatalf("qmail-install: %v\n%s", err, out)
	}
	msg := bytes.Repeat([]byte("0123456789abcdef\n"), 40000) // 680 KB
	if code := runQueue(t, tr, msg, []byte("Fa@b\x00Tc@d\x00\x00"), nil); code != 53 {
		t.Errorf("exit %d, want 53", code)
	}
	emptyQueue(t, tr)
	// The space is given back: a small message fits afterwards.
	if code := runQueue(t, tr, []byte("small\n"), []byte("Fa@b\x00Tc@d\x00\x00"), nil); code != 0 {
		t.Errorf("small message after disk full: exit %d", code)
	}
}

func TestQueueTrigger(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	tr := harness.Install(t)
	fd, err := unix.Open(tr.Path("queue", "lock", "trigger"), unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if code := runQueue(t, tr, []byte("x\n"), []byte("Fa@b\x00Tc@d\x00\x00"), nil); code != 0 {
		t.Fatalf("exit %d", code)
	}
	buf := make([]byte, 16)
	n, err := unix.Read(fd, buf)
	if n != 1 {
		t.Errorf("trigger read %d bytes (%v), want 1", n, err)
	}
	// No reader: the poke is ignored and queuing still succeeds.
	unix.Close(fd)
	fd = -1
	if code := runQueue(t, tr, []byte("x\n"), []byte("Fa@b\x00\x00"), nil); code != 0 {
		t.Errorf("without a reader: exit %d", code)
	}
}

// startQueue starts qmail-queue on two pipes and returns the writing ends.
func startQueue(t *testing.T, tr *harness.Tree) (*exec.Cmd, *os.File, *os.File) {
	t.Helper()
	mr, mw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	er, ew, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tr.Bin("qmail-queue"))
	cmd.Stdin = mr
	cmd.Stdout = er
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	mr.Close()
	er.Close()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		mw.Close()
		ew.Close()
	})
	return cmd, mw, ew
}

// checkCrashInvariant: every todo/ID names a complete message and envelope;
// leftovers without todo/ are only in pid/, mess/ and intd/.
func checkCrashInvariant(t *testing.T, tr *harness.Tree, msg []byte, env []byte) (complete int) {
	t.Helper()
	for _, id := range tr.QueueFiles("todo") {
		n, _ := strconv.ParseUint(id, 10, 64)
		m, err := os.ReadFile(tr.Path("queue", "mess", strconv.FormatUint(n%23, 10), id))
		if err != nil {
			t.Errorf("todo/%s without mess: %v", id, err)
			continue
		}
		if !bytes.HasSuffix(m, msg) || bytes.Count(m, []byte("\n")) != bytes.Count(msg, []byte("\n"))+1 {
			t.Errorf("todo/%s: mess incomplete (%d bytes)", id, len(m))
		}
		e, _ := os.ReadFile(tr.Path("queue", "todo", id))
		if !bytes.HasSuffix(append(e, 0), env) {
			t.Errorf("todo/%s: envelope incomplete %q", id, e)
		}
		complete++
	}
	for _, d := range []string{"info", "local", "remote", "bounce"} {
		if f := tr.QueueFiles(d); len(f) != 0 {
			t.Errorf("queue/%s holds %v", d, f)
		}
	}
	return complete
}

func TestQueueKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	tr := harness.Install(t)
	msg := bytes.Repeat([]byte("line of a message\n"), 3000)
	env := []byte("Fa@b\x00Tc@d\x00Te@f\x00\x00")

	t.Run("blocked reading the message", func(t *testing.T) {
		cmd, mw, _ := startQueue(t, tr)
		mw.Write(msg[:1000])
		harness.WaitFor(t, 30*time.Second, func() bool { return len(tr.QueueFiles("mess")) > 0 })
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if n := checkCrashInvariant(t, tr, msg, env); n != 0 {
			t.Errorf("%d messages queued", n)
		}
	})
	t.Run("blocked reading the envelope", func(t *testing.T) {
		cmd, mw, ew := startQueue(t, tr)
		mw.Write(msg)
		mw.Close()
		ew.Write(env[:7])
		harness.WaitFor(t, 30*time.Second, func() bool { return len(tr.QueueFiles("intd")) > 0 })
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if n := checkCrashInvariant(t, tr, msg, env); n != 0 {
			t.Errorf("%d messages queued", n)
		}
	})
	t.Run("random moments", func(t *testing.T) {
		rng := rand.New(rand.NewSource(time.Now().UnixNano()))
		exited := 0
		for i := 0; i < 40; i++ {
			cmd, mw, ew := startQueue(t, tr)
			done := make(chan error, 1)
			go func() {
				_, err := mw.Write(msg)
				mw.Close()
				if err == nil {
					_, err = ew.Write(env)
				}
				ew.Close()
				done <- err
			}()
			time.Sleep(time.Duration(rng.Intn(4000)) * time.Microsecond)
			cmd.Process.Signal(syscall.SIGKILL)
			err := cmd.Wait()
			if err == nil {
				exited++
			}
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("writer stuck")
			}
		}
		n := checkCrashInvariant(t, tr, msg, env)
		t.Logf("40 kills: %d finished before the kill, %d complete messages in todo/", exited, n)
		if n < exited {
			t.Errorf("%d runs exited 0 but only %d messages are queued", exited, n)
		}
	})
	// Queuing still works after all of this.
	if err := tr.Queue(t, "a@b", []string{"c@d"}, []byte("after\n")); err != nil {
		t.Errorf("queue after kills: %v", err)
	}
}

// TestQueueLeftoversCleaned: what kill -9 leaves behind (mess/ and intd/
// without todo/, a pid/ name) is removed by qmail-send's and qmail-clean's
// cleanup once older than 36 hours, while a complete message queued next to
// them is delivered.
func TestQueueLeftoversCleaned(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	tr := harness.Install(t)
	msg := bytes.Repeat([]byte("x\n"), 1000)
	// S2: killed while reading the message; S3: killed while reading the
	// envelope.
	cmd, mw, _ := startQueue(t, tr)
	mw.Write(msg[:100])
	harness.WaitFor(t, 30*time.Second, func() bool { return len(tr.QueueFiles("mess")) == 1 })
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	cmd, mw, ew := startQueue(t, tr)
	mw.Write(msg)
	mw.Close()
	ew.Write([]byte("Fa@b\x00Tc"))
	harness.WaitFor(t, 30*time.Second, func() bool { return len(tr.QueueFiles("intd")) == 1 })
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	// A pid/ name left by a crash between create and link.
	stalePid := tr.Path("queue", "pid", "1.1.1")
	if err := os.WriteFile(stalePid, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	leftovers := append(tr.Glob("queue/mess/*/*"), stalePid)
	if len(leftovers) != 3 {
		t.Fatalf("leftovers %v", leftovers)
	}
	old := time.Now().Add(-40 * time.Hour)
	for _, p := range leftovers {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	if ids := tr.IDs(); os.Geteuid() == 0 {
		os.Chown(stalePid, ids.Qmailq.UID, ids.Qmail)
	}
	if err := tr.Queue(t, "a@b", []string{"postmaster@testhost.example"}, []byte("Subject: real\n\nreal\n")); err != nil {
		t.Fatal(err)
	}
	tr.Start(t, "./Maildir/")
	got := harness.WaitMaildir(t, 60*time.Second, tr.AliasMaildir(), 1)
	if !bytes.Contains(got[0], []byte("Subject: real")) {
		t.Errorf("delivered %q", got[0])
	}
	harness.WaitFor(t, 60*time.Second, func() bool {
		for _, p := range leftovers {
			if _, err := os.Stat(p); err == nil {
				return false
			}
		}
		return len(tr.QueueFiles("intd")) == 0
	})
}
