package dnsmx

import (
	"strings"

	"github.com/miekg/dns"
)

// query asks the configured nameservers for name/qtype: the answer section
// on NOERROR (possibly empty), ErrNoHost on NXDOMAIN, ErrTemp when no server
// gave either within Attempts rounds. A truncated UDP answer is asked again
// over TCP.
func (r *Resolver) query(name string, qtype uint16) ([]dns.RR, error) {
	conf := r.Conf
	if conf == nil {
		conf, _ = ParseConfig(strings.NewReader(""))
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	m.SetEdns0(1232, false)

	udp := &dns.Client{Net: "udp", Timeout: conf.Timeout}
	tcp := &dns.Client{Net: "tcp", Timeout: conf.Timeout}
	for a := 0; a < max(conf.Attempts, 1); a++ {
		for _, srv := range conf.Servers {
			in, _, err := udp.Exchange(m, srv)
			if err == nil && in.Truncated {
				in, _, err = tcp.Exchange(m, srv)
			}
			if err != nil || in == nil {
				continue
			}
			switch in.Rcode {
			case dns.RcodeSuccess:
				return in.Answer, nil
			case dns.RcodeNameError:
				return nil, ErrNoHost
			}
			// SERVFAIL, REFUSED, ...: try the next server.
		}
	}
	return nil, ErrTemp
}
