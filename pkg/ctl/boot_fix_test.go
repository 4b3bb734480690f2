package ctl

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/hold"
	"github.com/hqmail/hqmail/pkg/qread/queuetest"
)

// TestReleaseAllLeavesDomainFirst: release remote without domains takes
// away every line that would hold everything as the first line (a blank
// line after "*", a CRLF file's "\r", a second "*"), so that the domains
// held by name are what is left held, as status promised.
func TestReleaseAllLeavesDomainFirst(t *testing.T) {
	for _, tc := range []struct{ before, after string }{
		{"*\n\nvpn.example\n", "vpn.example\n"},
		{"*\r\n\r\nvpn.example\r\n", "vpn.example\r\n"},
		{"Hold\n \n*\nvpn.example\n.corp.example\n", "vpn.example\n.corp.example\n"},
		{"ALL\n1\n\nvpn.example", "vpn.example"},
		{"*\n# VPN\nvpn.example\n", "# VPN\nvpn.example\n"},
	} {
		root := makeTree(t)
		p := filepath.Join(root, "control", hold.RemoteFile)
		os.WriteFile(p, []byte(tc.before), 0o644)
		code, out, errs := run(t, root, "release", "remote")
		got, _ := readFlag(t, root, hold.RemoteFile)
		if got != tc.after {
			t.Errorf("release of %q: file %q, want %q (exit %d, %q, %q)", tc.before, got, tc.after, code, out, errs)
		}
		if h := hold.Parse([]byte(got)); h.All {
			t.Errorf("release of %q left %q, which holds everything", tc.before, got)
		}
	}
}

// TestBootTakesBackOverDomains: a hook releases while boot holds, and
// holdremote held some domains by name before: boot's hold of everything
// is taken back, the domains stay held.
func TestBootTakesBackOverDomains(t *testing.T) {
	root := makeTree(t)
	p := filepath.Join(root, "control", hold.RemoteFile)
	os.WriteFile(p, []byte("vpn.example\n"), 0o644)
	afterBootCheck = func() {
		queuetest.WriteFile(t, filepath.Join(root, hold.LinkWantFile), []byte("release\n"))
		hookApply(t, root, false)
	}
	t.Cleanup(func() { afterBootCheck = func() {} })
	code, out, errs := run(t, root, "boot")
	if got, _ := readFlag(t, root, hold.RemoteFile); got != "vpn.example\n" || !strings.Contains(out, "taken back") {
		t.Errorf("boot racing a release over held domains: file %q, exit %d, %q, %q", got, code, out, errs)
	}
}

// TestBootStalePidFile: sendmutex is locked but the file names another
// process than the lock's holder. That is no qmail-send known to run (a
// file qmailq locked and wrote a pid into looks so): boot holds, the safe
// side, and says why; it held nothing before (QA rsec3).
func TestBootStalePidFile(t *testing.T) {
	root := makeTree(t)
	stale := fmt.Sprint(os.Getpid()) // exists, and does not hold the lock
	launchFake(t, root, func(*exec.Cmd) bool {
		b, _ := os.ReadFile(filepath.Join(root, MutexFile))
		return strings.TrimSpace(string(b)) == stale
	}, "FAKE_SEND_PIDTEXT="+stale)
	if _, err := LocateSend(root); err == nil || err == ErrNotRunning {
		t.Fatalf("LocateSend: %v, want the stale pid error", err)
	}
	code, out, errs := run(t, root, "boot")
	if _, held := readFlag(t, root, hold.RemoteFile); !held || strings.Contains(out, "already running") ||
		!strings.Contains(errs, "warning: no qmail-send known to run") || !strings.Contains(errs, "stale pid file") {
		t.Errorf("boot with a stale pid file: held %v, exit %d, %q, %q; want the hold and a warning saying why", held, code, out, errs)
	}
}

// TestBootUntestableSaysReasonOnce: when sendmutex cannot be opened, boot
// cannot tell whether qmail-send runs: it holds, the safe side, and its
// warning says why, the reason once (it was "(unable to open …: R;
// unable to open …: R)" when boot held nothing then). A directory there
// stands for the permission denied a user without access to the queue
// gets. Telling qmail-send fails for the same reason: exit 111.
func TestBootUntestableSaysReasonOnce(t *testing.T) {
	root := makeTree(t)
	p := filepath.Join(root, MutexFile)
	os.Remove(p)
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run(t, root, "boot")
	if _, held := readFlag(t, root, hold.RemoteFile); !held || code != ExitTemp || !strings.Contains(errs, "warning: no qmail-send known to run (unable to open") {
		t.Fatalf("boot with sendmutex a directory: held %v, exit %d, %q, %q", held, code, out, errs)
	}
	for _, l := range strings.Split(errs, "\n") {
		if strings.Count(l, "unable to open") > 1 {
			t.Errorf("boot said the reason more than once in %q", l)
		}
	}
}

// TestReleaseDomainUnderHoldAll: with everything held, releasing a domain
// that was held by name says it flows once everything is released; one
// that never was held by name is said to be so (it was "every destination
// is still held; never.example will flow once that is released", as if
// the release had done something for it). The file is left as it is for
// the latter.
func TestReleaseDomainUnderHoldAll(t *testing.T) {
	for _, tc := range []struct {
		before        string
		args          []string
		after         string
		want, wantNot []string
	}{
		{"*\n", []string{"never.example"}, "*\n",
			[]string{"qmailctl: never.example was not held by name; every destination is still held (release everything with: qmailctl release remote)\n"},
			[]string{"will flow"}},
		{"*\nvpn.example\n", []string{"VPN.example"}, "*\n",
			[]string{"qmailctl: every destination is still held; VPN.example will flow once that is released (qmailctl release remote)\n"},
			[]string{"not held by name"}},
		{"*\nvpn.example\n", []string{"vpn.example", "a.example", "b.example"}, "*\n",
			[]string{"; vpn.example will flow once", "qmailctl: a.example b.example were not held by name; every destination is still held"},
			[]string{"a.example will flow", "vpn.example was"}},
	} {
		root := makeTree(t)
		p := filepath.Join(root, "control", hold.RemoteFile)
		if err := os.WriteFile(p, []byte(tc.before), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errs := run(t, root, append([]string{"release", "remote"}, tc.args...)...)
		got, _ := readFlag(t, root, hold.RemoteFile)
		if got != tc.after || code != ExitNotRunning {
			t.Errorf("release %v of %q: file %q, exit %d; want %q, %d (%q, %q)", tc.args, tc.before, got, code, tc.after, ExitNotRunning, out, errs)
		}
		for _, w := range tc.want {
			if !strings.Contains(errs, w) {
				t.Errorf("release %v of %q: stderr %q lacks %q", tc.args, tc.before, errs, w)
			}
		}
		for _, w := range tc.wantNot {
			if strings.Contains(errs, w) {
				t.Errorf("release %v of %q: stderr %q has %q", tc.args, tc.before, errs, w)
			}
		}
	}
}
