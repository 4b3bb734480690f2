package remote

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/miekg/dns"

	"github.com/hqmail/hqmail/pkg/dnsmx"
	"github.com/hqmail/hqmail/pkg/idna"
	"github.com/hqmail/hqmail/test/dnstest"
)

// TestAddressesSelfCutBeyondCap: this host (127.0.0.1) as an exchanger of
// the same preference as one with more addresses than dnsmx returns is
// still the self-loop bounce (the cut was made on what the cap left, and
// the mail went to the other exchanger).
func TestAddressesSelfCutBeyondCap(t *testing.T) {
	if !isLocal(net.IPv4(127, 0, 0, 1), localIPs()) {
		t.Skip("127.0.0.1 is not on an interface")
	}
	s := dnstest.Start(t)
	s.Add("bigself.test. MX 10 big.bigself.test.", "bigself.test. MX 10 me.bigself.test.",
		"me.bigself.test. A 127.0.0.1")
	for i := 1; i <= dnsmx.MaxAddrs+8; i++ {
		s.Add(fmt.Sprintf("big.bigself.test. A 10.5.0.%d", i))
	}
	s.Add("backup.test. MX 10 mx.backup.test.", "backup.test. MX 20 me.backup.test.",
		"mx.backup.test. A 192.0.2.1", "me.backup.test. A 127.0.0.1")
	d := &delivery{cfg: &Config{ResolvConf: s.WriteResolvConf(t, t.TempDir())}, host: "bigself.test"}
	if addrs, rep := d.addresses(); rep == nil || rep.letter != 'D' || rep.text != txtSelfLoop {
		t.Errorf("bigself.test: %d addresses, report %+v; want the self-loop bounce", len(addrs), rep)
	}
	d.host = "backup.test"
	if addrs, rep := d.addresses(); rep != nil || len(addrs) != 1 || addrs[0].IP.String() != "192.0.2.1" {
		t.Errorf("backup.test: %v, report %+v; want the better exchanger only", addrs, rep)
	}
}

// TestAddressesReferral: a nameserver that answers with a referral (it
// does not recurse) defers the mail and says so; it bounced as "no such
// host".
func TestAddressesReferral(t *testing.T) {
	ns, _ := dns.NewRR("test. 60 NS a.nic.test.")
	conf := serveDNS(t, func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Ns = []dns.RR{ns}
		w.WriteMsg(m)
	})
	for _, routed := range []bool{false, true} {
		d := &delivery{cfg: &Config{ResolvConf: conf}, host: "referred.test", routed: routed,
			route: Route{Relay: "relay.test", Port: 25}}
		addrs, rep := d.addresses()
		if rep == nil || rep.letter != 'Z' || rep.text != txtDNSTemp+txtReferral {
			t.Errorf("routed %v: %v, report %+v; want the temporary failure with the referral note", routed, addrs, rep)
		}
	}
}

// TestAddressesNullMX: a domain whose only MX is a null MX (RFC 7505)
// bounces with a report saying it takes no mail (#5.1.10), not the
// #5.4.4 that reads as a DNS problem; exchangers without addresses keep
// #5.4.4.
func TestAddressesNullMX(t *testing.T) {
	s := dnstest.Start(t)
	s.Add("nullmx.test. MX 0 .", "nullmx.test. A 192.0.2.1",
		"noaddr.test. MX 10 gone.noaddr.test.")
	d := &delivery{cfg: &Config{ResolvConf: s.WriteResolvConf(t, t.TempDir())}, host: "nullmx.test"}
	want := "Sorry, nullmx.test does not accept mail: it publishes a null MX (RFC 7505). (#5.1.10)\n"
	if addrs, rep := d.addresses(); rep == nil || rep.letter != 'D' || rep.text != want {
		t.Errorf("nullmx.test: %v, report %+v; want D%q", addrs, rep, want)
	}
	d.host = "noaddr.test"
	if addrs, rep := d.addresses(); rep == nil || rep.letter != 'D' || rep.text != txtNoMX {
		t.Errorf("noaddr.test: %v, report %+v; want D%q", addrs, rep, txtNoMX)
	}
}

// TestAddressesHostTextUnsafe: a host name in a report has no control
// byte (QA: "no\nsuch.test" broke the report's line, as qmail, printing
// it through outsafe, never did): the reports that name the host show it
// through oneLine, a control byte as a space. An internationalized name
// stays in UTF-8, as the recipient address it came from.
func TestAddressesHostTextUnsafe(t *testing.T) {
	s := dnstest.Start(t)
	s.Add(`x\127y.test. MX 0 .`, `n\008l.test. MX 0 .`, idna.ToASCII("nö.test")+". MX 0 .")
	conf := s.WriteResolvConf(t, t.TempDir())
	noHost := func(h string) string { return "Sorry, I couldn't find any host named " + h + ". (#5.1.2)\n" }
	nullMX := func(h string) string {
		return "Sorry, " + h + " does not accept mail: it publishes a null MX (RFC 7505). (#5.1.10)\n"
	}
	tests := []struct {
		host  string
		relay string // routed through this relay when set
		want  string
	}{
		{"no\nsuch.test", "", noHost("no such.test")},
		{"a\x01b\rc.test", "", noHost("a b c.test")},
		{"bü.test", "", noHost("bü.test")},
		{"x.test", "re\nlay.test", noHost("re lay.test")},
		{"x\x7fy.test", "", nullMX("x y.test")},
		{"n\bl.test", "", nullMX("n l.test")},
		{"nö.test", "", nullMX("nö.test")},
	}
	for _, tt := range tests {
		d := &delivery{cfg: &Config{ResolvConf: conf}, host: tt.host}
		if tt.relay != "" {
			d.routed, d.route = true, Route{Relay: tt.relay, Port: 25}
		}
		if addrs, rep := d.addresses(); rep == nil || rep.letter != 'D' || rep.text != tt.want {
			t.Errorf("%q: %v, report %+v; want D%q", tt.host, addrs, rep, tt.want)
		}
	}
}

// TestAddressesResolvConfUnreadable: a resolver configuration file that
// exists but cannot be read defers the mail with a report naming the file
// and why (QA: it said "Unable to read control files", and nothing in
// control/ was wrong). A missing file named by control/resolvconf is
// named the same way.
func TestAddressesResolvConfUnreadable(t *testing.T) {
	dir := t.TempDir()
	long := filepath.Join(dir, "long.conf")
	if err := os.WriteFile(long, []byte("# "+strings.Repeat("x", 70000)+"\nnameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	locked := filepath.Join(dir, "locked.conf")
	if err := os.WriteFile(locked, []byte("nameserver 127.0.0.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(locked, 0); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.conf")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		conf, why string
	}{
		{dir, "is a directory"},
		{filepath.Join(dir, "missing.conf"), "file does not exist"},
		{long, "a line is too long"},
		{locked, "access denied"},
		{fifo, "not a regular file"}, // read, it would block for good
	}
	for _, tt := range tests {
		if tt.conf == locked && os.Geteuid() == 0 {
			t.Log("root reads a file of mode 0: the access denied text is checked by TestResolvConfTextAccess")
			continue
		}
		d := &delivery{cfg: &Config{ResolvConf: tt.conf}, host: "any.test"}
		want := "Unable to read " + tt.conf + ": " + tt.why + ". (#4.3.0)\n"
		if addrs, rep := d.addresses(); rep == nil || rep.letter != 'Z' || rep.text != want {
			t.Errorf("%s: %v, report %+v; want Z%q", tt.conf, addrs, rep, want)
		}
	}
}

// TestResolvConfTextAccess: the deferral for a file this user may not
// read (mode 0600, owner root, as some VPN tools leave /etc/resolv.conf;
// qmail-remote runs as qmailr) says so in qmail's words, with the path;
// a relative control/resolvconf name is shown under the qmail root.
func TestResolvConfTextAccess(t *testing.T) {
	denied := &fs.PathError{Op: "open", Path: "/etc/resolv.conf", Err: syscall.EACCES}
	d := &delivery{cfg: &Config{ResolvConf: "/etc/resolv.conf"}, root: "/var/qmail"}
	if got, want := d.resolvConfText(denied), "Unable to read /etc/resolv.conf: access denied. (#4.3.0)\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	d.cfg.ResolvConf = "etc/resolv.conf"
	if got, want := d.resolvConfText(denied), "Unable to read /var/qmail/etc/resolv.conf: access denied. (#4.3.0)\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestMainResolvConfDirectory: through Main, a control/resolvconf naming
// a directory defers the delivery with the file's name, and no
// "Unable to read control files".
func TestMainResolvConfDirectory(t *testing.T) {
	root := t.TempDir()
	ctl := filepath.Join(root, "control")
	if err := os.MkdirAll(filepath.Join(root, "etc", "resolv.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(ctl, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"me": "h.test\n", "resolvconf": "etc/resolv.d\n"} {
		if err := os.WriteFile(filepath.Join(ctl, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	msg, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer msg.Close()
	t.Chdir(root) // Main changes into root; this puts the test's directory back
	var out strings.Builder
	Main(root, []string{"any.test", "f@x.test", "u@any.test"}, msg, &out)
	want := "ZUnable to read " + filepath.Join(root, "etc", "resolv.d") + ": is a directory. (#4.3.0)\n\x00"
	if out.String() != want {
		t.Errorf("Main wrote %q, want %q", out.String(), want)
	}
}

// TestLoadConfigHeloASCII: an internationalized helohost is said in its
// A-labels in EHLO (QA i18n: it went out as UTF-8).
func TestLoadConfigHeloASCII(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "control"), 0o755)
	os.WriteFile(filepath.Join(root, "control", "helohost"), []byte("mx.mäil.example\n"), 0o644)
	cfg, err := LoadConfig(root)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Helo != "mx.xn--mil-qla.example" {
		t.Errorf("Helo %q, want the A-labels", cfg.Helo)
	}
}

// serveDNS answers DNS queries on a loopback UDP port with handler until
// the test ends and returns a resolv.conf naming it (timeout 1 s, one
// attempt), for Config.ResolvConf.
func serveDNS(t *testing.T, handler dns.HandlerFunc) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: handler}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(conf, []byte("nameserver "+pc.LocalAddr().String()+"\noptions timeout:1 attempts:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf
}
