package ctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/qread/queuetest"
)

// The queue directories qmailctl changes while qmail-send is stopped belong
// to qmails; qmailctl runs as root. Whoever acts as qmails can plant a
// symbolic link there: these tests plant one to a file outside the queue
// (standing for a root-only file) and check that it is refused, naming the
// file, and that its target is neither read nor written.

const precious = "Tvictim@target.example\x00root-only contents\n"

// linkTree is a stopped tree with message 100 (pending local and remote
// recipients) and a target file outside the queue.
func linkTree(t *testing.T) (root, q, target string) {
	t.Helper()
	root = makeTree(t)
	q = filepath.Join(root, "queue")
	queuetest.WriteFile(t, filepath.Join(root, MutexFile), nil)
	queuetest.Add(t, q, queuetest.Msg{ID: 100, Birth: time.Now(), Body: "hello\n", Sender: "a@example.org",
		Local:  []queuetest.Rcpt{{Addr: "me@local"}},
		Remote: []queuetest.Rcpt{{Addr: "z@y.example"}}})
	target = filepath.Join(root, "etc-target")
	if err := os.WriteFile(target, []byte(precious), 0o600); err != nil {
		t.Fatal(err)
	}
	return root, q, target
}

func plant(t *testing.T, target, p string) {
	t.Helper()
	os.Remove(p)
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func checkTarget(t *testing.T, target, want string) {
	t.Helper()
	if b, err := os.ReadFile(target); err != nil || string(b) != want {
		t.Errorf("link target changed: %q, %v", b, err)
	}
}

func checkLink(t *testing.T, p string) {
	t.Helper()
	if fi, err := os.Lstat(p); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("%s is no longer the planted link (%v)", p, err)
	}
}

// TestBounceRefusesLinkedBounceFile: root's "qmailctl bounce ID" with
// bounce/ID a link appends nothing to the link's target, and leaves the
// message as it was.
func TestBounceRefusesLinkedBounceFile(t *testing.T) {
	for _, dangling := range []bool{false, true} {
		root, q, target := linkTree(t)
		link := filepath.Join(q, "bounce", "100")
		if dangling {
			target = filepath.Join(root, "made-through-link")
		}
		plant(t, target, link)
		code, out, errs := run(t, root, "bounce", "100")
		if code != ExitTemp || !strings.Contains(errs, "unable to bounce message 100") ||
			!strings.Contains(errs, link) || !strings.Contains(errs, "symbolic link") {
			t.Errorf("dangling %v: exit %d, stdout %q, stderr %q", dangling, code, out, errs)
		}
		if dangling {
			if _, err := os.Lstat(target); !os.IsNotExist(err) {
				t.Errorf("a file was made through the dangling link (%v)", err)
			}
		} else {
			checkTarget(t, target, precious)
		}
		checkLink(t, link)
		// Refused before the message is touched.
		if b, _ := os.ReadFile(filepath.Join(q, "remote", "8", "100")); string(b) != "Tz@y.example\x00" {
			t.Errorf("remote/8/100 = %q", b)
		}
	}
}

// TestDeleteBounceQueueRefuseLinkedChannelFile: a local, remote or info
// file that is a link is refused by delete, bounce and queue ID: the
// target is not rewritten (T to D), not read into a bounce, not shown.
// (delete only looks whether info/S/ID exists, with lstat: it never opens
// it.)
func TestDeleteBounceQueueRefuseLinkedChannelFile(t *testing.T) {
	for _, file := range []string{"local", "remote", "info"} {
		for _, verb := range []string{"delete", "bounce", "queue"} {
			if file == "info" && verb == "delete" {
				continue
			}
			root, q, target := linkTree(t)
			link := filepath.Join(q, file, "8", "100")
			plant(t, target, link)
			code, out, errs := run(t, root, verb, "100")
			if code != ExitTemp || !strings.Contains(errs, "symbolic link") ||
				!strings.Contains(errs, file) || strings.Contains(out+errs, "victim") {
				t.Errorf("%s with %s a link: exit %d, stdout %q, stderr %q", verb, file, code, out, errs)
			}
			checkTarget(t, target, precious)
			checkLink(t, link)
			if _, err := os.Lstat(filepath.Join(q, "bounce", "100")); !os.IsNotExist(err) {
				t.Errorf("%s with %s a link: bounce/100 made (%v)", verb, file, err)
			}
		}
	}
}

// TestMarkAllDoneRefusesLink: the helper itself, named in the error.
func TestMarkAllDoneRefusesLink(t *testing.T) {
	dir := t.TempDir()
	target, p := filepath.Join(dir, "target"), filepath.Join(dir, "f")
	queuetest.WriteFile(t, target, []byte(precious))
	plant(t, target, p)
	if n, err := markAllDone(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("markAllDone through a link = %d, %v", n, err)
	}
	checkTarget(t, target, precious)
}

// TestHoldStoppedRefusesLinkedHeldFile: hold ID while qmail-send is
// stopped neither reads the held file through a link (copying its target's
// numeric lines) nor writes through a link left at heldmsgs.tmp.
func TestHoldStoppedRefusesLinkedHeldFile(t *testing.T) {
	const ids = "4711\n"
	t.Run("heldmsgs", func(t *testing.T) {
		root, _, target := linkTree(t)
		os.WriteFile(target, []byte(ids), 0o600)
		link := filepath.Join(root, HeldFile)
		plant(t, target, link)
		code, out, errs := run(t, root, "hold", "100")
		if code != ExitTemp || !strings.Contains(errs, link) || !strings.Contains(errs, "symbolic link") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
		}
		checkTarget(t, target, ids)
		checkLink(t, link)
	})
	t.Run("heldmsgs.tmp", func(t *testing.T) {
		root, _, target := linkTree(t)
		plant(t, target, filepath.Join(root, HeldFile+".tmp"))
		code, out, errs := run(t, root, "hold", "100")
		if code != ExitNotRunning || !strings.Contains(out, "message 100 held") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
		}
		checkTarget(t, target, precious)
		if fi, err := os.Lstat(filepath.Join(root, HeldFile)); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("held file: %v", err)
		}
		if st, err := os.Stat(target); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("target's mode changed: %v", err)
		}
	})
}
