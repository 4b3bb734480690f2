package install

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestCheckMissingDefaultdomain: with control/defaultdomain removed from
// a new tree, -check names it as missing (a re-run makes it) and gives
// no advice that contradicts the re-run: it advised adding
// localhost.mail.host.example.test to locals and rcpthosts (from me),
// while the re-run writes host.example.test to defaultdomain, whose
// localhost.host.example.test the new tree's locals already hold, and a
// dotless me got "write localdomain ... and add vm.localdomain and
// localhost.localdomain to locals" though locals held both. After the
// re-run the check is clean. A locals that lacks the name the re-run's
// defaultdomain gives is still named, with that name, before and after.
func TestCheckMissingDefaultdomain(t *testing.T) {
	const missing = "control/defaultdomain: missing (a re-run makes it, as a new install does)"
	for _, me := range []string{"mail.host.example.test", "laptop.test", "vm", "[192.0.2.1]"} {
		root := filepath.Join(searchableDir(t), "q")
		o := opts(t, root)
		o.Me = me
		if err := Install(o); err != nil {
			t.Fatal(err)
		}
		dd := filepath.Join(root, "control", "defaultdomain")
		os.Remove(dd)
		if dev, err := Check(root); err != nil || !slices.Equal(dev, []string{missing}) {
			t.Errorf("me %s, no defaultdomain:\n got %q %v\nwant %q", me, dev, err, []string{missing})
		}
		if err := Install(o); err != nil {
			t.Fatal(err)
		}
		if dev, err := Check(root); err != nil || len(dev) != 0 {
			t.Errorf("me %s, after the re-run: %q %v", me, dev, err)
		}
	}

	// locals and rcpthosts as an old install wrote them.
	root := filepath.Join(searchableDir(t), "q")
	o := opts(t, root)
	o.Me = "mail.host.example.test"
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"locals", "rcpthosts"} {
		os.WriteFile(filepath.Join(root, "control", n), []byte("mail.host.example.test\nlocalhost\n"), 0o644)
	}
	os.Remove(filepath.Join(root, "control", "defaultdomain"))
	hint := func(from string) string {
		return "control/locals: lacks localhost.host.example.test, the domain qmail-inject and sendmail give mail to user@localhost " +
			"(they append .host.example.test, from " + from + ", to a host without a dot): such mail is not local and is sent away; " +
			"add the line localhost.host.example.test to control/locals and to control/rcpthosts (as a new install does), then run qmailctl reload"
	}
	want := []string{missing, hint("control/defaultdomain once a re-run has made it")}
	if dev, err := Check(root); err != nil || !slices.Equal(dev, want) {
		t.Errorf("old locals, no defaultdomain:\n got %q %v\nwant %q", dev, err, want)
	}
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	want = []string{hint("control/defaultdomain")}
	if dev, err := Check(root); err != nil || !slices.Equal(dev, want) {
		t.Errorf("old locals, after the re-run:\n got %q %v\nwant %q", dev, err, want)
	}
}
