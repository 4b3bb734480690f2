package ctl

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/hold"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/qread/queuetest"
)

// stoppedTree is a tree with one preprocessed message, 100 (a local and a
// remote recipient), and qmail-send not running.
func stoppedTree(t *testing.T) (root, q string) {
	t.Helper()
	root = makeTree(t)
	q = filepath.Join(root, "queue")
	queuetest.WriteFile(t, filepath.Join(root, MutexFile), nil)
	queuetest.Add(t, q, queuetest.Msg{ID: 100, Birth: time.Now(), Body: "hello\n", Sender: "a@example.org",
		Local: []queuetest.Rcpt{{Addr: "me@local"}}, Remote: []queuetest.Rcpt{{Addr: "r@far.example"}}})
	return root, q
}

// TestQueueHoldFlagNotAFile: a hold flag that is a directory or a FIFO
// stops neither queue nor queue ID (qmail-qread lists too): each warns on
// stderr and shows the recipients held as qmail-send holds them.
func TestQueueHoldFlagNotAFile(t *testing.T) {
	for _, tc := range []struct {
		name, flag string
		make       func(string) error
		line, rcpt string
	}{
		{"holdlocal directory", hold.LocalFile, func(p string) error { return os.Mkdir(p, 0o755) },
			" 2/2 partly-held <a@example.org>", "  local  me@local  held\n  remote r@far.example  pending\n"},
		{"holdlocal FIFO", hold.LocalFile, func(p string) error { return syscall.Mkfifo(p, 0o644) },
			" 2/2 partly-held <a@example.org>", "  local  me@local  held\n  remote r@far.example  pending\n"},
		{"holdremote directory", hold.RemoteFile, func(p string) error { return os.Mkdir(p, 0o755) },
			" 2/2 partly-held <a@example.org>", "  local  me@local  pending\n  remote r@far.example  held\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, _ := stoppedTree(t)
			if err := tc.make(filepath.Join(root, "control", tc.flag)); err != nil {
				t.Fatal(err)
			}
			warn := "qmailctl: warning: unable to read control/" + tc.flag + ": "
			code, out, errs := run(t, root, "queue")
			if code != 0 || !strings.HasPrefix(out, "100 ") || !strings.HasSuffix(out, tc.line+"\n") ||
				!strings.HasPrefix(errs, warn) || strings.Count(errs, "\n") != 1 {
				t.Errorf("queue: exit %d, stdout %q, stderr %q", code, out, errs)
			}
			code, out, errs = run(t, root, "queue", "100")
			if code != 0 || !strings.HasSuffix(out, tc.rcpt) || !strings.HasPrefix(errs, warn) {
				t.Errorf("queue 100: exit %d, stdout %q, stderr %q", code, out, errs)
			}
		})
	}
}

// TestQueueHeldMsgsUnreadable: an unreadable queue/bounce/heldmsgs is
// warned about, not shown silently as no message held.
func TestQueueHeldMsgsUnreadable(t *testing.T) {
	root, q := stoppedTree(t)
	if err := os.Mkdir(filepath.Join(q, "bounce", hold.MsgsName), 0o700); err != nil {
		t.Fatal(err)
	}
	want := "qmailctl: warning: unable to read queue/bounce/heldmsgs: is a directory; messages held by id are not shown as held\n"
	for _, args := range [][]string{{"queue"}, {"queue", "100"}} {
		code, out, errs := run(t, root, args...)
		if code != 0 || !strings.HasPrefix(out, "100 ") && !strings.HasPrefix(out, "message 100\n") || errs != want {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want stderr %q", args, code, out, errs, want)
		}
	}
}

// TestReleaseLocalNotAFile: release local removes control/holdlocal
// whatever it is (qmail-send holds while the name exists), without
// reading it; a directory with something in it is refused and stays.
func TestReleaseLocalNotAFile(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(string) error
	}{
		{"empty directory", func(p string) error { return os.Mkdir(p, 0o755) }},
		{"FIFO", func(p string) error { return syscall.Mkfifo(p, 0o644) }},
		{"symbolic link to a FIFO", func(p string) error {
			if err := syscall.Mkfifo(p+".fifo", 0o644); err != nil {
				return err
			}
			return os.Symlink(p+".fifo", p)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, _ := stoppedTree(t)
			path := filepath.Join(root, "control", hold.LocalFile)
			if err := tc.make(path); err != nil {
				t.Fatal(err)
			}
			code, out, errs := run(t, root, "release", "local")
			if code != ExitNotRunning || out != "local delivery not held\n" {
				t.Errorf("release local: exit %d, stdout %q, stderr %q", code, out, errs)
			}
			if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("control/holdlocal left: %v", err)
			}
		})
	}
	root, _ := stoppedTree(t)
	path := filepath.Join(root, "control", hold.LocalFile)
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	queuetest.WriteFile(t, filepath.Join(path, "notes"), []byte("mine\n"))
	code, out, errs := run(t, root, "release", "local")
	if code != ExitTemp || out != "" ||
		errs != "qmailctl: unable to change control/holdlocal: it is a directory that is not empty; remove what is in it, or the directory itself (rm -r control/holdlocal), by hand\n" {
		t.Errorf("release local of a full directory: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(path, "notes")); err != nil {
		t.Errorf("its file: %v", err)
	}
	// hold local over it changes nothing: local delivery is held already.
	code, out, errs = run(t, root, "hold", "local")
	if code != ExitNotRunning || out != "local delivery held (unchanged)\n" {
		t.Errorf("hold local over a directory: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// TestStatusHoldremoteUnreadableStopped: with qmail-send stopped, an
// unreadable holdremote gives no count of held recipients (it said 0).
func TestStatusHoldremoteUnreadableStopped(t *testing.T) {
	root, _ := stoppedTree(t)
	if err := os.Mkdir(filepath.Join(root, "control", hold.RemoteFile), 0o755); err != nil {
		t.Fatal(err)
	}
	_, out, _ := run(t, root, "status")
	want := "pending: local 1 message, remote 1 message (held remote recipients unknown: control/holdremote cannot be read)\n"
	if !strings.Contains(out, want) {
		t.Errorf("status lacks %q:\n%s", want, out)
	}
}

// TestStatusUnlistedCounted: unlisted counts the message files neither
// todo/ nor info/ accounts for, each by its id: a listed message whose
// message file is gone, or a name in todo/ that is no id, cancels none.
func TestStatusUnlistedCounted(t *testing.T) {
	root, q := stoppedTree(t)
	const line = "unlisted: 1 message with a message file only"
	queuetest.WriteFile(t, filepath.Join(q, "mess", strconv.Itoa(777000%qhome.Split), "777000"), []byte("x"))
	if _, out, _ := run(t, root, "status"); !strings.Contains(out, line) {
		t.Fatalf("status lacks %q:\n%s", line, out)
	}
	if err := os.Remove(filepath.Join(q, "mess", strconv.Itoa(100%qhome.Split), "100")); err != nil {
		t.Fatal(err)
	}
	if _, out, _ := run(t, root, "status"); !strings.Contains(out, line) {
		t.Errorf("message 100 without its message file: status lacks %q:\n%s", line, out)
	}
	queuetest.WriteFile(t, filepath.Join(q, "todo", "junk"), nil)
	queuetest.WriteFile(t, filepath.Join(q, "mess", "3", "junk"), nil) // no message either
	if _, out, _ := run(t, root, "status"); !strings.Contains(out, line) {
		t.Errorf("with a name that is no id in todo/: status lacks %q:\n%s", line, out)
	}
}

// TestStatusHeldStale: "held messages" counts only the held ids still in
// the queue, not those heldmsgs still names after they left.
func TestStatusHeldStale(t *testing.T) {
	root, q := stoppedTree(t)
	queuetest.WriteFile(t, filepath.Join(q, "bounce", hold.MsgsName),
		hold.MsgsText(map[uint64]bool{100: true, 4242: true, 4343: true}))
	if _, out, _ := run(t, root, "status"); !strings.Contains(out, "\nheld messages: 1 (") {
		t.Errorf("status:\n%s", out)
	}
	queuetest.WriteFile(t, filepath.Join(q, "bounce", hold.MsgsName), hold.MsgsText(map[uint64]bool{4242: true}))
	if _, out, _ := run(t, root, "status"); strings.Contains(out, "held messages") {
		t.Errorf("status counts a message that left:\n%s", out)
	}
}

// TestStatusHoldlocalNotAFile: a FIFO or directory at control/holdlocal
// holds local delivery (qmail-send asks only whether the name exists), and
// status says so. It said "local: unknown" and exited 111 (QA rctl).
func TestStatusHoldlocalNotAFile(t *testing.T) {
	root, _ := stoppedTree(t)
	if err := syscall.Mkfifo(filepath.Join(root, "control", hold.LocalFile), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := run(t, root, "status")
	want := "local: held (control/holdlocal cannot be read: not a regular file; qmail-send holds local delivery while it exists; qmailctl release local removes it)\n"
	if !strings.Contains(out, want) || strings.Contains(out, "local: unknown") {
		t.Errorf("status lacks %q:\n%s", want, out)
	}
	if code == ExitTemp {
		t.Errorf("exit %d: what is held is known", code)
	}
}
