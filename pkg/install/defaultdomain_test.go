package install

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestCheckMissingDefaultdomain: with control/defaultdomain removed from
// a tree that has control/me, qmail-inject uses me in its place, as
// qmail's does, and the repair leaves it missing (it makes the control
// files of a new tree only): -check judges the tree by me, and says the
// same before and after the re-run. A me of one or three labels then
// gives a name qmail-inject makes of user@localhost (localhost.me) or of
// a bare user (root@vm.vm) that the new tree's locals do not hold: named;
// for the others (laptop.test, a literal) defaultdomain was me already,
// and nothing is named.
func TestCheckMissingDefaultdomain(t *testing.T) {
	const tail = " to control/locals and to control/rcpthosts (as a new install does), then run qmailctl reload"
	for _, tc := range []struct{ me, want string }{
		{"mail.host.example.test", "control/locals: lacks localhost.mail.host.example.test, the domain qmail-inject and sendmail give mail to user@localhost " +
			"(they append .mail.host.example.test, from control/me in the absence of control/defaultdomain, to a host without a dot): " +
			"such mail is not local and is sent away; add the line localhost.mail.host.example.test" + tail},
		{"laptop.test", ""},
		{"vm", "control/defaultdomain: missing, so qmail-inject and sendmail use the dotless control/me vm: mail to a bare user goes to user@vm.vm, " +
			"which is not local; write localdomain to defaultdomain and plusdomain, and add vm.localdomain and localhost.localdomain to locals and rcpthosts (as a new install does)"},
		{"[192.0.2.1]", ""},
	} {
		root := filepath.Join(searchableDir(t), "q")
		o := opts(t, root)
		o.Me = tc.me
		if err := Install(o); err != nil {
			t.Fatal(err)
		}
		dd := filepath.Join(root, "control", "defaultdomain")
		os.Remove(dd)
		var want []string
		if tc.want != "" {
			want = []string{tc.want}
		}
		if dev, err := Check(root); err != nil || !slices.Equal(dev, want) {
			t.Errorf("me %s, no defaultdomain:\n got %q %v\nwant %q", tc.me, dev, err, want)
		}
		if err := Install(o); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(dd); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("me %s: the re-run made defaultdomain (%v)", tc.me, err)
		}
		if dev, err := Check(root); err != nil || !slices.Equal(dev, want) {
			t.Errorf("me %s, after the re-run:\n got %q %v\nwant %q", tc.me, dev, err, want)
		}
	}
}
