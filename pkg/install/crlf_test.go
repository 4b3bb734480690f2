package install

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestCheckCRLF: -check names a control file and an alias .qmail file
// saved with CRLF line endings (a line ending in a CR), with what the CR
// does and the sed that converts it; not a hold flag (its reader drops
// the CR), a CR inside a line, a name no program reads, or a .qmail
// file in alias/ that is a symbolic link (not followed there).
func TestCheckCRLF(t *testing.T) {
	root, _ := installed(t)
	const head = ": has CRLF line endings (saved by a Windows editor?): "
	sed := func(rel string) string { return "; convert it with sed -i 's/\\r$//' " + filepath.Join(root, rel) }
	ctl := func(name string) string {
		return "control/" + name + head + "the CR is part of the value, as in qmail"
	}
	const dotqmail = "the CR is part of each line, as in qmail: a line ./Maildir/ followed by a CR is no Maildir but " +
		"an mbox file named CR inside Maildir/, where mail is hidden, and a program line runs a command ending in a CR"
	outside := filepath.Join(t.TempDir(), "crlf")
	if err := os.WriteFile(outside, []byte("./Maildir/\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, rel, data string
		link            bool // a symbolic link to outside instead
		want            []string
	}{
		{"me", "control/me", "mx.example.org\r\n", false, []string{ctl("me") +
			": it goes into SMTP replies, Received: lines and Message-IDs, and into every host name that defaults to me" + sed("control/me")}},
		{"rcpthosts", "control/rcpthosts", "example.org\r\nlocalhost\r\n", false, []string{ctl("rcpthosts") +
			": its domains match no recipient, and qmail-smtpd refuses their mail" + sed("control/rcpthosts")}},
		{"defaultdelivery", "control/defaultdelivery", "./Maildir/\r\n", false, []string{ctl("defaultdelivery") +
			": ./Maildir/ followed by a CR is no Maildir but an mbox file named CR inside Maildir/, where mail is hidden" + sed("control/defaultdelivery")}},
		{"a number", "control/concurrencyremote", "20\r\n", false, nil},
		{"a CR at the end, no newline", "control/smtpgreeting", "greeting.example\r", false, []string{ctl("smtpgreeting") + sed("control/smtpgreeting")}},
		{"a link followed in control/", "control/smtproutes", "", true, []string{ctl("smtproutes") + sed("control/smtproutes")}},
		{"a CR inside a line", "control/badmailfrom", "a\rb@example.net\n", false, nil},
		{"holdremote", "control/holdremote", "corp.example\r\n", false, nil},
		{"a name no program reads", "control/mystery", "?\r\n", false, nil},
		{".qmail-default", "alias/.qmail-default", "|../bin/fastforward\r\n./Maildir/\r\n", false,
			[]string{"alias/.qmail-default" + head + dotqmail + sed("alias/.qmail-default")}},
		{"another .qmail", "alias/.qmail-postmaster", "# to the admin\r\n&admin@example.net\r\n", false,
			[]string{"alias/.qmail-postmaster" + head + dotqmail + sed("alias/.qmail-postmaster")}},
		{"a link in alias/", "alias/.qmail-root", "", true, nil},
		{"not a .qmail file", "alias/notes", "x\r\n", false, nil},
	} {
		p := filepath.Join(root, tc.rel)
		old, readErr := os.ReadFile(p)
		var err error
		if tc.link {
			os.Remove(p)
			err = os.Symlink(outside, p)
		} else {
			err = os.WriteFile(p, []byte(tc.data), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
		dev, err := Check(root)
		if err != nil || !slices.Equal(dev, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, dev, tc.want)
		}
		// An existing file is written back in place (its owner kept).
		if tc.link || readErr != nil {
			os.Remove(p)
		}
		if readErr == nil {
			os.WriteFile(p, old, 0o644)
		}
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Errorf("after the cases: %q %v", dev, err)
	}
}

func TestShellWord(t *testing.T) {
	for in, want := range map[string]string{
		"/var/qmail/control/me": "/var/qmail/control/me",
		"/srv/my mail/control":  "'/srv/my mail/control'",
		"/srv/it's/x":           `'/srv/it'\''s/x'`,
		"":                      "''",
	} {
		if got := shellWord(in); got != want {
			t.Errorf("shellWord(%q) = %s, want %s", in, got, want)
		}
	}
}
