package ctl

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/hold"
	"github.com/hqmail/hqmail/pkg/qread/queuetest"
)

// Links planted one level up: qmails can replace a split directory
// (info/8, local/8, remote/8) with a symbolic link to a root-only
// directory, and qmailq can plant links in queue/lock. qmailctl runs as
// root and must follow none of them.

// secretInfo is a root-only file that reads as an info file if followed.
const secretInfo = "Fvictim@target.example\x00"

// linkSplitDir replaces q/ch/8 with a link to a directory holding 100
// (contents), standing for a root-only directory; it returns that file.
func linkSplitDir(t *testing.T, root, q, ch, contents string) string {
	t.Helper()
	secret := filepath.Join(root, "secret-"+ch)
	if err := os.Mkdir(secret, 0o700); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(secret, "100")
	queuetest.WriteFile(t, target, []byte(contents))
	dir := filepath.Join(q, ch, "8")
	if err := os.Rename(dir, dir+".orig"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, dir); err != nil {
		t.Fatal(err)
	}
	return target
}

// TestSplitDirLinkRefused: with local/8, remote/8 or info/8 a link to a
// root-only directory, delete, bounce, queue ID and queue neither read,
// rewrite nor remove the file there, and say which directory is a link.
func TestSplitDirLinkRefused(t *testing.T) {
	for _, ch := range []string{"local", "remote", "info"} {
		for _, verb := range [][]string{{"delete", "100"}, {"bounce", "100"}, {"queue", "100"}, {"queue"}} {
			if ch == "info" && verb[0] == "delete" {
				continue // delete only looks whether info/8/ID exists (lstat)
			}
			root, q, _ := linkTree(t)
			contents := precious
			if ch == "info" {
				contents = secretInfo
			}
			target := linkSplitDir(t, root, q, ch, contents)
			code, out, errs := run(t, root, verb...)
			what := strings.Join(verb, " ") + " with " + ch + "/8 a link"
			link := filepath.Join(q, ch, "8")
			if strings.Contains(out+errs, "victim") {
				t.Errorf("%s: the linked file was read: stdout %q, stderr %q", what, out, errs)
			}
			if !strings.Contains(out+errs, "directory "+link+" is a symbolic link") {
				t.Errorf("%s: exit %d, stdout %q, stderr %q; want the link named", what, code, out, errs)
			}
			if verb[0] != "queue" && code != ExitTemp {
				t.Errorf("%s: exit %d, want %d", what, code, ExitTemp)
			}
			checkTarget(t, target, contents)
			checkLink(t, link)
			if _, err := os.Lstat(filepath.Join(filepath.Dir(target), "100.tmp")); !os.IsNotExist(err) {
				t.Errorf("%s: a file was made in the linked directory (%v)", what, err)
			}
		}
	}
}

// TestBounceRefusesHardLinkedBounceFile: a bounce/ID that is a hard link
// (to a root-owned file, where fs.protected_hardlinks is off) gets no
// paragraph appended; the message is left as it was.
func TestBounceRefusesHardLinkedBounceFile(t *testing.T) {
	root, q, target := linkTree(t)
	link := filepath.Join(q, "bounce", "100")
	if err := os.Link(target, link); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run(t, root, "bounce", "100")
	if code != ExitTemp || !strings.Contains(errs, link) || !strings.Contains(errs, "hard link") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	checkTarget(t, target, precious)
	if b, _ := os.ReadFile(filepath.Join(q, "remote", "8", "100")); string(b) != "Tz@y.example\x00" {
		t.Errorf("remote/8/100 = %q", b)
	}
}

// TestDeleteRefusesHardLinkedChannelFile: a remote file that is a hard
// link is not rewritten (T to D) nor removed by delete.
func TestDeleteRefusesHardLinkedChannelFile(t *testing.T) {
	root, q, target := linkTree(t)
	p := filepath.Join(q, "remote", "8", "100")
	os.Remove(p)
	if err := os.Link(target, p); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run(t, root, "delete", "100")
	if code != ExitTemp || !strings.Contains(errs, "hard link") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	checkTarget(t, target, precious)
	if _, err := os.Lstat(p); err != nil {
		t.Errorf("the hard link was removed: %v", err)
	}
}

// TestReleaseRemoteTcptoLink: release remote clears tcpto, but not through
// a link planted in queue/lock: the target keeps its bytes, and qmailctl
// warns.
func TestReleaseRemoteTcptoLink(t *testing.T) {
	for _, mk := range []func(string, string) error{os.Symlink, os.Link} {
		root, _, target := linkTree(t)
		p := filepath.Join(root, "queue", "lock", "tcpto")
		os.Remove(p)
		if err := mk(target, p); err != nil {
			t.Fatal(err)
		}
		_, out, errs := run(t, root, "release", "remote")
		if !strings.Contains(errs, "warning: unable to clear queue/lock/tcpto") {
			t.Errorf("stdout %q, stderr %q", out, errs)
		}
		checkTarget(t, target, precious)
	}
}

// TestSendMutexLinkRefused: qmailctl never locks (nor quotes) a file that
// a link planted as queue/lock/sendmutex points to.
func TestSendMutexLinkRefused(t *testing.T) {
	root, _, target := linkTree(t)
	p := filepath.Join(root, MutexFile)
	plant(t, target, p)
	code, out, errs := run(t, root, "delete", "100")
	if code != ExitTemp || !strings.Contains(errs, "symbolic link") || strings.Contains(out+errs, "victim") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
	checkTarget(t, target, precious)
}

// TestLinkWant: the hooks record and read control/linkwant through
// qmailctl. A link left as linkwant, or as the temporary file, is never
// written through; a linkwant that is a link is not read.
func TestLinkWant(t *testing.T) {
	root, _, target := linkTree(t)
	p := filepath.Join(root, hold.LinkWantFile)
	if code, out, errs := run(t, root, "linkwant"); code != ExitTemp || out != "" || !strings.Contains(errs, "no link event") {
		t.Errorf("none recorded: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	plant(t, target, p)
	plant(t, target, p+".tmp")
	if code, out, errs := run(t, root, "linkwant"); code != ExitTemp || out != "" || !strings.Contains(errs, "symbolic link") {
		t.Errorf("linkwant a link: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	for _, w := range []string{"release", "hold"} {
		if code, out, errs := run(t, root, "linkwant", w); code != ExitOK || out != "" || errs != "" {
			t.Errorf("linkwant %s: exit %d, stdout %q, stderr %q", w, code, out, errs)
		}
		if code, out, errs := run(t, root, "linkwant"); code != ExitOK || out != w+"\n" {
			t.Errorf("after linkwant %s: exit %d, stdout %q, stderr %q", w, code, out, errs)
		}
	}
	checkTarget(t, target, precious)
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
		t.Errorf("linkwant: %v, %v", fi, err)
	}
	if !hold.ReleasedSinceBoot(root) {
		run(t, root, "linkwant", "release")
		if !hold.ReleasedSinceBoot(root) {
			t.Error("boot does not see the release qmailctl linkwant recorded")
		}
	}
	queuetest.WriteFile(t, p, []byte(precious))
	if code, out, errs := run(t, root, "linkwant"); code != ExitTemp || out != "" || strings.Contains(errs, "victim") {
		t.Errorf("junk: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	for _, args := range [][]string{{"linkwant", "up"}, {"linkwant", "hold", "x"}} {
		if code, _, errs := run(t, root, args...); code != ExitUsage || !strings.Contains(errs, "usage: qmailctl linkwant") {
			t.Errorf("%q: exit %d, stderr %q", args, code, errs)
		}
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, []byte(precious)) {
		t.Errorf("a bad usage changed linkwant: %q", b)
	}
}
