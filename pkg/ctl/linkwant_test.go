package ctl

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/hold"
	"github.com/hqmail/hqmail/pkg/qread/queuetest"
)

// TestLinkWantApply: qmailctl linkwant apply holds or releases remote
// delivery as control/linkwant says, prints the word it applied on its
// first line, and waits for qmail-send as hold and release do.
func TestLinkWantApply(t *testing.T) {
	root := makeTree(t)
	startFake(t, root)
	code, out, errs := run(t, root, "linkwant", "apply")
	if _, held := readFlag(t, root, hold.RemoteFile); code != ExitTemp || out != "" || !strings.Contains(errs, "nothing applied") || held {
		t.Errorf("no linkwant: exit %d, stdout %q, stderr %q, held %v", code, out, errs, held)
	}
	queuetest.WriteFile(t, filepath.Join(root, "control", hold.RemoteFile), []byte("*\n"))
	for _, s := range []struct {
		want   string   // recorded in linkwant
		args   []string // after linkwant apply
		file   string   // holdremote afterwards, "-" for none
		says   string   // fake qmail-send's holdremote afterwards
		stdout string   // in the state line
	}{
		{"release", nil, "-", "no", "confirmed"},
		{"hold", nil, "*\n", "all", "confirmed"},
		{"hold", nil, "*\n", "all", "(unchanged)"},
		{"release", []string{"nowait"}, "-", "", "not awaited"},
		{"hold", []string{"nowait"}, "*\n", "", "not awaited"},
	} {
		if code, out, errs := run(t, root, "linkwant", s.want); code != ExitOK {
			t.Fatalf("linkwant %s: exit %d, %q, %q", s.want, code, out, errs)
		}
		args := append([]string{"linkwant", "apply"}, s.args...)
		code, out, errs := run(t, root, args...)
		first, rest, _ := strings.Cut(out, "\n")
		if code != ExitOK || first != s.want || !strings.Contains(rest, s.stdout) {
			t.Errorf("%s after linkwant %s: exit %d, stdout %q, stderr %q", args, s.want, code, out, errs)
		}
		file, held := readFlag(t, root, hold.RemoteFile)
		if !held {
			file = "-"
		}
		if file != s.file {
			t.Errorf("%s after linkwant %s: holdremote %q, want %q", args, s.want, file, s.file)
		}
		if s.says == "" {
			continue // not waited for
		}
		if st, _ := ReadStatus(root); st["holdremote"] != s.says {
			t.Errorf("%s after linkwant %s: qmail-send says %q, want %q", args, s.want, st["holdremote"], s.says)
		}
	}
	for _, args := range [][]string{{"linkwant", "apply", "now"}, {"linkwant", "apply", "nowait", "x"}, {"linkwant", "nowait"}} {
		if code, _, errs := run(t, root, args...); code != ExitUsage || !strings.Contains(errs, "usage: qmailctl linkwant") {
			t.Errorf("%q: exit %d, stderr %q", args, code, errs)
		}
	}
}

// TestLinkWantApplyNoWait: apply nowait writes the flag and signals a
// qmail-send that never confirms, and returns at once with success; the
// waiting apply times out against the same qmail-send. With qmail-send
// stopped both change the flag and exit 3.
func TestLinkWantApplyNoWait(t *testing.T) {
	root := makeTree(t)
	startFake(t, root, "FAKE_SEND_MUTE=1")
	run(t, root, "linkwant", "hold")
	code, out, errs := run(t, root, "-t", "1", "linkwant", "apply", "nowait")
	if file, _ := readFlag(t, root, hold.RemoteFile); code != ExitOK || !strings.HasPrefix(out, "hold\n") || file != "*\n" {
		t.Errorf("apply nowait, qmail-send mute: exit %d, stdout %q, stderr %q, holdremote %q", code, out, errs, file)
	}
	run(t, root, "linkwant", "release")
	code, out, errs = run(t, root, "-t", "0.2", "linkwant", "apply")
	if _, held := readFlag(t, root, hold.RemoteFile); code != ExitTemp || !strings.HasPrefix(out, "release\n") || held {
		t.Errorf("apply, qmail-send mute: exit %d, stdout %q, stderr %q, held %v", code, out, errs, held)
	}

	root = makeTree(t)
	run(t, root, "linkwant", "hold")
	for _, args := range [][]string{{"linkwant", "apply", "nowait"}, {"linkwant", "apply"}} {
		code, out, errs := run(t, root, args...)
		if file, _ := readFlag(t, root, hold.RemoteFile); code != ExitNotRunning || !strings.HasPrefix(out, "hold\n") ||
			!strings.Contains(errs, "next start honours it") || file != "*\n" {
			t.Errorf("%q, qmail-send stopped: exit %d, stdout %q, stderr %q, holdremote %q", args, code, out, errs, file)
		}
	}
}

// TestLinkWantApplyDecidesUnderLock: apply reads linkwant and changes the
// flag under the control directory's lock, and recording a word takes the
// same lock. A hook's ip-down that records hold while an ip-up's apply has
// read release therefore waits until that release is done (here: its
// record, bounded by -t and lockWait, fails meanwhile), and is never
// overtaken by it: the release is applied before linkwant says hold.
func TestLinkWantApplyDecidesUnderLock(t *testing.T) {
	root := makeTree(t)
	queuetest.WriteFile(t, filepath.Join(root, "control", hold.RemoteFile), []byte("*\n"))
	run(t, root, "linkwant", "release")
	saved := lockWait
	lockWait = 50 * time.Millisecond
	var code int
	var errs string
	afterLinkWantRead = func() { code, _, errs = run(t, root, "-t", "0.001", "linkwant", "hold") }
	t.Cleanup(func() { lockWait, afterLinkWantRead = saved, func() {} })
	c, out, e := run(t, root, "linkwant", "apply")
	if c != ExitNotRunning || !strings.HasPrefix(out, "release\n") {
		t.Fatalf("apply: exit %d, stdout %q, stderr %q", c, out, e)
	}
	if code != ExitTemp || !strings.Contains(errs, "unable to write "+hold.LinkWantFile) {
		t.Errorf("linkwant hold recorded while apply held the lock: exit %d, stderr %q", code, errs)
	}
	if c, out, _ := run(t, root, "linkwant"); c != ExitOK || out != "release\n" {
		t.Errorf("linkwant says %q (exit %d), want release (the hold was refused)", out, c)
	}
	// Once apply is done the record goes through.
	afterLinkWantRead = func() {}
	if c, out, e := run(t, root, "-t", "0.001", "linkwant", "hold"); c != ExitOK {
		t.Errorf("linkwant hold after apply: exit %d, %q, %q", c, out, e)
	}
}

// TestLinkWantApplyLetsGoBeforeWaiting: an apply that waits for qmail-send
// (here one that never answers) holds the control lock only while it
// reads linkwant and writes the flag: a down event recorded meanwhile,
// and its hold, do not wait behind it (reg17 QA: ip-down blocked for
// 10-20 s, and a caller killing it then lost the hold). The waiting apply
// then sees the flag changed again and leaves the confirmation to that
// change.
//
// The waiting apply's -t (30 s) is far longer than the hold's (5 s): an
// apply that kept the lock through its wait makes the hold fail. The
// hold's -t only has to cover the apply's work after the flag's rename
// (syncing control/, clearing tcpto, signalling). Once the hold is made
// the fake qmail-send is killed, so the apply's wait ends ("exited before
// confirming") without running out its 30 s.
func TestLinkWantApplyLetsGoBeforeWaiting(t *testing.T) {
	saved := lockWait
	t.Cleanup(func() { lockWait = saved })
	lockWait = 50 * time.Millisecond
	root := makeTree(t)
	send := startFake(t, root, "FAKE_SEND_MUTE=1")
	run(t, root, "linkwant", "hold")
	run(t, root, "-t", "5", "linkwant", "apply", "nowait")
	run(t, root, "linkwant", "release")
	type result struct {
		code      int
		out, errs string
	}
	done := make(chan result, 1)
	go func() {
		code, out, errs := run(t, root, "-t", "30", "linkwant", "apply")
		done <- result{code, out, errs}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, held := readFlag(t, root, hold.RemoteFile); !held {
			break // the release is written; apply now waits for qmail-send
		}
		if time.Now().After(deadline) {
			t.Fatal("the release was never written")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, _, errs := run(t, root, "-t", "5", "linkwant", "hold"); code != ExitOK {
		t.Fatalf("recording hold while a release waits for qmail-send: exit %d, %s", code, errs)
	}
	if code, _, errs := run(t, root, "-t", "5", "linkwant", "apply", "nowait"); code != ExitOK {
		t.Fatalf("holding while a release waits for qmail-send: exit %d, %s", code, errs)
	}
	if file, _ := readFlag(t, root, hold.RemoteFile); file != "*\n" {
		t.Errorf("holdremote %q after the down event, want *", file)
	}
	send.Process.Kill()
	var r result
	select {
	case r = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the waiting release did not end within 60s of qmail-send's death")
	}
	if r.code != ExitOK || !strings.HasPrefix(r.out, "release\n") || !strings.Contains(r.out, "changed again since") {
		t.Errorf("the waiting release: exit %d, stdout %q, stderr %q", r.code, r.out, r.errs)
	}
}
