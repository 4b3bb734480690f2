package smtpd

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLoadTLSNotAFile: a control/servercert.pem that is no regular file
// disables STARTTLS with a warning, as qmail-smtpd(8) says: a FIFO held
// every session before its greeting, past timeoutsmtpd, and a link to a
// device such as /dev/zero would read without end. /dev/null reads as an
// empty file: no certificate in it.
func TestLoadTLSNotAFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "servercert.pem")
	for _, tc := range []struct {
		name string
		make func() error
		want string
	}{
		{"fifo", func() error { return unix.Mkfifo(p, 0o600) }, "servercert.pem: not a regular file; STARTTLS disabled"},
		{"link to /dev/zero", func() error { return os.Symlink("/dev/zero", p) }, "servercert.pem: not a regular file; STARTTLS disabled"},
		{"directory", func() error { return os.Mkdir(p, 0o700) }, "servercert.pem: is a directory; STARTTLS disabled"},
		{"link to /dev/null", func() error { return os.Symlink(os.DevNull, p) }, "STARTTLS disabled"},
		{"sparse file of 10 GB", func() error {
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o600)
			if err == nil {
				err = f.Truncate(10 << 30)
				f.Close()
			}
			return err
		}, "servercert.pem: file too large (over 64 MB); STARTTLS disabled"},
	} {
		if err := tc.make(); err != nil {
			t.Fatal(err)
		}
		cfg, err := loadTLS(p)
		if cfg != nil || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("servercert.pem a %s: %v, %v; want no TLS and a warning with %q", tc.name, cfg, err, tc.want)
		}
		os.Remove(p)
	}
}

// TestLoadTLSFloor: qmail-smtpd offers no TLS below 1.2, as qmail-smtpd(8)
// says. The floor is in the config itself, not left to crypto/tls's
// default for servers (which GODEBUG=tls10server=1 lowers), and a client
// that offers at most TLS 1.1 gets no session.
func TestLoadTLSFloor(t *testing.T) {
	p := filepath.Join(t.TempDir(), "servercert.pem")
	selfSigned(t, p)
	cfg, err := loadTLS(p)
	if cfg == nil || err != nil {
		t.Fatalf("loadTLS: %v, %v", cfg, err)
	}
	if cfg.MinVersion < tls.VersionTLS12 {
		t.Errorf("MinVersion %#x, want at least TLS 1.2 (%#x)", cfg.MinVersion, tls.VersionTLS12)
	}
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	go tls.Server(server, cfg).Handshake()
	client.SetDeadline(time.Now().Add(10 * time.Second))
	c := tls.Client(client, &tls.Config{InsecureSkipVerify: true,
		MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err := c.Handshake(); err == nil {
		t.Fatalf("a TLS %#x session was made", c.ConnectionState().Version)
	}
}

// TestLoadTLSRSAKex: a TLS 1.2 client that offers only RSA key exchange
// (an old MTA, a scanner that mails) gets an encrypted session, as
// qmail-remote's peers do (tlsconf.Suites); it was refused ("no cipher
// suite supported by both client and server"), and its mail went in
// clear or not at all (QA rtls3). One that offers ECDHE too gets ECDHE.
func TestLoadTLSRSAKex(t *testing.T) {
	p := filepath.Join(t.TempDir(), "servercert.pem")
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	selfSignedWith(t, p, key)
	cfg, err := loadTLS(p)
	if cfg == nil || err != nil {
		t.Fatalf("loadTLS: %v, %v", cfg, err)
	}
	for _, tc := range []struct {
		offer []uint16
		want  uint16
	}{
		{[]uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}, tls.TLS_RSA_WITH_AES_128_CBC_SHA},
		{[]uint16{tls.TLS_RSA_WITH_AES_256_GCM_SHA384}, tls.TLS_RSA_WITH_AES_256_GCM_SHA384},
		{[]uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
	} {
		client, server := net.Pipe()
		go tls.Server(server, cfg).Handshake()
		client.SetDeadline(time.Now().Add(10 * time.Second))
		c := tls.Client(client, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: tc.offer})
		if err := c.Handshake(); err != nil {
			t.Errorf("offering %v: %v", tc.offer, err)
		} else if got := c.ConnectionState().CipherSuite; got != tc.want {
			t.Errorf("offering %v: %s, want %s", tc.offer, tls.CipherSuiteName(got), tls.CipherSuiteName(tc.want))
		}
		client.Close()
		server.Close()
	}
}

// TestLoadTLSCertWithoutKey: a servercert.pem with the certificate alone
// is named as such (crypto/tls said "found a certificate rather than a
// key in the PEM for the private key": QA rtls3).
func TestLoadTLSCertWithoutKey(t *testing.T) {
	p := filepath.Join(t.TempDir(), "servercert.pem")
	selfSigned(t, p)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	cert, _, _ := strings.Cut(string(b), "-----BEGIN PRIVATE KEY-----")
	if err := os.WriteFile(p, []byte(cert), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadTLS(p)
	if cfg != nil || err == nil || err.Error() != "servercert.pem: it holds a certificate but no private key (both go in the one file); STARTTLS disabled" {
		t.Errorf("loadTLS: %v, %v", cfg, err)
	}
}
