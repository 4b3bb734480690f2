package forward

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qq"
)

// asUser makes the delivering user uid for the test.
func asUser(t *testing.T, uid int) {
	t.Helper()
	old := geteuid
	geteuid = func() int { return uid }
	t.Cleanup(func() { geteuid = old })
}

// TestIncludeLinkToMailbox: the review's attack. bob replaces his list
// with a symbolic link to carol's Mailbox; carol's .forward includes
// bob's list. Before, the Mailbox (carol's own file) was trusted: its
// header lines were skipped as syntax errors and a body line
// "|command" that bob had mailed her ran as carol. Now a link of bob's
// on the path keeps programs and files out, and a file that reads as a
// mailbox gives nothing at all.
func TestIncludeLinkToMailbox(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("gives files and links to other uids: needs root (CI runs as root)")
	}
	const bob, carol = 4321, 4322
	base := t.TempDir()
	os.Chmod(base, 0o755)
	home, bobs := filepath.Join(base, "carol"), filepath.Join(base, "bob")
	for d, uid := range map[string]int{home: carol, bobs: bob} {
		os.Mkdir(d, 0o755)
		os.Chown(d, uid, uid)
	}
	pwned := filepath.Join(base, "pwned")
	mbox := filepath.Join(home, "Mailbox")
	os.WriteFile(mbox, []byte("From bob@example.net Thu Nov 26 03:22:00 2026\nReturn-Path: <bob@example.net>\nSubject: hello\n\n|touch "+pwned+"\nvictim@example.net\n"), 0o600)
	plain := filepath.Join(home, "notes")
	os.WriteFile(plain, []byte("dave@example.net\n|touch "+pwned+"\n"), 0o600)
	for _, f := range []string{mbox, plain} {
		os.Chown(f, carol, carol)
	}
	list := filepath.Join(bobs, "list")
	os.Symlink(mbox, list)
	os.Lchown(list, bob, bob)
	asUser(t, carol)

	t.Chdir(home)
	q := capture(t)
	localEnv(t, "carol", "carol", "")
	os.WriteFile(".forward", []byte("erin@example.net, :include:"+list+"\n"), 0o644)
	os.Chown(".forward", carol, carol)
	var out bytes.Buffer
	if code := DotForwardMain(t.TempDir(), []string{".forward"}, msgFile(t, "x\n"), &out); code != 99 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	if _, err := os.Stat(pwned); !os.IsNotExist(err) {
		t.Fatalf("a line of carol's Mailbox ran as carol (%v)", err)
	}
	env, _ := os.ReadFile(filepath.Join(q, "envelope"))
	if got, _ := qq.ParseEnvelope(env); got == nil || strings.Join(got.Recipients, ",") != "erin@example.net" {
		t.Errorf("envelope %q: only erin (nothing of the mailbox)", env)
	}
	if want := "dot-forward: warning: " + list + `:1: the :include: file looks like a mailbox or a mail message, not a list ("From bob@example.net Thu Nov 26 03:22:00 2026"): none of its lines is used (#5.2.4)`; !strings.Contains(out.String(), want) {
		t.Errorf("output %q\nwant %q", out.String(), want)
	}

	// The link to a file that reads as a list: its addresses only.
	os.Remove(list)
	os.Symlink(plain, list)
	os.Lchown(list, bob, bob)
	p, err := Expand([]string{":include:" + list}, &Env{User: "carol"})
	if err != nil || len(p.Programs) != 0 || strings.Join(p.Forwards, ",") != "dave@example.net" || len(p.Refused) != 1 ||
		!strings.Contains(p.Refused[0], "are ignored: it is reached through the symbolic link "+list+", which belongs to uid 4321, not to root or the delivering user (#5.7.1)") {
		t.Fatalf("plan %+v, err %v", p, err)
	}
	// A link of root's (or carol's) to it is trusted.
	os.Lchown(list, carol, carol)
	if p, err := Expand([]string{":include:" + list}, &Env{User: "carol"}); err != nil || len(p.Refused) != 0 || len(p.Programs) != 1 {
		t.Fatalf("carol's own link: plan %+v, err %v", p, err)
	}
	// A file of carol's in bob's directory (a hard link, say) is not.
	os.Remove(list)
	os.WriteFile(list, []byte("|touch "+pwned+"\n"), 0o644)
	os.Chown(list, carol, carol)
	if p, err := Expand([]string{":include:" + list}, &Env{User: "carol"}); err == nil || len(p.Programs) != 0 ||
		!strings.Contains(err.Error(), "it is in the directory "+bobs+", which belongs to uid 4321") {
		t.Fatalf("bob's directory: plan %+v, err %v", p, err)
	}
}

// TestIncludeAndForwardFIFO: a FIFO at an :include: path or as the
// .forward defers at once; opened blocking it held the delivery (and a
// local delivery slot) until a writer came.
func TestIncludeAndForwardFIFO(t *testing.T) {
	home := t.TempDir()
	os.Chmod(home, 0o755)
	t.Chdir(home)
	fifo := filepath.Join(home, "list")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(home, ".forward"), 0o644); err != nil {
		t.Fatal(err)
	}
	capture(t)
	localEnv(t, "alice", "alice", "")
	bounded := func(what string, f func()) {
		t.Helper()
		done := make(chan struct{})
		go func() { f(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			for _, n := range []string{fifo, filepath.Join(home, ".forward")} {
				if w, err := os.OpenFile(n, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					w.Close()
				}
			}
			t.Fatalf("%s still blocked on a FIFO after 60s", what)
		}
	}
	var err error
	bounded("Expand", func() { _, err = Expand([]string{":include:" + fifo}, &Env{}) })
	if err == nil || qerr.IsPerm(err) || !strings.Contains(err.Error(), "Include file "+fifo+" is not a regular file") {
		t.Errorf("include FIFO: %v, want a deferral", err)
	}
	var out bytes.Buffer
	code := 0
	bounded("dot-forward", func() { code = DotForwardMain(t.TempDir(), []string{".forward"}, msgFile(t, "x\n"), &out) })
	if code != 111 || !strings.Contains(out.String(), ".forward is not a regular file") {
		t.Errorf(".forward FIFO: exit %d %q, want 111", code, out.String())
	}
}

// TestProgramExit99: a program of an alias or .forward that exits 99
// (qmail-command(8): delivered, skip the rest) has delivered: the other
// targets still get the message and the delivery succeeds. It was a
// temporary failure, so each retry ran the program again (condredirect
// forwards and exits 99: a copy at each retry).
func TestProgramExit99(t *testing.T) {
	root := t.TempDir()
	ran := filepath.Join(root, "ran")
	writeAliases(t, root, "cond: \"|echo once >> "+ran+"; exit 99\", \"|echo again >> "+ran+"\", carol@example.net\n")
	q := capture(t)
	localEnv(t, "alias", "cond", "cond")
	var out bytes.Buffer
	if code := FastforwardMain(root, nil, msgFile(t, "x\n"), &out); code != 99 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	if b, _ := os.ReadFile(ran); string(b) != "once\nagain\n" {
		t.Errorf("programs ran %q", b)
	}
	env, _ := os.ReadFile(filepath.Join(q, "envelope"))
	if got, _ := qq.ParseEnvelope(env); got == nil || strings.Join(got.Recipients, ",") != "carol@example.net" {
		t.Errorf("envelope %q", env)
	}
	// Other codes keep their meaning.
	for code, perm := range map[int]bool{100: true, 111: false, 1: false} {
		err := runProgram(fmt.Sprintf("exit %d", code), nil, strings.NewReader(""), &out)
		if err == nil || qerr.IsPerm(err) != perm {
			t.Errorf("exit %d: %v", code, err)
		}
	}
}
