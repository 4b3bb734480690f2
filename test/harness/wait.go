package harness

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/qq"
)

// Queue queues one message through ROOT/bin/qmail-queue (ignoring
// $QMAILQUEUE) and returns qq's result: nil when queued, else a qerr.Error
// carrying the caller text of spec/queue.md §4.
func (tr *Tree) Queue(t testing.TB, sender string, rcpts []string, msg []byte) error {
	t.Helper()
	_, err := qq.Queue(qq.Options{Root: tr.Root, Env: []string{"PATH=/usr/bin:/bin"}, IgnoreQMAILQUEUE: true},
		bytes.NewReader(msg), &qq.Envelope{Sender: sender, Recipients: rcpts})
	return err
}

// poll is the interval of the bounded waits.
const poll = 20 * time.Millisecond

// WaitFor polls cond until it returns true or timeout passes; on timeout it
// fails the test. It never asserts a duration: choose timeouts generously.
func WaitFor(t testing.TB, timeout time.Duration, cond func() bool) {
	t.Helper()
	if !Eventually(timeout, cond) {
		t.Fatalf("harness: condition not met within %v", timeout)
	}
}

// Eventually polls cond until it returns true (true) or timeout passes
// (false).
func Eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(poll)
	}
}

// WaitForFile waits until path exists.
func WaitForFile(t testing.TB, timeout time.Duration, path string) {
	t.Helper()
	if !Eventually(timeout, func() bool { _, err := os.Lstat(path); return err == nil }) {
		t.Fatalf("harness: %s did not appear within %v", path, timeout)
	}
}

// WaitForGlob waits until pattern matches at least n paths and returns the
// matches.
func WaitForGlob(t testing.TB, timeout time.Duration, pattern string, n int) []string {
	t.Helper()
	var m []string
	if !Eventually(timeout, func() bool {
		m, _ = filepath.Glob(pattern)
		return len(m) >= n
	}) {
		t.Fatalf("harness: %s: %d matches, want %d, within %v", pattern, len(m), n, timeout)
	}
	return m
}

// MaildirCount returns the number of messages in a Maildir (files in new/
// and cur/).
func MaildirCount(dir string) int {
	n := 0
	for _, sub := range []string{"new", "cur"} {
		ents, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range ents {
			if e.Type().IsRegular() {
				n++
			}
		}
	}
	return n
}

// MaildirMessages returns the contents of the messages in a Maildir's new/
// and cur/, ordered by file name.
func MaildirMessages(t testing.TB, dir string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, sub := range []string{"new", "cur"} {
		ents, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range ents {
			if !e.Type().IsRegular() {
				continue
			}
			b, err := os.ReadFile(filepath.Join(dir, sub, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}

// WaitMaildir waits until a Maildir holds at least n messages and returns
// them.
func WaitMaildir(t testing.TB, timeout time.Duration, dir string, n int) [][]byte {
	t.Helper()
	if !Eventually(timeout, func() bool { return MaildirCount(dir) >= n }) {
		t.Fatalf("harness: %s holds %d messages, want %d, within %v", dir, MaildirCount(dir), n, timeout)
	}
	return MaildirMessages(t, dir)
}

// AliasMaildir is the Maildir where the installed ~alias/.qmail-default
// puts mail for root, postmaster and mailer-daemon that no alias names.
func (tr *Tree) AliasMaildir() string { return tr.Path("alias", "Maildir") }

// UserMaildir is the Maildir of the installing user in a non-root tree.
func (tr *Tree) UserMaildir(user string) string { return tr.Path("home", user, "Maildir") }
