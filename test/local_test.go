package test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/hqmail/hqmail/test/harness"
)

// localUID is the ordinary user qmail-local runs as in these tests when
// they run as root (an id without a passwd entry; qmail-local needs none).
const localUID = 62347

// TestLocalForwardThroughQueue runs the installed qmail-local the way
// qmail-lspawn does (--, eight arguments, message on fd 0, one pipe for fd
// 1 and 2, recipient's uid) and checks a Maildir delivery plus a forward
// that goes through the tree's own setuid qmail-queue: no $QMAILQUEUE, so
// the root is found from the binary's location.
func TestLocalForwardThroughQueue(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test; skipped under -short")
	}
	tr := harness.Install(t)
	home := filepath.Join(harness.TempRoot(t), "alice")
	for _, d := range []string{"", "Maildir", "Maildir/tmp", "Maildir/new", "Maildir/cur"} {
		if err := os.Mkdir(filepath.Join(home, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(home, 0o755)
	if err := os.WriteFile(filepath.Join(home, ".qmail-list"), []byte("./Maildir/\n&bob@example.com\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	msgPath := filepath.Join(filepath.Dir(home), "msg")
	msg := "From: a@example.net\nSubject: fwd\n\nhello\n"
	if err := os.WriteFile(msgPath, []byte(msg), 0o644); err != nil {
		t.Fatal(err)
	}
	root := os.Geteuid() == 0
	if root {
		filepath.Walk(home, func(p string, _ os.FileInfo, err error) error {
			if err == nil {
				os.Lchown(p, localUID, localUID)
			}
			return nil
		})
	} else {
		t.Log("not root: qmail-local runs as the current user")
	}
	in, err := os.Open(msgPath)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	cmd := exec.Command(tr.Bin("qmail-local"), "--", "alice", home, "alice-list", "-", "list",
		"example.org", "a@example.net", "./Maildir/")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Dir = "/"
	cmd.Stdin = in
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if root {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: localUID, Gid: localUID, Groups: []uint32{}}}
	}
	if err := cmd.Run(); err != nil {
		t.Fatalf("qmail-local: %v\n%s", err, out.String())
	}
	if !regexp.MustCompile(`^did 1\+1\+0\nqp [0-9]+\n$`).MatchString(out.String()) {
		t.Errorf("report %q", out.String())
	}
	files, _ := filepath.Glob(filepath.Join(home, "Maildir", "new", "*"))
	if len(files) != 1 {
		t.Fatalf("Maildir/new holds %v", files)
	}
	got, _ := os.ReadFile(files[0])
	if want := "Return-Path: <a@example.net>\nDelivered-To: alice-list@example.org\n" + msg; string(got) != want {
		t.Errorf("maildir file %q, want %q", got, want)
	}
	if fi, err := os.Stat(files[0]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("maildir file mode %v %v", fi.Mode(), err)
	}

	// The forward is in the queue: one message carrying our
	// Delivered-To line, one todo envelope for bob.
	var mess, todo []string
	for _, dir := range []string{"mess", "todo"} {
		filepath.Walk(tr.Path("queue", dir), func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				if dir == "mess" {
					mess = append(mess, p)
				} else {
					todo = append(todo, p)
				}
			}
			return nil
		})
	}
	if len(mess) != 1 || len(todo) != 1 {
		t.Fatalf("queue: mess %v todo %v", mess, todo)
	}
	m, _ := os.ReadFile(mess[0])
	if !strings.HasSuffix(string(m), "Delivered-To: alice-list@example.org\n"+msg) {
		t.Errorf("queued message %q", m)
	}
	e, _ := os.ReadFile(todo[0])
	if !bytes.Contains(e, []byte("Fa@example.net\x00Tbob@example.com\x00")) {
		t.Errorf("queued envelope %q", e)
	}
}
