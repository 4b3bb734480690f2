package remote

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// TestAddressesCNAMEThenNoData (rdns3 QA): a host with neither MX nor
// address records that is a CNAME to a name without addresses (cnnd
// CNAME nodata, nodata TXT "x"), for the host's own addresses and as an
// smtproutes relay, is qmail's "no mail exchanger or IP address" (#5.4.4):
// glibc's res_query succeeds on an answer that holds the CNAME and qmail
// finds no address in it. It bounced as "no such host" (#5.1.2). A plain
// "no data" answer (nothing in the answer section, a hard failure of
// glibc's resolver) stays #5.1.2, both ways.
func TestAddressesCNAMEThenNoData(t *testing.T) {
	soa, _ := dns.NewRR("test.example. 60 SOA ns.test.example. h.test.example. 1 3600 600 86400 60")
	cname, _ := dns.NewRR("cnnd.test.example. 60 CNAME nodata.test.example.")
	txt, _ := dns.NewRR(`nodata.test.example. 60 TXT "x"`)
	conf := serveDNS(t, func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative, m.RecursionAvailable = true, true
		q := req.Question[0]
		switch name := strings.ToLower(q.Name); {
		case name == "cnnd.test.example.":
			m.Answer = []dns.RR{cname}
			if q.Qtype == dns.TypeTXT {
				m.Answer = append(m.Answer, txt)
			}
		case name == "nodata.test.example." && q.Qtype == dns.TypeTXT:
			m.Answer = []dns.RR{txt}
		case name == "nodata.test.example.":
		default:
			m.Rcode = dns.RcodeNameError
		}
		if len(m.Answer) == 0 || q.Qtype != dns.TypeTXT {
			m.Ns = []dns.RR{soa}
		}
		w.WriteMsg(m)
	})
	tests := []struct{ name, want string }{
		{"cnnd.test.example", txtNoMX},
		{"nodata.test.example", "Sorry, I couldn't find any host named nodata.test.example. (#5.1.2)\n"},
		{"gone.test.example", "Sorry, I couldn't find any host named gone.test.example. (#5.1.2)\n"},
	}
	for _, tt := range tests {
		for _, routed := range []bool{false, true} {
			d := &delivery{cfg: &Config{ResolvConf: conf}, host: tt.name, routed: routed,
				route: Route{Relay: tt.name, Port: 25}}
			if routed {
				d.host = "mail.example" // the relay is looked up, not the host
			}
			addrs, rep := d.addresses()
			if rep == nil || rep.letter != 'D' || rep.text != tt.want {
				t.Errorf("%s, routed %v: %v, report %+v; want D%q", tt.name, routed, addrs, rep, tt.want)
			}
		}
	}
}
