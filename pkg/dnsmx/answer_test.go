package dnsmx_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/hqmail/hqmail/pkg/dnsmx"
)

// rawServer answers each UDP query on 127.0.0.1 with the packets reply
// returns (none: silence), written as they are, whatever they say.
func rawServer(t *testing.T, reply func(req []byte) [][]byte) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			for _, p := range reply(buf[:n]) {
				pc.WriteTo(p, from)
			}
		}
	}()
	return pc.LocalAddr().String()
}

// msgServer is rawServer with messages: answer gets the query and returns
// the replies to send, each already made a reply to it by the caller.
func msgServer(t *testing.T, answer func(req *dns.Msg) []*dns.Msg) string {
	return rawServer(t, func(b []byte) [][]byte {
		req := new(dns.Msg)
		if err := req.Unpack(b); err != nil || len(req.Question) != 1 {
			return nil
		}
		var out [][]byte
		for _, m := range answer(req) {
			p, err := m.Pack()
			if err != nil {
				panic(err)
			}
			out = append(out, p)
		}
		return out
	})
}

func rrs(records ...string) []dns.RR {
	var out []dns.RR
	for _, r := range records {
		rr, err := dns.NewRR("$TTL 60\n" + r)
		if err != nil {
			panic(err)
		}
		out = append(out, rr)
	}
	return out
}

// reply is a NOERROR reply to req with the answer and authority records.
func reply(req *dns.Msg, answer, ns []dns.RR) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	m.Answer, m.Ns = answer, ns
	return m
}

func rawResolver(t *testing.T, servers ...string) *dnsmx.Resolver {
	conf := ""
	for _, s := range servers {
		conf += "nameserver " + s + "\n"
	}
	c, err := dnsmx.ParseConfig(strings.NewReader(conf + "options timeout:1 attempts:1\n"))
	if err != nil {
		t.Fatal(err)
	}
	return &dnsmx.Resolver{Conf: c, Shuffle: func(int, func(i, j int)) {}}
}

// TestQuestionChecked: a reply with the right ID is taken only when it
// echoes the question (name in any case, type, class); others are ignored
// like a reply with a wrong ID, and the right one still counts when it
// follows.
func TestQuestionChecked(t *testing.T) {
	zone := map[string][]dns.RR{
		"victim.test./MX":  rrs("victim.test. MX 10 good.test."),
		"good.test./A":     rrs("good.test. A 192.0.2.1"),
		"evil.test./A":     rrs("evil.test. A 192.0.2.66"),
		"upper.test./A":    rrs("upper.test. A 192.0.2.2"),
		"typed.test./A":    rrs("typed.test. A 192.0.2.3"),
		"onlyforged.test.": nil,
	}
	srv := msgServer(t, func(req *dns.Msg) []*dns.Msg {
		q := req.Question[0]
		name := strings.ToLower(q.Name)
		right := reply(req, zone[name+"/"+dns.TypeToString[q.Qtype]], nil)
		switch name {
		case "victim.test.", "onlyforged.test.":
			// Right ID, another question, the attacker's records.
			forged := reply(req, rrs("other.test. MX 10 evil.test."), nil)
			forged.Question[0].Name = "other.test."
			if name == "onlyforged.test." {
				return []*dns.Msg{forged}
			}
			return []*dns.Msg{forged, right}
		case "typed.test.":
			// The same name, another type.
			forged := reply(req, rrs("typed.test. MX 10 evil.test."), nil)
			forged.Question[0].Qtype = dns.TypeMX
			if q.Qtype == dns.TypeA {
				return []*dns.Msg{forged, right}
			}
		case "upper.test.":
			right.Question[0].Name = "UPPER.Test."
		}
		return []*dns.Msg{right}
	})
	r := rawResolver(t, srv)
	for host, want := range map[string]string{
		"victim.test": "10 good.test 192.0.2.1",
		"upper.test":  "0 upper.test 192.0.2.2", // case does not matter
	} {
		if as, err := r.MX(host); err != nil || format(as) != want {
			t.Errorf("MX(%s) = %q, %v; want %q", host, format(as), err, want)
		}
	}
	if as, err := r.Host("typed.test"); err != nil || format(as) != "0 typed.test 192.0.2.3" {
		t.Errorf("Host(typed.test) = %q, %v", format(as), err)
	}
	// Only the forged reply came: no answer at all, within the time-out.
	if as, err := r.MX("onlyforged.test"); !errors.Is(err, dnsmx.ErrTemp) {
		t.Errorf("MX(onlyforged.test) = %q, %v; want ErrTemp", format(as), err)
	}
}

// TestOffChainRecordsIgnored: records whose owner is neither the name
// asked for nor a CNAME target on its chain are not used.
func TestOffChainRecordsIgnored(t *testing.T) {
	zone := map[string][]dns.RR{
		// Only a record of another name: no MX, so the host's own address.
		"victim.test./MX":   rrs("unrelated.test. MX 10 evil.test."),
		"victim.test./A":    rrs("victim.test. A 192.0.2.9"),
		"mxv.test./MX":      rrs("mxv.test. MX 10 mx.mxv.test."),
		"mx.mxv.test./A":    rrs("unrelated.test. A 192.0.2.66", "mx.mxv.test. A 192.0.2.1"),
		"alias.test./MX":    rrs("alias.test. CNAME real.test.", "real.test. MX 10 mx.real.test.", "evil.test. MX 5 evil.test."),
		"mx.real.test./A":   rrs("mx.real.test. CNAME host.real.test.", "host.real.test. A 192.0.2.5"),
		"disorder.test./MX": rrs("two.test. MX 10 mx.real.test.", "one.test. CNAME two.test.", "disorder.test. CNAME one.test."),
		"evil.test./A":      rrs("evil.test. A 192.0.2.66"),
	}
	srv := msgServer(t, func(req *dns.Msg) []*dns.Msg {
		q := req.Question[0]
		return []*dns.Msg{reply(req, zone[strings.ToLower(q.Name)+"/"+dns.TypeToString[q.Qtype]], nil)}
	})
	r := rawResolver(t, srv)
	for host, want := range map[string]string{
		"victim.test":   "0 victim.test 192.0.2.9",
		"mxv.test":      "10 mx.mxv.test 192.0.2.1",
		"alias.test":    "10 mx.real.test 192.0.2.5",
		"disorder.test": "10 mx.real.test 192.0.2.5", // the chain given out of order
	} {
		if as, err := r.MX(host); err != nil || format(as) != want {
			t.Errorf("MX(%s) = %q, %v; want %q", host, format(as), err, want)
		}
	}
}

// TestReferral: NOERROR with no answer, NS records and no SOA is a
// referral from a server that does not recurse: a temporary failure (it
// was taken as "no such host" and bounced). NODATA with an SOA, and an
// answer that is only a CNAME, stay "no data".
func TestReferral(t *testing.T) {
	ns := rrs("test. NS a.nic.test.", "test. NS b.nic.test.")
	soa := rrs("test. SOA a.nic.test. hostmaster.test. 1 3600 600 86400 60")
	answer := func(req *dns.Msg) []*dns.Msg {
		q := req.Question[0]
		name, qt := strings.ToLower(q.Name), q.Qtype
		switch {
		case name == "nodata.test." && qt == dns.TypeMX:
			return []*dns.Msg{reply(req, nil, append(append([]dns.RR{}, ns...), soa...))}
		case name == "nodata.test." && qt == dns.TypeA:
			return []*dns.Msg{reply(req, rrs("nodata.test. A 192.0.2.7"), ns)}
		case name == "cname.test." && qt == dns.TypeMX:
			return []*dns.Msg{reply(req, rrs("cname.test. CNAME target.test."), ns)}
		case name == "cname.test." && qt == dns.TypeA:
			return []*dns.Msg{reply(req, rrs("cname.test. CNAME target.test.", "target.test. A 192.0.2.8"), ns)}
		}
		m := reply(req, nil, ns) // every other question: a referral
		m.RecursionAvailable = false
		return []*dns.Msg{m}
	}
	r := rawResolver(t, msgServer(t, answer))
	if as, err := r.MX("referred.test"); !errors.Is(err, dnsmx.ErrReferral) || !errors.Is(err, dnsmx.ErrTemp) {
		t.Errorf("MX(referred.test) = %q, %v; want ErrReferral", format(as), err)
	}
	if as, err := r.Host("referred.test"); !errors.Is(err, dnsmx.ErrReferral) {
		t.Errorf("Host(referred.test) = %q, %v; want ErrReferral", format(as), err)
	}
	if as, err := r.MX("nodata.test"); err != nil || format(as) != "0 nodata.test 192.0.2.7" {
		t.Errorf("MX(nodata.test) = %q, %v", format(as), err)
	}
	if as, err := r.MX("cname.test"); err != nil || format(as) != "0 cname.test 192.0.2.8" {
		t.Errorf("MX(cname.test) = %q, %v", format(as), err)
	}
	// A server that recurses after one that does not: its answer counts.
	good := msgServer(t, func(req *dns.Msg) []*dns.Msg {
		if req.Question[0].Qtype != dns.TypeA {
			return []*dns.Msg{reply(req, nil, soa)}
		}
		return []*dns.Msg{reply(req, rrs("referred.test. A 192.0.2.10"), nil)}
	})
	r = rawResolver(t, msgServer(t, answer), good)
	if as, err := r.MX("referred.test"); err != nil || format(as) != "0 referred.test 192.0.2.10" {
		t.Errorf("MX(referred.test) with a recursive second server = %q, %v", format(as), err)
	}
}

// TestForwardedReferral (dns QA, dnsmasq forwarding to NSD): a forwarder
// passes an authoritative-only server's CNAME followed by a referral on
// with RA set. The NS records are not those of a zone the alias is in,
// so it is a referral, deferred with the hint; it was read as "no data"
// and the mail bounced (#5.1.2 for the alias, #5.4.4 for an exchanger
// that is one). An answer whose NS records are the alias's own zone's
// stays "no data" (TestReferral's cname.test).
func TestForwardedReferral(t *testing.T) {
	deleg := rrs("lame.qa.test. NS ns.lame.qa.test.")
	fwd := func(req *dns.Msg) []*dns.Msg {
		q := req.Question[0]
		name, qt := strings.ToLower(q.Name), q.Qtype
		var m *dns.Msg
		switch {
		case name == "cnlame.qa.test.":
			m = reply(req, rrs("cnlame.qa.test. CNAME lame.qa.test."), deleg)
		case name == "cnmx.qa.test." && qt == dns.TypeMX:
			m = reply(req, rrs("cnmx.qa.test. MX 10 cnx.qa.test."), nil)
		case name == "cnx.qa.test.":
			m = reply(req, rrs("cnx.qa.test. CNAME x.lame.qa.test."), deleg)
		default:
			m = reply(req, nil, rrs("qa.test. SOA ns.qa.test. h.qa.test. 1 3600 600 86400 60"))
		}
		m.Authoritative = true
		m.RecursionAvailable = true
		return []*dns.Msg{m}
	}
	r := rawResolver(t, msgServer(t, fwd))
	if as, err := r.MX("cnlame.qa.test"); !errors.Is(err, dnsmx.ErrReferral) {
		t.Errorf("MX(cnlame.qa.test) through a forwarder = %q, %v; want ErrReferral", format(as), err)
	}
	if as, err := r.Host("cnlame.qa.test"); !errors.Is(err, dnsmx.ErrReferral) {
		t.Errorf("Host(cnlame.qa.test) through a forwarder = %q, %v; want ErrReferral", format(as), err)
	}
	if as, err := r.MX("cnmx.qa.test"); !errors.Is(err, dnsmx.ErrTemp) {
		t.Errorf("MX(cnmx.qa.test), its exchanger a CNAME into a referral = %q, %v; want a temporary failure", format(as), err)
	}
}

// TestBigAnswerBounded: an answer of thousands of addresses is not turned
// into thousands of records (each was unpacked whole: 2 or more
// allocations per record).
func TestBigAnswerBounded(t *testing.T) {
	const n = 3000
	build := func(qtype uint16, answer []dns.RR) []byte {
		m := new(dns.Msg)
		m.SetQuestion("big.test.", qtype)
		m = reply(m, answer, nil)
		m.Compress = true
		p, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	var as []dns.RR
	for i := 0; i < n; i++ {
		as = append(as, &dns.A{Hdr: dns.RR_Header{Name: "big.test.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A: net.IPv4(10, byte(i>>16), byte(i>>8), byte(i))})
	}
	bigA, emptyAAAA := build(dns.TypeA, as), build(dns.TypeAAAA, nil)
	// The server copies a ready answer and sets its ID: nothing per record.
	srv := rawServer(t, func(req []byte) [][]byte {
		// "big.test." is 10 bytes from offset 12: the type follows.
		src := emptyAAAA
		if len(req) >= 24 && req[22] == 0 && req[23] == byte(dns.TypeA) {
			src = bigA
		}
		p := append([]byte(nil), src...)
		copy(p, req[:2])
		return [][]byte{p}
	})
	r := rawResolver(t, srv)
	ips, err := r.IPs("big.test")
	if err != nil || len(ips) != dnsmx.MaxAddrs || ips[0].String() != "10.0.0.0" {
		t.Fatalf("got %d addresses (%v), %v", len(ips), ips, err)
	}
	allocs := testing.AllocsPerRun(3, func() { r.IPs("big.test") })
	if allocs > n/4 {
		t.Fatalf("%v allocations for an answer of %d records", allocs, n)
	}
	t.Logf("%v allocations per lookup", allocs)
}

// TestNonRecursiveServer (dns3 QA, against NSD): an authoritative-only
// server answers a CNAME into a zone it delegated with the CNAME and a
// referral, and REFUSED (no RA) for a name it does not serve. Both are
// "this server does not recurse", a temporary failure, not "no such
// host"; a recursive server after it is asked and counts. A long CNAME
// chain is followed (9 links bounced), a chain past the limit is
// temporary, and a referral followed by a SERVFAIL from a recursing
// server is an ordinary temporary failure, not put down to recursion.
func TestNonRecursiveServer(t *testing.T) {
	ns := rrs("good.test. NS ns1.test.")
	var chain []dns.RR
	for i := 0; i < 10; i++ {
		chain = append(chain, rrs(fmt.Sprintf("l%d.long.test. CNAME l%d.long.test.", i, i+1))...)
	}
	chain = append(chain, rrs("l10.long.test. MX 10 mx.long.test.")...)
	var tooLong []dns.RR
	for i := 0; i < 70; i++ {
		tooLong = append(tooLong, rrs(fmt.Sprintf("t%d.long.test. CNAME t%d.long.test.", i, i+1))...)
	}
	tooLong = append(tooLong, rrs("t70.long.test. MX 10 mx.long.test.")...)
	auth := func(req *dns.Msg) []*dns.Msg {
		q := req.Question[0]
		name := strings.ToLower(q.Name)
		var m *dns.Msg
		switch {
		case name == "cngood.test.":
			m = reply(req, rrs("cngood.test. CNAME mx.good.test."), ns)
		case name == "l0.long.test." && q.Qtype == dns.TypeMX:
			m = reply(req, chain, nil)
		case name == "t0.long.test." && q.Qtype == dns.TypeMX:
			m = reply(req, tooLong, nil)
		case name == "mx.long.test." && q.Qtype == dns.TypeA:
			m = reply(req, rrs("mx.long.test. A 192.0.2.20"), nil)
		case strings.HasSuffix(name, ".long.test."):
			m = reply(req, nil, rrs("long.test. SOA ns1.test. h.test. 1 3600 600 86400 60"))
		default:
			m = reply(req, nil, nil)
			m.Rcode = dns.RcodeRefused
		}
		m.RecursionAvailable = false
		return []*dns.Msg{m}
	}
	r := rawResolver(t, msgServer(t, auth))
	for _, host := range []string{"cngood.test", "foreign.test"} {
		if as, err := r.MX(host); !errors.Is(err, dnsmx.ErrReferral) {
			t.Errorf("MX(%s) from an authoritative-only server = %q, %v; want ErrReferral", host, format(as), err)
		}
	}
	if as, err := r.MX("l0.long.test"); err != nil || format(as) != "10 mx.long.test 192.0.2.20" {
		t.Errorf("MX through a chain of 10 CNAME records = %q, %v", format(as), err)
	}
	if as, err := r.MX("t0.long.test"); !errors.Is(err, dnsmx.ErrTemp) || errors.Is(err, dnsmx.ErrReferral) {
		t.Errorf("MX through a chain of 70 CNAME records = %q, %v; want a temporary failure", format(as), err)
	}
	recursive := msgServer(t, func(req *dns.Msg) []*dns.Msg {
		q := req.Question[0]
		if strings.ToLower(q.Name) == "cngood.test." && q.Qtype == dns.TypeA {
			return []*dns.Msg{reply(req, rrs("cngood.test. CNAME mx.good.test.", "mx.good.test. A 192.0.2.11"), nil)}
		}
		if q.Qtype == dns.TypeMX {
			return []*dns.Msg{reply(req, rrs("cngood.test. CNAME mx.good.test."), rrs("good.test. SOA ns1.test. h.test. 1 3600 600 86400 60"))}
		}
		return []*dns.Msg{reply(req, nil, nil)}
	})
	r = rawResolver(t, msgServer(t, auth), recursive)
	if as, err := r.MX("cngood.test"); err != nil || format(as) != "0 cngood.test 192.0.2.11" {
		t.Errorf("MX(cngood.test) with a recursive second server = %q, %v", format(as), err)
	}
	servfail := msgServer(t, func(req *dns.Msg) []*dns.Msg {
		m := reply(req, nil, nil)
		m.Rcode = dns.RcodeServerFailure
		return []*dns.Msg{m}
	})
	r = rawResolver(t, msgServer(t, auth), servfail)
	if as, err := r.MX("cngood.test"); !errors.Is(err, dnsmx.ErrTemp) || errors.Is(err, dnsmx.ErrReferral) {
		t.Errorf("MX(cngood.test) with a SERVFAIL after the referral = %q, %v; want ErrTemp, not ErrReferral", format(as), err)
	}
}

// TestLookupStopped: a Resolver whose Ctx is done stops its lookups: the
// query under way is cut short, none follows (the server is silent, and
// would be asked 2 x 2 times within its 30 s time-outs), and the lookup
// is a temporary failure.
func TestLookupStopped(t *testing.T) {
	queries := make(chan struct{}, 16)
	srv := rawServer(t, func([]byte) [][]byte {
		queries <- struct{}{}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	r := &dnsmx.Resolver{Conf: &dnsmx.Config{Servers: []string{srv, srv}, Timeout: 30 * time.Second, Attempts: 2}, Ctx: ctx}
	done := make(chan error, 1)
	go func() {
		_, err := r.MX("stopped.example")
		done <- err
	}()
	select {
	case <-queries:
	case <-time.After(20 * time.Second):
		t.Fatal("no query reached the server")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, dnsmx.ErrTemp) {
			t.Errorf("stopped lookup: %v, want ErrTemp", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the lookup went on after its Ctx was done")
	}
	if n := len(queries); n != 0 {
		t.Errorf("%d queries sent after the stop", n)
	}
	// Done before it starts: nothing is asked.
	if _, err := r.MX("stopped.example"); !errors.Is(err, dnsmx.ErrTemp) {
		t.Errorf("lookup with a done Ctx: %v, want ErrTemp", err)
	}
	select {
	case <-queries:
		t.Error("a lookup with a done Ctx sent a query")
	case <-time.After(100 * time.Millisecond):
	}
}

// TestCNAMEOutOfZone (rdns2 QA, BIND 9.18 with recursion no): an
// authoritative-only server answers a name that is a CNAME to a name in
// no zone it serves with the CNAME alone: NOERROR, no RA, an empty
// authority section. That is a referral, deferred with the hint; it was
// read as "no data" and bounced (#5.1.2 for the alias, #5.4.4 for an
// exchanger that is one). A recursive server's CNAME whose target has no
// data (RA, the target zone's SOA) stays "no data": no address (ErrNoAddr,
// #5.4.4 as in qmail, the answer holding the CNAME; see
// TestCNAMEThenNoData), and NXDOMAIN after a CNAME stays "no such host".
func TestCNAMEOutOfZone(t *testing.T) {
	soa := rrs("other.example. SOA ns.other.example. h.other.example. 1 3600 600 86400 60")
	auth := func(req *dns.Msg) []*dns.Msg {
		q := req.Question[0]
		name, qt := strings.ToLower(q.Name), q.Qtype
		var m *dns.Msg
		switch {
		case name == "dcname.test.", name == "outalias.test.":
			m = reply(req, rrs(name+" CNAME mail.other.example."), nil)
		case name == "outcname.test." && qt == dns.TypeMX:
			m = reply(req, rrs("outcname.test. MX 10 outalias.test."), nil)
		default:
			m = reply(req, nil, rrs("test. SOA ns.test. h.test. 1 3600 600 86400 60"))
		}
		m.Authoritative = true
		m.RecursionAvailable = false
		return []*dns.Msg{m}
	}
	r := rawResolver(t, msgServer(t, auth))
	if as, err := r.MX("dcname.test"); !errors.Is(err, dnsmx.ErrReferral) {
		t.Errorf("MX(dcname.test) = %q, %v; want ErrReferral", format(as), err)
	}
	if as, err := r.Host("dcname.test"); !errors.Is(err, dnsmx.ErrReferral) {
		t.Errorf("Host(dcname.test) = %q, %v; want ErrReferral", format(as), err)
	}
	if as, err := r.MX("outcname.test"); !errors.Is(err, dnsmx.ErrReferral) {
		t.Errorf("MX(outcname.test), its exchanger such a CNAME = %q, %v; want ErrReferral", format(as), err)
	}

	// The same chains from a recursive server: the target's zone says
	// it has no such data (SOA), or does not exist.
	rec := func(req *dns.Msg) []*dns.Msg {
		q := req.Question[0]
		name, qt := strings.ToLower(q.Name), q.Qtype
		switch {
		case name == "nodata.test.":
			return []*dns.Msg{reply(req, rrs("nodata.test. CNAME mail.other.example."), soa)}
		case name == "nx.test.":
			m := reply(req, rrs("nx.test. CNAME gone.other.example."), soa)
			m.Rcode = dns.RcodeNameError
			return []*dns.Msg{m}
		case name == "mxnodata.test." && qt == dns.TypeMX:
			return []*dns.Msg{reply(req, rrs("mxnodata.test. MX 10 nodata.test."), nil)}
		}
		return []*dns.Msg{reply(req, nil, soa)}
	}
	r = rawResolver(t, msgServer(t, rec))
	if as, err := r.MX("nodata.test"); !errors.Is(err, dnsmx.ErrNoAddr) || errors.Is(err, dnsmx.ErrTemp) {
		t.Errorf("MX(nodata.test) from a recursive server = %q, %v; want ErrNoAddr", format(as), err)
	}
	if as, err := r.Host("nodata.test"); !errors.Is(err, dnsmx.ErrNoAddr) {
		t.Errorf("Host(nodata.test) from a recursive server = %q, %v; want ErrNoAddr", format(as), err)
	}
	if as, err := r.MX("mxnodata.test"); !errors.Is(err, dnsmx.ErrNoAddr) || errors.Is(err, dnsmx.ErrTemp) {
		t.Errorf("MX(mxnodata.test) from a recursive server = %q, %v; want ErrNoAddr", format(as), err)
	}
	if as, err := r.MX("nx.test"); !errors.Is(err, dnsmx.ErrNoHost) {
		t.Errorf("MX(nx.test) from a recursive server = %q, %v; want ErrNoHost", format(as), err)
	}
	// The authoritative server's own NODATA after a CNAME into its zone
	// carries the SOA: no data, not a referral.
	own := func(req *dns.Msg) []*dns.Msg {
		m := reply(req, rrs(strings.ToLower(req.Question[0].Name)+" CNAME target.test."),
			rrs("test. SOA ns.test. h.test. 1 3600 600 86400 60"))
		m.Authoritative, m.RecursionAvailable = true, false
		return []*dns.Msg{m}
	}
	r = rawResolver(t, msgServer(t, own))
	if as, err := r.MX("incname.test"); !errors.Is(err, dnsmx.ErrNoAddr) || errors.Is(err, dnsmx.ErrTemp) {
		t.Errorf("MX(incname.test), CNAME into the server's own zone with SOA = %q, %v; want ErrNoAddr", format(as), err)
	}
}

// TestCNAMEThenNoData (rdns3 QA): a host without MX records that is a
// CNAME to a name without addresses (cnnd CNAME nodata, nodata TXT "x")
// is "no mail exchanger or IP address" (ErrNoAddr, #5.4.4), as in qmail:
// glibc's res_query succeeds on an answer that holds the CNAME, and
// dns_mxip finds no address in it. It was ErrNoHost, "no such host"
// (#5.1.2). A plain "no data" answer (an empty answer section: glibc's
// NO_DATA, a hard failure) stays ErrNoHost for MX; Host gives ErrNoData
// for it (which the caller shows as "no such host" for a relay) and
// ErrNoAddr alone for the CNAME. Both as a recursive server gives them
// (RA, the zone's SOA) and as the zone's authoritative-only server does.
func TestCNAMEThenNoData(t *testing.T) {
	soa := rrs("cn.test. SOA ns.cn.test. h.cn.test. 1 3600 600 86400 60")
	for _, ra := range []bool{true, false} {
		r := rawResolver(t, msgServer(t, func(req *dns.Msg) []*dns.Msg {
			q := req.Question[0]
			var m *dns.Msg
			switch name := strings.ToLower(q.Name); {
			case name == "cnnd.cn.test.":
				m = reply(req, rrs("cnnd.cn.test. CNAME nodata.cn.test."), soa)
				if q.Qtype == dns.TypeTXT {
					m.Answer = append(m.Answer, rrs(`nodata.cn.test. TXT "x"`)...)
				}
			case name == "nodata.cn.test." && q.Qtype == dns.TypeTXT:
				m = reply(req, rrs(`nodata.cn.test. TXT "x"`), nil)
			case name == "nodata.cn.test.":
				m = reply(req, nil, soa)
			default:
				m = reply(req, nil, soa)
				m.Rcode = dns.RcodeNameError
			}
			m.Authoritative, m.RecursionAvailable = true, ra
			return []*dns.Msg{m}
		}))
		if as, err := r.MX("cnnd.cn.test"); !errors.Is(err, dnsmx.ErrNoAddr) || errors.Is(err, dnsmx.ErrNoHost) || errors.Is(err, dnsmx.ErrTemp) {
			t.Errorf("RA %v: MX(cnnd.cn.test), a CNAME to a name without address = %q, %v; want ErrNoAddr", ra, format(as), err)
		}
		if as, err := r.Host("cnnd.cn.test"); !errors.Is(err, dnsmx.ErrNoAddr) || errors.Is(err, dnsmx.ErrNoData) {
			t.Errorf("RA %v: Host(cnnd.cn.test) = %q, %v; want ErrNoAddr, not ErrNoData", ra, format(as), err)
		}
		if as, err := r.MX("nodata.cn.test"); !errors.Is(err, dnsmx.ErrNoHost) {
			t.Errorf("RA %v: MX(nodata.cn.test), plain no data = %q, %v; want ErrNoHost", ra, format(as), err)
		}
		if as, err := r.Host("nodata.cn.test"); !errors.Is(err, dnsmx.ErrNoData) || !errors.Is(err, dnsmx.ErrNoAddr) {
			t.Errorf("RA %v: Host(nodata.cn.test) = %q, %v; want ErrNoData", ra, format(as), err)
		}
		if as, err := r.MX("gone.cn.test"); !errors.Is(err, dnsmx.ErrNoHost) {
			t.Errorf("RA %v: MX(gone.cn.test) = %q, %v; want ErrNoHost", ra, format(as), err)
		}
	}
}
