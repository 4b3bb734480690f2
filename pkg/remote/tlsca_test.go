package remote

import (
	"crypto/tls"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/control"
)

// ctlDelivery returns a delivery that reads the control directory of a new
// tree, and that directory.
func ctlDelivery(t *testing.T) (*delivery, string) {
	t.Helper()
	root := t.TempDir()
	ctl := filepath.Join(root, "control")
	if err := os.Mkdir(ctl, 0o755); err != nil {
		t.Fatal(err)
	}
	return &delivery{cfg: &Config{ctl: control.Open(root)}}, ctl
}

// notAFile puts at p in turn a FIFO and a directory, calls check with the
// kind, and removes it again.
func notAFile(t *testing.T, p string, check func(kind string)) {
	t.Helper()
	for _, tc := range []struct {
		name string
		f    func() error
	}{
		{"fifo", func() error { return unix.Mkfifo(p, 0o644) }},
		{"directory", func() error { return os.Mkdir(p, 0o755) }},
	} {
		if err := tc.f(); err != nil {
			t.Fatal(err)
		}
		check(tc.name)
		os.Remove(p)
	}
}

// TestLoadRootsNotAFile: a control/tlsca that is no regular file (a FIFO,
// which blocked the read for ever before the delivery connected; a
// directory) defers with a report naming the file and why; a missing one
// leaves the system's roots.
func TestLoadRootsNotAFile(t *testing.T) {
	d, ctl := ctlDelivery(t)
	if rep := d.loadRoots(); rep != nil || d.roots != nil {
		t.Fatalf("no tlsca: %+v, roots %v", rep, d.roots)
	}
	notAFile(t, filepath.Join(ctl, "tlsca"), func(kind string) {
		want := "Unable to read control/tlsca: not a regular file. (#4.3.0)\n"
		if kind == "directory" {
			want = "Unable to read control/tlsca: is a directory. (#4.3.0)\n" // open(2)'s EISDIR
		}
		rep := d.loadRoots()
		if rep == nil || rep.letter != 'Z' || rep.text != want {
			t.Errorf("tlsca a %s: %+v, want Z %q", kind, rep, want)
		}
	})
}

// TestLoadRootsBadFile: a control/tlsca without a certificate to trust
// (QA: a DER file, junk) defers with a report that names the file and
// what is wrong with it, not "Unable to read control files", which named
// none; so does one that cannot be read. A PEM file is taken.
func TestLoadRootsBadFile(t *testing.T) {
	der := selfSignedCert(t).Certificate[0]
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	const sorry = "Sorry, control/tlsca holds no PEM certificate"
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"der", der, sorry + ": it holds a certificate in DER form; convert it with openssl x509 -inform der -in FILE -out control/tlsca. (#4.3.0)\n"},
		{"junk", []byte("not a certificate\n"), sorry + " (-----BEGIN CERTIFICATE-----). (#4.3.0)\n"},
		{"empty", nil, sorry + " (-----BEGIN CERTIFICATE-----). (#4.3.0)\n"},
		{"key only", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}), sorry + ": none of its PEM blocks is a CERTIFICATE. (#4.3.0)\n"},
		{"broken certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der[:40]}), sorry + ": a CERTIFICATE block does not parse ("},
		{"pem", certPEM, ""},
	} {
		d, ctl := ctlDelivery(t)
		if err := os.WriteFile(filepath.Join(ctl, "tlsca"), tc.data, 0o644); err != nil {
			t.Fatal(err)
		}
		rep := d.loadRoots()
		switch {
		case tc.want == "":
			if rep != nil || d.roots == nil {
				t.Errorf("%s: %+v, roots %v", tc.name, rep, d.roots)
			}
		case rep == nil || rep.letter != 'Z' || !strings.HasPrefix(rep.text, tc.want) || !strings.HasSuffix(rep.text, ". (#4.3.0)\n"):
			t.Errorf("%s: %+v, want Z %q", tc.name, rep, tc.want)
		}
	}

	d, ctl := ctlDelivery(t)
	p := filepath.Join(ctl, "tlsca")
	if err := os.WriteFile(p, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 65<<20); err != nil { // sparse
		t.Fatal(err)
	}
	want := "Unable to read control/tlsca: file too large (over 64 MB). (#4.3.0)\n"
	if rep := d.loadRoots(); rep == nil || rep.letter != 'Z' || rep.text != want {
		t.Errorf("too large: %+v, want Z %q", rep, want)
	}
	if os.Geteuid() == 0 {
		t.Log("root reads a file of mode 0: its case is not tested")
		return
	}
	os.Truncate(p, int64(len(certPEM)))
	os.Chmod(p, 0)
	want = "Unable to read control/tlsca: access denied. (#4.3.0)\n"
	if rep := d.loadRoots(); rep == nil || rep.letter != 'Z' || rep.text != want {
		t.Errorf("mode 0: %+v, want Z %q", rep, want)
	}
}

// TestLoadCredentialsNotAFile: a control/smtpauth that is no regular file
// is named as such, not as "readable by group or others" (which a
// directory's mode 0755 or a FIFO's 0644 said); a link to /dev/null is an
// empty file: no login, no error.
func TestLoadCredentialsNotAFile(t *testing.T) {
	d, ctl := ctlDelivery(t)
	p := filepath.Join(ctl, "smtpauth")
	want := "Sorry, control/smtpauth is not a regular file; make it qmailr's with mode 0600. (#4.3.0)\n"
	notAFile(t, p, func(kind string) {
		if rep := d.loadCredentials(); rep == nil || rep.letter != 'Z' || rep.text != want {
			t.Errorf("smtpauth a %s: %+v, want Z %q", kind, rep, want)
		}
	})
	if err := os.Symlink(os.DevNull, p); err != nil {
		t.Fatal(err)
	}
	if rep := d.loadCredentials(); rep != nil || d.creds != nil {
		t.Errorf("smtpauth a link to /dev/null: %+v, credentials %v", rep, d.creds)
	}
}

// TestTLSConfigRefusesOldTLS: qmail-remote does not make a TLS 1.1
// session, under a policy that checks nothing either (qmail-remote(8)).
func TestTLSConfigRefusesOldTLS(t *testing.T) {
	cert := selfSignedCert(t)
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	go tls.Server(server, &tls.Config{Certificates: []tls.Certificate{cert},
		MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}).Handshake()
	d := &delivery{policy: TLSEncrypt}
	cfg := d.tlsConfig("[127.0.0.1]")
	// The floor is set in the config itself, not left to crypto/tls's
	// default (which a GODEBUG setting or a later Go could lower); the
	// handshake below shows the floor holds against an old server.
	if cfg.MinVersion < tls.VersionTLS12 {
		t.Errorf("MinVersion %#x, want at least TLS 1.2 (%#x)", cfg.MinVersion, tls.VersionTLS12)
	}
	client.SetDeadline(time.Now().Add(10 * time.Second))
	c := tls.Client(client, cfg)
	if err := c.Handshake(); err == nil {
		t.Fatalf("a TLS %x session was made", c.ConnectionState().Version)
	}
}
