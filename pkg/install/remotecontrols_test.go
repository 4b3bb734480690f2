package install

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// tlscaDefers is what -check says a control/tlsca qmail-remote cannot
// read costs, why being qmail-remote's reason (pkg/remote loadRoots:
// "Unable to read control/tlsca: is a directory. (#4.3.0)").
func tlscaDefers(why string) string {
	return `qmail-remote defers every delivery that verifies the server's certificate ("Unable to read control/tlsca: ` + why + `. (#4.3.0)"): ` +
		`all mail through a relay with a login in control/smtpauth, unless control/tlsroutes gives its domain try, encrypt or none, ` +
		`and mail to every domain control/tlsroutes gives require (or a word it does not know)`
}

// TestCheckTLSCA: a control/tlsca qmail-remote cannot read is named with
// qmail-remote's own report (it said "Unable to read control files") and
// the deliveries it defers (it named only those tlsroutes requires TLS
// for, not those of a relay with a login, which verify by default), and,
// when a permission keeps it from qmailr, for qmailr alone (alias, qmaild
// and qmails were named too, which never read it).
func TestCheckTLSCA(t *testing.T) {
	root, ids := rootTree(t)
	p := filepath.Join(root, "control", "tlsca")
	check := func(what string, want ...string) {
		t.Helper()
		dev, err := Check(root)
		if err != nil || !slices.Equal(dev, want) {
			t.Errorf("%s:\n got %q\nwant %q", what, dev, want)
		}
	}
	fix := " (replace it by a regular file)"

	os.Mkdir(p, 0o755)
	check("a directory", "control/tlsca: is a directory, want a regular file: "+tlscaDefers("is a directory")+fix)
	os.Remove(p)

	syscall.Mkfifo(p, 0o644)
	check("a fifo", "control/tlsca: is a fifo, want a regular file: "+tlscaDefers("not a regular file")+fix)
	os.Remove(p)

	os.Symlink("tlsca", p)
	check("a loop", "control/tlsca: is a symbolic link to tlsca, a loop of symbolic links, want a regular file: "+
		tlscaDefers("symbolic link loop")+fix)
	os.Remove(p)

	os.WriteFile(p, []byte("-----BEGIN CERTIFICATE-----\n"), 0o600)
	check("root's 0600", "control/tlsca: not readable by qmailr (qmail-remote): mode 0600, owner root, group root (chmod 644): "+
		tlscaDefers("access denied"))
	os.Chown(p, 0, ids.Qmail)
	os.Chmod(p, 0o640)
	check("0640 of group qmail: qmailr reads it")
	os.Chown(p, 0, 0)
	os.Chmod(p, 0o644)
	check("0644")
}

// TestCheckSmtproutesLogin: -check names an smtproutes line with a login
// after the port, as qmail's AUTH patches write it, by its number, and
// never shows the login.
func TestCheckSmtproutesLogin(t *testing.T) {
	root, _ := installed(t)
	owner := "owner qmailr"
	if os.Geteuid() != 0 {
		owner = "owned by the tree's user"
	}
	p := filepath.Join(root, "control", "smtproutes")
	os.WriteFile(p, []byte("# smarthost\n:smtp.provider.test:587 me@provider.test s3cret:pw\nexample.net:relay.example:2525\n:smtp.other.test login pw\n"), 0o644)
	want := []string{
		"control/smtproutes: line 2: text after the port is ignored; a login belongs in control/smtpauth (mode 0600, " + owner + ")",
		"control/smtproutes: line 4: text after a blank in the relay's name is taken as part of the name, which no host has; " +
			"a login belongs in control/smtpauth (mode 0600, " + owner + ")",
	}
	if dev, err := Check(root); err != nil || !slices.Equal(dev, want) {
		t.Errorf("got %q\nwant %q", dev, want)
	}
	os.WriteFile(p, []byte(":smtp.provider.test:587\n"), 0o644)
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Errorf("a route without a login: %q %v", dev, err)
	}
}
