package ctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/hold"
)

// TestLinkWantReplay: qmailq owns queue/lock and may rename any file in
// it, root's included. It saved a release qmailctl linkwant had recorded
// there (with its linkwant.boot naming this boot), and once the next
// ip-down had recorded and applied its hold, renamed it back: linkwant
// apply then released remote delivery, and the boot hold took it for a
// network hook's release of this boot (QA rtoday6). linkwant is kept in
// control/ now, which qmailq cannot write, and what is in queue/lock is
// not read at all: a release put back there is nothing. Here the test
// renames, as qmailq would (in a tree of one user only the place counts);
// test/dialup_hooks_test.go TestDialupHookReplayAsQmailq renames as
// qmailq itself.
func TestLinkWantReplay(t *testing.T) {
	root := makeTree(t)
	startFake(t, root)
	lock := filepath.Join(root, "queue", "lock")
	if code, out, errs := run(t, root, "linkwant", "release"); code != ExitOK {
		t.Fatalf("linkwant release: exit %d, %q, %q", code, out, errs)
	}
	// qmailq saves the release of this boot that root's qmailctl wrote in
	// queue/lock (qmailctl linkwant wrote it there before; now it is what
	// an older qmailctl left in a tree upgraded since).
	if _, err := os.Lstat(filepath.Join(root, hold.OldLinkWantFile)); err != nil {
		id, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
		if err != nil {
			t.Skipf("no boot id: %v", err)
		}
		replayWrite(t, filepath.Join(root, hold.OldLinkWantFile), "release\n")
		replayWrite(t, filepath.Join(root, hold.OldLinkWantBootFile), string(id))
	}
	replayMove(t, filepath.Join(root, hold.OldLinkWantFile), filepath.Join(lock, ".saved"))
	replayMove(t, filepath.Join(root, hold.OldLinkWantBootFile), filepath.Join(lock, ".savedb"))
	// The ip-down: hold recorded and applied.
	for _, args := range [][]string{{"linkwant", "hold"}, {"linkwant", "apply", "nowait"}, {"linkwant", "hold"}} {
		if code, out, errs := run(t, root, args...); code != ExitOK {
			t.Fatalf("%q: exit %d, %q, %q", args, code, out, errs)
		}
	}
	// qmailq puts the saved release back.
	replayMove(t, filepath.Join(lock, ".saved"), filepath.Join(root, hold.OldLinkWantFile))
	replayMove(t, filepath.Join(lock, ".savedb"), filepath.Join(root, hold.OldLinkWantBootFile))
	code, out, errs := run(t, root, "linkwant", "apply", "nowait")
	if first, _, _ := strings.Cut(out, "\n"); code != ExitOK || first != "hold" {
		t.Errorf("apply after the replay: exit %d, stdout %q, stderr %q; want hold applied", code, out, errs)
	}
	if file, held := readFlag(t, root, hold.RemoteFile); !held || file != "*\n" {
		t.Errorf("holdremote after the replay: %q (exists %v), want the ip-down's hold", file, held)
	}
	if code, out, errs := run(t, root, "linkwant"); code != ExitOK || out != "hold\n" {
		t.Errorf("linkwant after the replay: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if hold.ReleasedSinceBoot(root) {
		t.Error("the boot hold takes the replayed release for a hook's release of this boot")
	}
}

func replayWrite(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func replayMove(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}
