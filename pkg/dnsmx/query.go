package dnsmx

import (
	"strings"

	"github.com/miekg/dns"
)

// query asks the configured nameservers for name/qtype: the answer section
// on NOERROR (possibly empty), ErrNoHost on NXDOMAIN, ErrTemp when no server
// gave either within Attempts rounds. A truncated UDP answer is asked again
// over TCP. Queries carry no EDNS unless the configuration says edns0, as
// glibc's (qmail's resolver) do: router DNS proxies that answer an EDNS
// query with NOTIMP or not at all then deliver as they do for every other
// program. With EDNS, a server that answers FORMERR to it is asked again
// without, as RFC 6891 §7 says. A UDP answer is read whole whatever its
// size (a proxy that passes on a big answer without setting TC).
func (r *Resolver) query(name string, qtype uint16) ([]dns.RR, error) {
	conf := r.Conf
	if conf == nil {
		conf, _ = ParseConfig(strings.NewReader(""))
	}
	plain := new(dns.Msg)
	plain.SetQuestion(dns.Fqdn(name), qtype)
	plain.RecursionDesired = true
	m := plain
	if conf.EDNS0 {
		m = plain.Copy()
		m.SetEdns0(1232, false)
	}

	udp := &dns.Client{Net: "udp", Timeout: conf.Timeout, UDPSize: dns.MaxMsgSize}
	tcp := &dns.Client{Net: "tcp", Timeout: conf.Timeout}
	exchange := func(m *dns.Msg, srv string) (*dns.Msg, error) {
		in, _, err := udp.Exchange(m, srv)
		if err == nil && in.Truncated {
			in, _, err = tcp.Exchange(m, srv)
		}
		return in, err
	}
	for a := 0; a < max(conf.Attempts, 1); a++ {
		for _, srv := range conf.Servers {
			in, err := exchange(m, srv)
			if err == nil && in != nil && in.Rcode == dns.RcodeFormatError && m != plain {
				in, err = exchange(plain, srv)
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
