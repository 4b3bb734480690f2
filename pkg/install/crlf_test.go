package install

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hqmail/hqmail/pkg/admin"
)

// TestCheckCRLF: -check names a control file and an alias .qmail file
// in which a value the programs use ends in a CR (saved with CRLF line
// endings), with what the CR does and the sed that converts it; not a
// CR the programs never read (a comment line, a later line of a
// single-value file), a list whose reader drops the CR (smtproutes), a
// number, a hold flag (its reader drops the CR), a CR inside a line, a
// name no program reads, or a .qmail file in alias/ that is a symbolic
// link (not followed there).
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
		{"a CR on the second line of a single-value file", "control/smtpgreeting", "greet\nsecond\r\n", false, nil},
		{"a CR on a comment line of a list", "control/badmailfrom", "# c\r\nbad@x\n", false, nil},
		{"a CR on a list line after a comment", "control/badmailfrom", "# c\nbad@x\r\n", false, []string{ctl("badmailfrom") + sed("control/badmailfrom")}},
		{"smtproutes (its reader drops the CR)", "control/smtproutes", "example.net:relay.example:2525\r\n:smart.example\r\n", false, nil},
		{"a link followed in control/", "control/percenthack", "", true, []string{ctl("percenthack") + sed("control/percenthack")}},
		{"a CR inside a line", "control/badmailfrom", "a\rb@example.net\n", false, nil},
		{"holdremote", "control/holdremote", "corp.example\r\n", false, nil},
		{"a name no program reads", "control/mystery", "?\r\n", false, nil},
		{".qmail-default", "alias/.qmail-default", "|../bin/fastforward\r\n./Maildir/\r\n", false,
			[]string{"alias/.qmail-default" + head + dotqmail + sed("alias/.qmail-default")}},
		{"another .qmail", "alias/.qmail-postmaster", "# to the admin\r\n&admin@example.net\r\n", false,
			[]string{"alias/.qmail-postmaster" + head + dotqmail + sed("alias/.qmail-postmaster")}},
		{"a CR on a .qmail comment line only", "alias/.qmail-postmaster", "# to the admin\r\n&admin@example.net\n", false, nil},
		{"a .qmail line of only a CR (a forward)", "alias/.qmail-abuse", "./Maildir/\n\r\n", false,
			[]string{"alias/.qmail-abuse" + head + dotqmail + sed("alias/.qmail-abuse")}},
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

// TestControlValueEndsInCR: control files are judged as their readers
// take them, by the kinds of qmail-showctl's table.
func TestControlValueEndsInCR(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		want       bool
	}{
		{"me", "mx.example\r\n", true},
		{"me", "mx.example \r\n", true},
		{"me", "\xef\xbb\xbfmx.example\r\n", true},
		{"me", "mx.example\nsecond\r\n", false},
		{"me", "mx.example\n", false},
		{"me", "", false},
		{"helohost", "\r\nhelo.example\n", true}, // the first line is the value: a lone CR
		{"locals", "example.org\nmx.example\r\n", true},
		{"locals", "# ours\r\nexample.org\n\n", false},
		{"locals", "example.org\n\t\n", false},
		{"smtpauth", "smart.example:u:secret\r\n", true},
		{"smtproutes", ":smart.example\r\n", false},
		{"tlsroutes", "smart.example:require\r\n", false},
		{"outgoingip", "192.0.2.1\r\n", false},
		{"relayclients", "192.0.2.0/24\r\n", false},
		{"databytes", "1000\r\n", false},
		{"timeoutremote", "60\r\n", false},
		{"holdremote", "corp.example\r\n", false},
		{"startheld", "\r\n", false},
		{"servercert.pem", "-----BEGIN CERTIFICATE-----\r\n", false},
		{"mystery", "?\r\n", false},
	} {
		if got := controlValueEndsInCR(tc.name, []byte(tc.data)); got != tc.want {
			t.Errorf("%s %q: %v, want %v", tc.name, tc.data, got, tc.want)
		}
	}
}

// TestControlEffectsHaveKinds: every control file -check knows has its
// kind in qmail-showctl's table, the one that says how it is read.
func TestControlEffectsHaveKinds(t *testing.T) {
	for n := range controlEffects {
		if _, ok := admin.ControlValueKind(n); !ok {
			t.Errorf("control/%s: not in qmail-showctl's table", n)
		}
	}
}

// TestDotQmailEndsInCR: every line of a .qmail file but comments and
// blank lines is used.
func TestDotQmailEndsInCR(t *testing.T) {
	for _, tc := range []struct {
		data string
		want bool
	}{
		{"./Maildir/\r\n", true},
		{"./Maildir/\r", true},
		{"|prog \r\t\n", true},
		{"./Maildir/\n\r\n", true},
		{"# a note\r\n./Maildir/\n", false},
		{"#\r\n", false},
		{"./Maildir/\n\n", false},
		{"./Mail\rdir/\n", false},
		{"\x00\r\n", false},
	} {
		if got := dotQmailEndsInCR([]byte(tc.data)); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.data, got, tc.want)
		}
	}
}
