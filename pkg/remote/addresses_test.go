package remote

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/miekg/dns"

	"github.com/hqmail/hqmail/pkg/dnsmx"
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
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ns, _ := dns.NewRR("test. 60 NS a.nic.test.")
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Ns = []dns.RR{ns}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(conf, []byte("nameserver "+pc.LocalAddr().String()+"\noptions timeout:1 attempts:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, routed := range []bool{false, true} {
		d := &delivery{cfg: &Config{ResolvConf: conf}, host: "referred.test", routed: routed,
			route: Route{Relay: "relay.test", Port: 25}}
		addrs, rep := d.addresses()
		if rep == nil || rep.letter != 'Z' || rep.text != txtDNSTemp+txtReferral {
			t.Errorf("routed %v: %v, report %+v; want the temporary failure with the referral note", routed, addrs, rep)
		}
	}
}
