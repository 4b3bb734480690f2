package ctl

import (
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
