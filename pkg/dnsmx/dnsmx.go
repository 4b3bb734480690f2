// Package dnsmx finds the addresses qmail-remote delivers to
// (spec/delivery.md §6, "DNS"), with github.com/miekg/dns speaking to the
// nameservers of a resolv.conf-format file.
//
//   - A literal host (d.d.d.d, [d.d.d.d], or [IPv6:addr]) is used directly
//     with preference 0; no DNS query is made.
//   - Otherwise the MX records of the host are looked up. A temporary
//     failure is ErrTemp. NXDOMAIN or no MX records (no data) falls back
//     to the host's own addresses with preference 0, as qmail's dns_mxip
//     does on any hard failure (some servers answer NXDOMAIN for the types
//     they do not serve); a host without addresses then is ErrNoHost.
//   - An exchanger named by a dotted or bracketed IP address is used as
//     that address, as qmail does (RFC 5321 forbids such MX records, but
//     they exist). A null MX (RFC 7505, ".") names no exchanger.
//   - MX records are sorted by ascending preference, records of equal
//     preference in random order. Each exchanger's addresses follow in the
//     order the server returned them, carrying its preference; exchangers
//     whose lookup fails are skipped. No address at all after a temporary
//     failure is ErrTemp, otherwise ErrNoAddr.
//   - A name with non-ASCII labels (an IDN in UTF-8) is looked up by its
//     A-labels (pkg/idna ToASCII, the conversion qmail-remote's route
//     tables and the hold flags match domains by, through idna.Fold).
//   - Addresses are both AAAA and A records. When PreferIPv6 is set (the
//     caller sets it when the host has a global IPv6 address) an exchanger's
//     IPv6 addresses come before its IPv4 ones, otherwise after.
//
// Names are looked up as given (no search list), like qmail's res_query.
package dnsmx

import (
	"errors"
	"math/rand/v2"
	"net"
	"sort"
	"strings"

	"github.com/hqmail/hqmail/pkg/idna"
	"github.com/miekg/dns"
)

// Errors of a lookup.
var (
	ErrTemp   = errors.New("temporary DNS failure")
	ErrNoHost = errors.New("host does not exist")
	ErrNoAddr = errors.New("no mail exchanger or address")
)

// Addr is one address to try, with the preference of the MX that named it.
type Addr struct {
	IP   net.IP
	Pref int
	Name string // the exchanger (or relay, or host) the address belongs to
}

// Resolver looks names up through the nameservers of Conf.
type Resolver struct {
	Conf       *Config
	PreferIPv6 bool
	// Shuffle reorders exchangers of equal preference; rand.Shuffle when nil
	// (tests set it to keep an order).
	Shuffle func(n int, swap func(i, j int))
}

// Literal returns the address of a literal host: d.d.d.d, [d.d.d.d] or
// [IPv6:addr]. Anything else gives nil.
func Literal(host string) net.IP {
	if len(host) > 2 && host[0] == '[' && host[len(host)-1] == ']' {
		in := host[1 : len(host)-1]
		if len(in) > 5 && strings.EqualFold(in[:5], "ipv6:") {
			// Any IPv6 form of RFC 5321, the IPv4-mapped one included
			// ([IPv6:::ffff:192.0.2.1], reached over IPv4).
			if ip := net.ParseIP(in[5:]); ip != nil && strings.Contains(in[5:], ":") {
				if v4 := ip.To4(); v4 != nil {
					return v4
				}
				return ip
			}
			return nil
		}
		if strings.Contains(in, ":") {
			// [2001:db8::1] without its tag, as people write a relay in
			// smtproutes: plain enough to take.
			if ip := net.ParseIP(in); ip != nil && ip.To4() == nil {
				return ip
			}
			return nil
		}
		return dotted(in)
	}
	return dotted(host)
}

// dotted parses d.d.d.d only (no IPv6, no other forms).
func dotted(s string) net.IP {
	if s == "" || strings.Trim(s, "0123456789.") != "" {
		return nil
	}
	if ip := net.ParseIP(s); ip != nil {
		return ip.To4()
	}
	return nil
}

// MX returns the addresses for delivering mail to host by MX rules.
func (r *Resolver) MX(host string) ([]Addr, error) {
	addrs, _, err := r.MXSoft(host)
	return addrs, err
}

// MXSoft is MX, and also returns the lowest preference of an exchanger
// whose addresses could not be looked up for now (skipped), -1 if none: a
// caller that cuts the list at its own preference can tell "only I am
// left" from "a better exchanger could not be looked up".
func (r *Resolver) MXSoft(host string) ([]Addr, int, error) {
	soft := -1
	if ip := Literal(host); ip != nil {
		return []Addr{{IP: ip, Pref: 0, Name: host}}, soft, nil
	}
	host = idna.ToASCII(host)
	if !validName(host) {
		return nil, soft, ErrNoHost
	}
	rrs, err := r.query(host, dns.TypeMX)
	if err != nil && !errors.Is(err, ErrNoHost) {
		return nil, soft, ErrTemp
	}
	var mxs []*dns.MX
	for _, rr := range rrs {
		if mx, ok := rr.(*dns.MX); ok {
			mxs = append(mxs, mx)
		}
	}
	if len(mxs) == 0 {
		addrs, err := r.Host(host)
		if errors.Is(err, ErrNoAddr) {
			err = ErrNoHost // qmail: no A record is a hard failure
		}
		return addrs, soft, err
	}
	shuffle := r.Shuffle
	if shuffle == nil {
		shuffle = rand.Shuffle
	}
	shuffle(len(mxs), func(i, j int) { mxs[i], mxs[j] = mxs[j], mxs[i] })
	sort.SliceStable(mxs, func(i, j int) bool { return mxs[i].Preference < mxs[j].Preference })

	var out []Addr
	sawTemp := false
	for _, mx := range mxs {
		name := strings.TrimSuffix(mx.Mx, ".")
		if name == "" { // null MX (RFC 7505): this exchanger takes no mail
			continue
		}
		if ip := Literal(name); ip != nil {
			out = append(out, Addr{IP: ip, Pref: int(mx.Preference), Name: name})
			continue
		}
		ips, err := r.IPs(name)
		if err != nil {
			if errors.Is(err, ErrTemp) {
				sawTemp = true
				if soft < 0 {
					soft = int(mx.Preference) // sorted: the lowest
				}
			}
			continue
		}
		for _, ip := range ips {
			out = append(out, Addr{IP: ip, Pref: int(mx.Preference), Name: name})
		}
	}
	if len(out) == 0 {
		if sawTemp {
			return nil, soft, ErrTemp
		}
		return nil, soft, ErrNoAddr
	}
	return out, soft, nil
}

// Host returns the addresses of host itself with preference 0 (a literal, or
// its AAAA and A records): ErrNoHost when it does not exist, ErrTemp on a
// temporary failure, ErrNoAddr when it has no address.
func (r *Resolver) Host(host string) ([]Addr, error) {
	if ip := Literal(host); ip != nil {
		return []Addr{{IP: ip, Pref: 0, Name: host}}, nil
	}
	host = idna.ToASCII(host)
	ips, err := r.IPs(host)
	if err != nil {
		return nil, err
	}
	out := make([]Addr, len(ips))
	for i, ip := range ips {
		out[i] = Addr{IP: ip, Pref: 0, Name: host}
	}
	return out, nil
}

// IPs looks up the AAAA and A records of name (both at once) and returns
// them in the configured family order. Only when both lookups fail is there
// an error: ErrNoHost if both said NXDOMAIN, else ErrTemp if one was
// temporary. Both empty is ErrNoAddr.
func (r *Resolver) IPs(name string) ([]net.IP, error) {
	if !validName(name) {
		return nil, ErrNoHost
	}
	type res struct {
		rrs []dns.RR
		err error
	}
	ch6 := make(chan res, 1)
	go func() {
		rrs, err := r.query(name, dns.TypeAAAA)
		ch6 <- res{rrs, err}
	}()
	rrs4, err4 := r.query(name, dns.TypeA)
	r6 := <-ch6
	var v4, v6 []net.IP
	for _, rr := range rrs4 {
		if a, ok := rr.(*dns.A); ok {
			v4 = append(v4, a.A.To4())
		}
	}
	for _, rr := range r6.rrs {
		if a, ok := rr.(*dns.AAAA); ok {
			v6 = append(v6, a.AAAA)
		}
	}
	var out []net.IP
	if r.PreferIPv6 {
		out = append(v6, v4...)
	} else {
		out = append(v4, v6...)
	}
	if len(out) > 0 {
		return out, nil
	}
	switch {
	case errors.Is(err4, ErrTemp) || errors.Is(r6.err, ErrTemp):
		return nil, ErrTemp
	case errors.Is(err4, ErrNoHost):
		return nil, ErrNoHost
	}
	return nil, ErrNoAddr
}

// validName reports whether name can be put into a query at all; anything
// else cannot exist.
func validName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	_, ok := dns.IsDomainName(name)
	return ok
}

// ToASCII is idna.ToASCII, kept for callers of this package: a domain's
// A-labels, as it is looked up.
func ToASCII(name string) string { return idna.ToASCII(name) }
