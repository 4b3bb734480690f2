package ctl

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/qread"
	"github.com/hqmail/hqmail/pkg/qread/queuetest"
)

// addStaleInfo gives the todo message id the info and local files of a
// preprocessing that was cut short: qmail-send ignores them and
// preprocesses the message again from todo/ID (spec/queue.md §6).
func addStaleInfo(t *testing.T, q string, id uint64) {
	t.Helper()
	name, sub := strconv.FormatUint(id, 10), qread.Sub(id)
	queuetest.WriteFile(t, filepath.Join(q, "info", sub, name), []byte("Fwrong@sink.test\x00"))
	queuetest.WriteFile(t, filepath.Join(q, "local", sub, name), []byte("Tbogus@mig.test\x00"))
}

// TestTodoWithStaleInfo: a message with both todo/ID and info/ID is shown
// as todo, with what todo/ID says, by queue, queue ID and status; hold by
// id holds it, and delete and bounce (qmail-send stopped) refuse it and
// change nothing.
func TestTodoWithStaleInfo(t *testing.T) {
	root := makeTree(t)
	q := filepath.Join(root, "queue")
	queuetest.WriteFile(t, filepath.Join(root, MutexFile), nil)
	queuetest.AddTodo(t, q, 300, "new\n", "dave@x", "alice@y")
	addStaleInfo(t, q, 300)
	queuetest.Add(t, q, queuetest.Msg{ID: 100, Birth: time.Now(), Body: "hello\n", Sender: "a@example.org",
		Remote: []queuetest.Rcpt{{Addr: "r@far.example"}}})

	code, out, errs := run(t, root, "queue")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "100 ") ||
		!strings.HasPrefix(lines[1], "300 ") || !strings.HasSuffix(lines[1], " 4 1/1 todo <dave@x>") {
		t.Errorf("queue: exit %d, stderr %q\n%s", code, errs, out)
	}
	code, out, errs = run(t, root, "queue", "300")
	if code != 0 || !strings.Contains(out, "  from   <dave@x>\n") ||
		!strings.Contains(out, "  state  todo (not yet preprocessed by qmail-send; 1 recipient)\n") ||
		strings.Contains(out, "wrong@sink.test") || strings.Contains(out, "bogus@mig.test") {
		t.Errorf("queue 300: exit %d, stderr %q\n%s", code, errs, out)
	}
	_, out, _ = run(t, root, "status")
	if !strings.Contains(out, "pending: local 0 messages, remote 1 message (") {
		t.Errorf("status counts the stale info file:\n%s", out)
	}

	if code, out, errs := run(t, root, "hold", "300"); code != ExitNotRunning || out != "message 300 held\n" {
		t.Errorf("hold 300: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if _, out, _ := run(t, root, "queue"); !strings.Contains(out, " 4 1/1 todo,msgheld <dave@x>\n") {
		t.Errorf("queue after hold:\n%s", out)
	}
	if _, out, _ := run(t, root, "queue", "300"); !strings.Contains(out,
		"  state  todo (not yet preprocessed by qmail-send; 1 recipient) (held by qmailctl hold 300)\n") {
		t.Errorf("queue 300 after hold:\n%s", out)
	}

	for _, verb := range []string{"delete", "bounce"} {
		code, _, errs := run(t, root, verb, "300")
		if code != ExitTemp || !strings.Contains(errs, "message 300 is not preprocessed yet") {
			t.Errorf("%s 300: exit %d, stderr %q", verb, code, errs)
		}
	}
	if b, err := os.ReadFile(filepath.Join(q, "local", "1", "300")); err != nil || string(b) != "Tbogus@mig.test\x00" {
		t.Errorf("local/1/300 = %q, %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(q, "bounce", "300")); !os.IsNotExist(err) {
		t.Errorf("bounce/300 written: %v", err)
	}
}

// TestShowTodoTrouble: queue ID of a message whose todo/ID names no
// message file reports trouble (exit 111), rather than what an info file
// beside it says or "not in the queue".
func TestShowTodoTrouble(t *testing.T) {
	root := makeTree(t)
	q := filepath.Join(root, "queue")
	queuetest.AddTodo(t, q, 300, "new\n", "dave@x", "alice@y")
	addStaleInfo(t, q, 300)
	if err := os.Remove(filepath.Join(q, "mess", "1", "300")); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run(t, root, "queue", "300")
	if code != ExitTemp || out != "" || !strings.Contains(errs, "trouble with message 300: mess/1/300: no such file") {
		t.Errorf("queue 300: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// TestBounceTodoUnreadable: a bounce (qmail-send stopped) that cannot
// tell whether the message is still in todo/ appends no bounce paragraph.
func TestBounceTodoUnreadable(t *testing.T) {
	root := makeTree(t)
	q := filepath.Join(root, "queue")
	queuetest.WriteFile(t, filepath.Join(root, MutexFile), nil)
	queuetest.Add(t, q, queuetest.Msg{ID: 100, Birth: time.Now(), Body: "hello\n", Sender: "a@example.org",
		Remote: []queuetest.Rcpt{{Addr: "r@far.example"}}})
	earlier := "<x@far.example>:\nearlier failure\n\n"
	queuetest.WriteFile(t, filepath.Join(q, "bounce", "100"), []byte(earlier))
	// todo/ as a plain file: looking for todo/100 fails with ENOTDIR.
	if err := os.Remove(filepath.Join(q, "todo")); err != nil {
		t.Fatal(err)
	}
	queuetest.WriteFile(t, filepath.Join(q, "todo"), nil)
	code, _, errs := run(t, root, "bounce", "100")
	if code != ExitTemp || !strings.Contains(errs, "not a directory") {
		t.Errorf("bounce 100: exit %d, stderr %q", code, errs)
	}
	if b, err := os.ReadFile(filepath.Join(q, "bounce", "100")); err != nil || string(b) != earlier {
		t.Errorf("bounce/100 = %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(q, "remote", "8", "100")); err != nil || string(b) != "Tr@far.example\x00" {
		t.Errorf("remote/8/100 = %q, %v", b, err)
	}
}
