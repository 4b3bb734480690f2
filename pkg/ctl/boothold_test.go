package ctl

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/hold"
	"github.com/hqmail/hqmail/pkg/qread/queuetest"
)

// hookApply does what a network hook's "linkwant apply" does to the flag,
// without the control directory's lock: the apply of a writer that does
// not take it (an older qmailctl), the only one that can act while a boot
// hold holds the lock. holding false releases everything, domains held by
// name staying.
func hookApply(t *testing.T, root string, holding bool) {
	t.Helper()
	if _, err := editHold(filepath.Join(root, "control"), hold.RemoteFile, holding, nil); err != nil {
		t.Fatal(err)
	}
}

// ipDownState is the usual state at boot on a pppd host: the last ip-down
// of the previous boot held everything and recorded "hold" with that
// boot's id.
func ipDownState(t *testing.T, root, holdremote string) {
	t.Helper()
	queuetest.WriteFile(t, filepath.Join(root, hold.LinkWantFile), []byte("hold\n"))
	queuetest.WriteFile(t, filepath.Join(root, hold.LinkWantBootFile), []byte("00000000-0000-0000-0000-000000000000\n"))
	if holdremote != "" {
		queuetest.WriteFile(t, filepath.Join(root, "control", hold.RemoteFile), []byte(holdremote))
	}
}

// TestBootTakesBackOverIPDownHold: holdremote holds everything already
// (ip-down at the last shutdown) and a hook records a release while boot
// holds: the release is not undone, whatever holdremote held before. It
// was kept, as boot took back only a hold of everything it had added
// itself (QA rdialup2).
func TestBootTakesBackOverIPDownHold(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before string
		apply  bool // the hook's apply ran too (it removes the "*")
		after  string
	}{
		{"recorded only", "*\n", false, ""},
		{"recorded and applied", "*\n", true, ""},
		{"domains below", "*\ncorp.example\n.corp.example\n", true, "corp.example\n.corp.example\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := makeTree(t)
			ipDownState(t, root, tc.before)
			afterBootCheck = func() {
				if err := hold.WriteLinkWant(root, "release"); err != nil {
					t.Fatal(err)
				}
				if tc.apply {
					hookApply(t, root, false)
				}
			}
			t.Cleanup(func() { afterBootCheck = func() {} })
			code, out, errs := run(t, root, "boot")
			got, held := readFlag(t, root, hold.RemoteFile)
			if got != tc.after || held != (tc.after != "") || !strings.Contains(out, "taken back") {
				t.Errorf("boot over %q, a release meanwhile: holdremote %q (exists %v), want %q; exit %d, %q, %q",
					tc.before, got, held, tc.after, code, out, errs)
			}
		})
	}
}

// TestBootHookThroughLock: a hook's record and apply (qmailctl linkwant
// release, linkwant apply) coming while boot holds wait for boot's lock:
// its release is recorded after boot's look and applied after its hold,
// so nothing stays held.
func TestBootHookThroughLock(t *testing.T) {
	root := makeTree(t)
	ipDownState(t, root, "*\n")
	done := make(chan struct{})
	afterBootCheck = func() {
		go func() {
			defer close(done)
			var o, e bytes.Buffer
			Main(root, []string{"linkwant", "release"}, &o, &e)
			Main(root, []string{"linkwant", "apply"}, &o, &e)
		}()
	}
	t.Cleanup(func() { afterBootCheck = func() {} })
	code, out, errs := run(t, root, "boot")
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the hook did not finish")
	}
	if got, held := readFlag(t, root, hold.RemoteFile); held {
		t.Errorf("boot with a hook's release meanwhile: holdremote %q left; exit %d, %q, %q", got, code, out, errs)
	}
}

// TestStartHeldReleaseMeanwhile: control/startheld's hold is boot's: a
// release recorded by a hook between the look at linkwant and the hold
// leaves no hold (it created holdremote after the release, and nothing
// released it until the next link event; QA rdialup2).
func TestStartHeldReleaseMeanwhile(t *testing.T) {
	for _, tc := range []struct {
		name, startheld, before string
		apply                   bool
		after                   string
	}{
		{"none before", "", "", false, ""},
		{"ip-down hold before", "", "*\n", true, ""},
		{"ip-down hold, recorded only", "", "*\n", false, ""},
		{"VPN domains before", "", "corp.example\n.corp.example\n", false, "corp.example\n.corp.example\n"},
		{"startheld domains", "dial.example\n", "", false, ""},
		{"startheld domains over VPN domains", "dial.example\n", "corp.example\n", false, "corp.example\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := makeTree(t)
			ipDownState(t, root, tc.before)
			os.WriteFile(filepath.Join(root, "control", "startheld"), []byte(tc.startheld), 0o644)
			afterBootCheck = func() {
				if err := hold.WriteLinkWant(root, "release"); err != nil {
					t.Fatal(err)
				}
				if tc.apply {
					hookApply(t, root, false)
				}
			}
			t.Cleanup(func() { afterBootCheck = func() {} })
			held, err := StartHeld(root)
			got, exists := readFlag(t, root, hold.RemoteFile)
			if err != nil || held || got != tc.after || exists != (tc.after != "") {
				t.Errorf("startheld %q over %q, a release meanwhile: StartHeld %v, %v; holdremote %q (exists %v), want %q",
					tc.startheld, tc.before, held, err, got, exists, tc.after)
			}
		})
	}
}

// TestStartHeldHookThroughLock: as TestBootHookThroughLock, for
// control/startheld.
func TestStartHeldHookThroughLock(t *testing.T) {
	root := makeTree(t)
	ipDownState(t, root, "")
	os.WriteFile(filepath.Join(root, "control", "startheld"), nil, 0o644)
	done := make(chan struct{})
	afterBootCheck = func() {
		go func() {
			defer close(done)
			var o, e bytes.Buffer
			Main(root, []string{"linkwant", "release"}, &o, &e)
			Main(root, []string{"linkwant", "apply"}, &o, &e)
		}()
	}
	t.Cleanup(func() { afterBootCheck = func() {} })
	_, err := StartHeld(root)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the hook did not finish")
	}
	if got, held := readFlag(t, root, hold.RemoteFile); err != nil || held {
		t.Errorf("startheld with a hook's release meanwhile: %v; holdremote %q left", err, got)
	}
}

// TestStartHeldOverDomains: startheld holds everything over the domains
// holdremote lists (a VPN's), as boot does; it gave up when holdremote
// existed, and remote delivery went on at start while offline (QA
// rdialup2). A startheld listing domains adds them.
func TestStartHeldOverDomains(t *testing.T) {
	for _, tc := range []struct {
		startheld, before, after string
		changed                  bool
	}{
		{"", "corp.example\n.corp.example\n", "*\ncorp.example\n.corp.example\n", true},
		{"", "*\ncorp.example\n", "*\ncorp.example\n", false},
		{"", "", "1\n", true},
		{"dial.example\n", "corp.example\n", "corp.example\ndial.example\n", true},
		{"dial.example\n", "*\n", "*\ndial.example\n", true},
		{"# comment\n", "corp.example\n", "*\ncorp.example\n", true},
	} {
		root := makeTree(t)
		ipDownState(t, root, tc.before)
		os.WriteFile(filepath.Join(root, "control", "startheld"), []byte(tc.startheld), 0o644)
		changed, err := StartHeld(root)
		got, _ := readFlag(t, root, hold.RemoteFile)
		if err != nil || changed != tc.changed || got != tc.after {
			t.Errorf("startheld %q over %q: %v, %v, %q; want %v, %q", tc.startheld, tc.before, changed, err, got, tc.changed, tc.after)
		}
	}
}

// TestStartHeldNotesLink: a holdremote that is a symbolic link becomes a
// file of its own at startheld, as at qmailctl hold, and qmail-start says
// so, the link's target left as it was (QA rhold5: it was silent).
func TestStartHeldNotesLink(t *testing.T) {
	root := makeTree(t)
	ipDownState(t, root, "")
	target := filepath.Join(t.TempDir(), "shared")
	queuetest.WriteFile(t, target, []byte("a.test\n"))
	if err := os.Symlink(target, filepath.Join(root, "control", hold.RemoteFile)); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "control", "startheld"), nil, 0o644)
	var warn bytes.Buffer
	if _, err := StartHeldTo(root, &warn); err != nil {
		t.Fatal(err)
	}
	want := "qmail-start: note: control/holdremote was a symbolic link to " + target + ": it is a file of its own now, and " + target + " is left as it was\n"
	if warn.String() != want {
		t.Errorf("said %q, want %q", warn.String(), want)
	}
	if got, _ := readFlag(t, root, hold.RemoteFile); got != "*\na.test\n" {
		t.Errorf("holdremote %q, want *, a.test", got)
	}
	if b, _ := os.ReadFile(target); string(b) != "a.test\n" {
		t.Errorf("the link's target became %q", b)
	}
}

// TestBootReleasedUnreadableFlag: with a release since boot, a
// holdremote that cannot be read (a directory) is said, exit 111, not
// "remote delivery not held" (QA rhold5): qmail-send does not start so.
func TestBootReleasedUnreadableFlag(t *testing.T) {
	root := makeTree(t)
	if err := os.Mkdir(filepath.Join(root, "control", hold.RemoteFile), 0o755); err != nil {
		t.Fatal(err)
	}
	var o, e bytes.Buffer
	if code := Main(root, []string{"linkwant", "release"}, &o, &e); code != ExitOK {
		t.Fatalf("linkwant release: %d %s", code, e.String())
	}
	o.Reset()
	e.Reset()
	code := Main(root, []string{"boot"}, &o, &e)
	if code != ExitTemp || strings.Contains(o.String(), "not held") || !strings.Contains(e.String(), "qmail-send does not start until control/holdremote is a file or is removed") {
		t.Errorf("boot: exit %d, out %q, err %q", code, o.String(), e.String())
	}
}
