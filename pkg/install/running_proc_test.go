package install

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qhome"
)

// awayFile is a regular file on a file system of its own (procfs), as
// the program a process runs from a tmpfs is.
const awayFile = "/proc/version"

// spoofName is the program name of the QA report: a line of its own
// that erases the note and says all is well, on a terminal.
const spoofName = "qmail-send\033[2K\r\033[1A\033[2Kqmail-install: all good"

// fakeProc is a process for replacedRunning's fake /proc.
type fakeProc struct {
	pid  string
	prog string // the name its exe link gives under bin/, "(deleted)" appended
	uid  string // the Uid: line's fields (real, effective, saved, fs); "": no such line
	// old is what the deleted program is: "" a regular file in bin/;
	// "away" one on another file system (as a file of a tmpfs mounted
	// over bin/ in a private mount namespace is); "fifo" a FIFO.
	old string
	// args is its command line's arguments after the name, NUL-separated
	// ("" for none); the name in /proc/PID/cmdline is prog.
	args string
}

// fakeTree makes a tree at a new root with only bin/ and etc/ids (ids),
// and a fake /proc of the processes procs. Each process runs a deleted
// bin/PROG: the link exe reads "ROOT/bin/PROG (deleted)" as the kernel
// writes it, and followed reaches the old program, a file of that name
// (or what fakeProc.old says);
// bin/PROG holds other bytes, the new program.
func fakeTree(t *testing.T, ids *qhome.IDs, procs ...fakeProc) (root, proc string) {
	t.Helper()
	root = t.TempDir()
	bin := filepath.Join(root, "bin")
	proc = t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	must(os.WriteFile(filepath.Join(root, qhome.IDsFile), []byte(ids.Format()), 0o644))
	must(os.Mkdir(bin, 0o755))
	// Entries of /proc that are no process are passed over.
	must(os.Mkdir(filepath.Join(proc, "self"), 0o755))
	must(os.WriteFile(filepath.Join(proc, "uptime"), []byte("1.0 1.0\n"), 0o444))
	for _, p := range procs {
		must(os.WriteFile(filepath.Join(bin, p.prog), []byte("the new build\n"), 0o755))
		old := filepath.Join(bin, p.prog+" (deleted)")
		switch p.old {
		case "away":
			must(os.Symlink(awayFile, old))
		case "fifo":
			must(unix.Mkfifo(old, 0o644))
		default:
			must(os.WriteFile(old, []byte("the old build\n"), 0o755))
		}
		dir := filepath.Join(proc, p.pid)
		must(os.Mkdir(dir, 0o755))
		status := "Name:\tx\nUmask:\t0022\nState:\tS (sleeping)\nPid:\t" + p.pid + "\n"
		if p.uid != "" {
			status += "Uid:\t" + p.uid + "\n"
		}
		status += "Gid:\t0\t0\t0\t0\n"
		must(os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o444))
		must(os.Symlink(old, filepath.Join(dir, "exe")))
		cmdline := filepath.Join(root, "bin", p.prog) + "\x00"
		if p.args != "" {
			cmdline += p.args + "\x00"
		}
		must(os.WriteFile(filepath.Join(dir, "cmdline"), []byte(cmdline), 0o444))
	}
	return root, proc
}

// TestReplacedRunningWhose: the note about replaced programs still
// running counts only the processes of root and of the tree's own users
// that run a deleted program of the tree from the file system of its
// bin/; a process anyone else arranged to look so (QA: a user with a
// user and mount namespace of their own, a tmpfs over ROOT/bin there, a
// copy of sleep named with terminal escapes run from it and removed) is
// passed over, and nothing it chose is printed.
func TestReplacedRunningWhose(t *testing.T) {
	var away, tmp unix.Stat_t
	if err := unix.Stat(awayFile, &away); err != nil || away.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Skipf("%s: no regular file (%v): no file on another device to test with", awayFile, err)
	}
	if err := unix.Stat(t.TempDir(), &tmp); err != nil {
		t.Fatal(err)
	}
	if away.Dev == tmp.Dev {
		t.Skipf("%s is on the file system of the temporary directory: no other device to test with", awayFile)
	}
	// A root tree: qmail's users have uids 7001 to 7007.
	rootIDs := &qhome.IDs{
		Alias: qhome.User{UID: 7001, GID: 7000}, Qmaild: qhome.User{UID: 7002, GID: 7000},
		Qmaill: qhome.User{UID: 7003, GID: 7000}, Qmailp: qhome.User{UID: 7004, GID: 7000},
		Qmailq: qhome.User{UID: 7005, GID: 7000}, Qmailr: qhome.User{UID: 7006, GID: 7000},
		Qmails: qhome.User{UID: 7007, GID: 7000}, Qmail: 7000, Nofiles: 7010,
	}
	// A tree an ordinary user (uid 5000) installed.
	shared := qhome.SharedIDs(5000, 5000)
	cases := []struct {
		name string
		ids  *qhome.IDs
		p    fakeProc
		want bool
	}{
		{"root", rootIDs, fakeProc{"4242", "qmail-send", "0\t0\t0\t0", "", ""}, true},
		{"qmailr", rootIDs, fakeProc{"4242", "qmail-rspawn", "7006\t7006\t7006\t7006", "", ""}, true},
		{"qmaild", rootIDs, fakeProc{"4242", "qmail-smtpd", "7002\t7002\t7002\t7002", "", "-listen\x00127.0.0.1:25"}, true},
		{"qmaild, -listen=", rootIDs, fakeProc{"4242", "qmail-smtpd", "7002\t7002\t7002\t7002", "", "--listen=127.0.0.1:25"}, true},
		// Programs that end by themselves need no restart (QA rupgrade:
		// a |sleep 6 delivery during an install was named, with the
		// advice to restart hqmail).
		{"qmail-smtpd of one connection", rootIDs, fakeProc{"4242", "qmail-smtpd", "7002\t7002\t7002\t7002", "", ""}, false},
		{"qmail-smtpd, -listen as an argument's value", rootIDs, fakeProc{"4242", "qmail-smtpd", "7002\t7002\t7002\t7002", "", "--\x00-listen"}, false},
		{"qmail-local", rootIDs, fakeProc{"4242", "qmail-local", "0\t0\t0\t0", "", ""}, false},
		{"qmail-remote kept", rootIDs, fakeProc{"4242", "qmail-remote", "7006\t7006\t7006\t7006", "", "-k"}, false},
		{"qmail-queue", rootIDs, fakeProc{"4242", "qmail-queue", "0\t7005\t7005\t7005", "", ""}, false},
		{"splogger", rootIDs, fakeProc{"4242", "splogger", "7003\t7003\t7003\t7003", "", "qmail"}, true},
		{"the installer", shared, fakeProc{"4242", "qmail-send", "5000\t5000\t5000\t5000", "", ""}, true},
		{"another user", rootIDs, fakeProc{"4242", "qmail-send", "1000\t1000\t1000\t1000", "", ""}, false},
		{"another user, shared tree", shared, fakeProc{"4242", "qmail-send", "1000\t1000\t1000\t1000", "", ""}, false},
		{"root of the shared tree's host", shared, fakeProc{"4242", "qmail-send", "0\t0\t0\t0", "", ""}, true},
		{"real uid another user", rootIDs, fakeProc{"4242", "qmail-send", "1000\t0\t0\t0", "", ""}, false},
		{"effective uid another user", rootIDs, fakeProc{"4242", "qmail-send", "0\t1000\t1000\t1000", "", ""}, false},
		{"no Uid line", rootIDs, fakeProc{"4242", "qmail-send", "", "", ""}, false},
		{"another device", rootIDs, fakeProc{"4242", "qmail-send", "0\t0\t0\t0", "away", ""}, false},
		{"another device, tree user", rootIDs, fakeProc{"4242", "qmail-send", "7007\t7007\t7007\t7007", "away", ""}, false},
		{"terminal escapes, another user", rootIDs, fakeProc{"4242", spoofName, "1000\t1000\t1000\t1000", "away", ""}, false},
		{"terminal escapes", rootIDs, fakeProc{"4242", spoofName, "0\t0\t0\t0", "", ""}, false},
		{"no regular file", rootIDs, fakeProc{"4242", "qmail-send", "0\t0\t0\t0", "fifo", ""}, false},
		{"no program of the tree", rootIDs, fakeProc{"4242", "my-script", "0\t0\t0\t0", "", ""}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.p
			root, proc := fakeTree(t, c.ids, p)
			note := replacedRunning(root, proc)
			if strings.ContainsFunc(note, func(r rune) bool { return r < 32 || r == 127 }) {
				t.Errorf("the note has control characters: %q", note)
			}
			want := p.prog + " (pid " + p.pid + ") still runs a program that an install has since replaced in " +
				filepath.Join(root, "bin") + ": restart hqmail"
			switch {
			case c.want && !strings.HasPrefix(note, want):
				t.Errorf("note %q, want %q...", note, want)
			case !c.want && note != "":
				t.Errorf("note %q, want none", note)
			}
		})
	}
}

// TestReplacedRunningMixed: of several processes, only those that count
// are named, each once, the spoofed name never.
func TestReplacedRunningMixed(t *testing.T) {
	ids := qhome.SharedIDs(5000, 5000)
	root, proc := fakeTree(t, ids,
		fakeProc{"300", "qmail-send", "5000\t5000\t5000\t5000", "", ""},
		fakeProc{"301", spoofName, "1000\t1000\t1000\t1000", "", ""},
		fakeProc{"302", "qmail-clean", "1000\t1000\t1000\t1000", "", ""},
		fakeProc{"303", "qmail-lspawn", "0\t0\t0\t0", "", ""},
	)
	note := replacedRunning(root, proc)
	want := "qmail-lspawn (pid 303), qmail-send (pid 300) still run programs that an install has since replaced in " +
		filepath.Join(root, "bin") + ": restart hqmail"
	if !strings.HasPrefix(note, want) {
		t.Errorf("note %q, want %q...", note, want)
	}
	if strings.Contains(note, "all good") || strings.Contains(note, "qmail-clean") {
		t.Errorf("note names another user's process: %q", note)
	}
}

// TestReplacedRunningRelativeRoot: the tree given by a relative path
// (qmail-install -root . in it, or -root tree beside it) finds the same
// processes: /proc's exe links are absolute, and the relative bin/ never
// matched one (QA rupgrade: no restart note after an install over a
// running system).
func TestReplacedRunningRelativeRoot(t *testing.T) {
	root, proc := fakeTree(t, qhome.SharedIDs(5000, 5000), fakeProc{"300", "qmail-send", "0\t0\t0\t0", "", ""})
	t.Chdir(root)
	for _, rel := range []string{".", filepath.Join("..", filepath.Base(root))} {
		if note := replacedRunning(rel, proc); !strings.HasPrefix(note, "qmail-send (pid 300) still runs a program") {
			t.Errorf("-root %s: note %q, want qmail-send named", rel, note)
		}
	}
}
