package ctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/qread/queuetest"
)

// TestStatusAllWithDomains: a hold of everything over domains held by
// name ("*" and then the domains: qmailctl hold remote after qmailctl
// hold remote DOMAIN) names the domains, which stay held after a release
// of everything; the plain forms keep their lines.
func TestStatusAllWithDomains(t *testing.T) {
	root := makeTree(t)
	remoteLine := func(what string) string {
		t.Helper()
		_, out, _ := run(t, root, "status")
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "remote: ") {
				return l
			}
		}
		t.Fatalf("%s: no remote line in\n%s", what, out)
		return ""
	}
	step := func(what string, args []string, want string) {
		t.Helper()
		if args != nil {
			// qmail-send is not running: the flag is set all the same.
			if code, _, errs := run(t, root, args...); code != ExitOK && code != ExitNotRunning {
				t.Fatalf("%s: %v: exit %d %s", what, args, code, errs)
			}
		}
		// The line goes on with when the hold began.
		if l := remoteLine(what); l != want && !strings.HasPrefix(l, want+" ") {
			t.Errorf("%s:\n got %q\nwant %q...", what, l, want)
		}
	}
	step("nothing", nil, "remote: not held")
	step("one domain", []string{"hold", "remote", "far.test"}, "remote: held for far.test")
	step("everything over one domain", []string{"hold", "remote"},
		"remote: held (all destinations; far.test stays held after a release)")
	step("everything over two", []string{"hold", "remote", "near.test"},
		"remote: held (all destinations; far.test and 1 more stay held after a release)")
	step("released", []string{"release", "remote"}, "remote: held for far.test near.test")
	queuetest.WriteFile(t, filepath.Join(root, "control", "holdremote"), []byte("*\n"))
	step("a plain hold of everything", nil, "remote: held (all destinations)")
	queuetest.WriteFile(t, filepath.Join(root, "control", "holdremote"), []byte("no domain here\n"))
	step("a file of junk", nil, "remote: held (all destinations)")
}

// TestHoldremoteUnreadable: a control/holdremote qmail-send finds at a
// HUP but cannot read (mode 0600 of root, which qmailctl as root reads
// all the same; a directory) makes it hold all remote delivery. reload
// says so, not that the old value stays; status says why all is held
// and how to mend it, not to reload, which cannot help; the advice fits a
// directory too (it was only chmod 644, which mends no directory).
func TestHoldremoteUnreadable(t *testing.T) {
	const (
		reloadWant = "could not re-read control/holdremote (see its log); it holds all remote delivery until it can read control/holdremote: " +
			"chmod 644 a file qmails may not read; remove a directory (rm -r control/holdremote) and, to keep remote delivery held, " +
			"put a file in its place, empty or listing the domains to hold (qmailctl hold remote [DOMAIN...] writes one); " +
			"then run qmailctl reload; qmail-install -check names the cause\n"
		statusWant = "\nwarning: qmail-send cannot read control/holdremote and holds all remote delivery until it can: " +
			"chmod 644 a file qmails may not read; remove a directory (rm -r control/holdremote) and, to keep remote delivery held, " +
			"put a file in its place, empty or listing the domains to hold (qmailctl hold remote [DOMAIN...] writes one); " +
			"then run qmailctl reload; qmail-install -check names the cause\n"
	)
	for _, tc := range []struct {
		name, remoteLine string
		make             func(path string) error
		env              []string
	}{
		{"mode 0600", "\nremote: held for a.test", func(p string) error { return os.WriteFile(p, []byte("a.test\n"), 0o600) },
			[]string{"FAKE_SEND_UNREADABLE=1"}},
		{"directory", "\nremote: unknown (unable to read control/holdremote: ", func(p string) error { return os.Mkdir(p, 0o755) }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := makeTree(t)
			if err := tc.make(filepath.Join(root, "control", "holdremote")); err != nil {
				t.Fatal(err)
			}
			startFake(t, root, tc.env...)
			code, out, errs := run(t, root, "reload")
			if code != ExitTemp || !strings.HasSuffix(errs, reloadWant) || strings.Contains(errs, "old values") {
				t.Errorf("reload: exit %d, stdout %q\n got stderr %q\nwant ...%q", code, out, errs, reloadWant)
			}
			_, out, _ = run(t, root, "status")
			if !strings.Contains(out, tc.remoteLine) || !strings.Contains(out, statusWant) || strings.Contains(out, "run qmailctl reload\n") {
				t.Errorf("status:\n%s\nwant %q and %q, no advice to reload", out, tc.remoteLine, statusWant)
			}
		})
	}
}

// TestRereadFailure: the old values stay for the other files reload
// names.
func TestRereadFailure(t *testing.T) {
	for _, tc := range []struct {
		st   Status
		want string
	}{
		{Status{"reread-failed": "locals", "holdremote": "all"},
			"qmail-send (pid 7) could not re-read control/locals (see its log); the old values stay in force"},
		{Status{"reread-failed": "holdremote", "holdremote": "no"}, // gone again before qmail-send looked
			"qmail-send (pid 7) could not re-read control/holdremote (see its log); the old values stay in force"},
		{Status{"reread-failed": "locals holdremote", "holdremote": "all"},
			"qmail-send (pid 7) could not re-read control/locals, control/holdremote (see its log); the old values of control/locals stay in force, " +
				"and it holds all remote delivery until it can read control/holdremote: " + holdremoteFix},
		{Status{"reread-failed": "controls", "holdremote": "no"}, // its home directory was out of reach
			"qmail-send (pid 7) could not re-read its control files (see its log); the old values stay in force"},
	} {
		if got := rereadFailure(7, tc.st); got != tc.want {
			t.Errorf("%v:\n got %q\nwant %q", tc.st, got, tc.want)
		}
	}
}
