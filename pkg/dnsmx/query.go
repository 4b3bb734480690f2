package dnsmx

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// ErrReferral is a temporary failure (errors.Is(ErrReferral, ErrTemp)):
// every server that answered gave a referral (NOERROR, no data on the
// chain, NS records and no SOA in the authority section; after CNAME
// records, NS records of another zone than the question's, or no SOA
// from a server without RA, with or without NS records), which is not
// "no data" (RFC 2308 §2.2), or REFUSED without RA: the server does not
// recurse, as an authoritative-only server listed in a resolv.conf does
// not.
var ErrReferral = fmt.Errorf("%w: the DNS server does not recurse (it answered with a referral, or refused a name it does not serve)", ErrTemp)

var (
	errMalformed = errors.New("malformed DNS message")
	errMismatch  = errors.New("DNS reply does not answer the question asked")
)

const (
	headerLen = 12
	maxChain  = 64 // CNAME links followed within one answer; a longer chain is a temporary failure
	flagQR    = 1 << 15
	flagTC    = 1 << 9
	flagRA    = 1 << 7
)

// question is what a reply must echo to be taken.
type question struct {
	id    uint16
	name  []byte // wire form, lowercased
	qtype uint16
}

// query asks the configured nameservers for name/qtype. On NOERROR it
// calls each with the whole message and the bounds of the data
// (msg[off:end]) of every record of type qtype and class IN whose owner is
// name or a CNAME target on name's chain within the answer, and returns
// nil (also when there was no such record), or ErrNoData when the answer
// section was empty (glibc's res_query fails then, and succeeds when it
// holds a record, a CNAME say); no other record is built, so
// an answer of thousands of records costs its 64 KB buffer and what each
// keeps. NXDOMAIN is ErrNoHost; ErrTemp when no server gave either within
// Attempts rounds, ErrReferral when those that answered gave referrals.
//
// A reply is taken only when it echoes the question (ID, and name without
// regard to case, type and class, as glibc's res_queriesmatch checks); a
// UDP reply that does not is ignored and the wait goes on, as for a wrong
// ID. A truncated UDP answer is asked again over TCP. Queries carry no EDNS
// unless the configuration says edns0, as glibc's (qmail's resolver) do:
// router DNS proxies that answer an EDNS query with NOTIMP or not at all
// then deliver as they do for every other program. With EDNS, a server
// that answers FORMERR to it is asked again without, as RFC 6891 §7 says.
// A UDP answer is read whole whatever its size (a proxy that passes on a
// big answer without setting TC).
func (r *Resolver) query(name string, qtype uint16, each func(msg []byte, off, end int)) error {
	conf := r.conf()
	plain := new(dns.Msg)
	plain.SetQuestion(dns.Fqdn(name), qtype)
	plain.RecursionDesired = true
	plainWire, err := plain.Pack()
	if err != nil {
		return ErrNoHost // validName let through a name that cannot be asked
	}
	wire := plainWire
	if conf.EDNS0 {
		m := plain.Copy()
		m.SetEdns0(1232, false)
		if wire, err = m.Pack(); err != nil {
			return ErrTemp
		}
	}
	var buf [255]byte
	qn, _, err := wireName(plainWire, headerLen, &buf)
	if err != nil {
		return ErrNoHost
	}
	q := question{id: plain.Id, name: bytes.Clone(qn), qtype: qtype}

	// noRecursion: a server answered as one that does not recurse (a
	// referral, or REFUSED without RA: authoritative-only servers refuse
	// names outside their zones); recursing: one answered otherwise
	// (SERVFAIL, a chain too long). Only when every answer was of the
	// first kind is the failure put down to the configuration.
	noRecursion, recursing := false, false
	ctx := r.Ctx
	if ctx == nil {
		ctx = context.Background()
	}
	for a := 0; a < max(conf.Attempts, 1); a++ {
		for _, srv := range conf.Servers {
			if ctx.Err() != nil {
				return ErrTemp
			}
			ans, err := ask(ctx, wire, q, srv, conf.Timeout)
			if err == nil && ans.rcode == dns.RcodeFormatError && conf.EDNS0 {
				ans, err = ask(ctx, plainWire, q, srv, conf.Timeout)
			}
			if err != nil {
				continue
			}
			switch {
			case ans.rcode == dns.RcodeSuccess && ans.referral,
				ans.rcode == dns.RcodeRefused && !ans.ra:
				noRecursion = true // another server may recurse
				continue
			case ans.rcode == dns.RcodeSuccess && ans.cut:
				recursing = true
				continue
			case ans.rcode == dns.RcodeSuccess && ans.ancount == 0:
				return ErrNoData
			case ans.rcode == dns.RcodeSuccess:
				ans.records(qtype, each)
				return nil
			case ans.rcode == dns.RcodeNameError:
				return ErrNoHost
			}
			// SERVFAIL, REFUSED, ...: try the next server.
			recursing = true
		}
	}
	if noRecursion && !recursing {
		return ErrReferral
	}
	return ErrTemp
}

// answer is a reply that matched its question.
type answer struct {
	msg      []byte
	rcode    int
	an       int      // offset of the answer section
	ancount  int      //
	chain    [][]byte // the question's name and its CNAME targets, wire form, lowercased
	referral bool     // no data on the chain, no SOA, NS records (or CNAME records without RA)
	cut      bool     // the chain went on past maxChain links
	ra       bool     // recursion available
}

// ask sends one query to srv over UDP (over TCP again if the answer is
// truncated) and returns the reply that matches q, parsed. ctx done cuts
// the exchange short.
func ask(ctx context.Context, wire []byte, q question, srv string, timeout time.Duration) (*answer, error) {
	msg, err := exchangeUDP(ctx, wire, q, srv, timeout)
	if err == nil && binary.BigEndian.Uint16(msg[2:])&flagTC != 0 {
		msg, err = exchangeTCP(ctx, wire, q, srv, timeout)
	}
	if err != nil {
		return nil, err
	}
	return parse(msg, q)
}

// dial connects to srv and sets the exchange's deadline, which ctx done
// moves to the past: a read or write under way fails at once.
func dial(ctx context.Context, network, srv string, timeout time.Duration) (net.Conn, func(), error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, network, srv)
	if err != nil {
		return nil, nil, err
	}
	c.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	return c, func() { stop(); c.Close() }, nil
}

func exchangeUDP(ctx context.Context, wire []byte, q question, srv string, timeout time.Duration) ([]byte, error) {
	c, done, err := dial(ctx, "udp", srv, timeout)
	if err != nil {
		return nil, err
	}
	defer done()
	if _, err := c.Write(wire); err != nil {
		return nil, err
	}
	buf := make([]byte, dns.MaxMsgSize)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		// A reply to an earlier query of ours that timed out, or one
		// made up by someone who guessed the ID: wait for the right one.
		if matches(buf[:n], q) {
			return buf[:n], nil
		}
	}
}

func exchangeTCP(ctx context.Context, wire []byte, q question, srv string, timeout time.Duration) ([]byte, error) {
	c, done, err := dial(ctx, "tcp", srv, timeout)
	if err != nil {
		return nil, err
	}
	defer done()
	out := make([]byte, 2+len(wire))
	binary.BigEndian.PutUint16(out, uint16(len(wire)))
	copy(out[2:], wire)
	if _, err := c.Write(out); err != nil {
		return nil, err
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, msg); err != nil {
		return nil, err
	}
	if !matches(msg, q) {
		return nil, errMismatch
	}
	return msg, nil
}

// matches reports whether msg is a reply to q: same ID, and the same
// question (name compared without regard to ASCII case, type, class IN).
// A reply without a question is taken only for an rcode that makes the
// caller move on (FORMERR, SERVFAIL, NOTIMP, REFUSED): old servers answer
// FORMERR to EDNS that way, and such a reply cannot pass for an answer.
func matches(msg []byte, q question) bool {
	if len(msg) < headerLen || binary.BigEndian.Uint16(msg) != q.id {
		return false
	}
	flags := binary.BigEndian.Uint16(msg[2:])
	if flags&flagQR == 0 {
		return false
	}
	switch binary.BigEndian.Uint16(msg[4:]) {
	case 0:
		rcode := int(flags & 0xF)
		return rcode != dns.RcodeSuccess && rcode != dns.RcodeNameError
	case 1:
	default:
		return false
	}
	var buf [255]byte
	name, off, err := wireName(msg, headerLen, &buf)
	if err != nil || off+4 > len(msg) || !bytes.Equal(name, q.name) {
		return false
	}
	return binary.BigEndian.Uint16(msg[off:]) == q.qtype && binary.BigEndian.Uint16(msg[off+2:]) == dns.ClassINET
}

// parse reads a matching reply: its rcode, and for NOERROR the CNAME chain
// of the question's name within the answer section and whether the reply
// is a referral. A reply whose records cannot be walked is malformed.
func parse(msg []byte, q question) (*answer, error) {
	flags := binary.BigEndian.Uint16(msg[2:])
	a := &answer{msg: msg, rcode: int(flags & 0xF), ra: flags&flagRA != 0}
	if a.rcode != dns.RcodeSuccess {
		return a, nil
	}
	// matches took a NOERROR reply only with its one question.
	var buf [255]byte
	_, off, err := wireName(msg, headerLen, &buf)
	if err != nil {
		return nil, errMalformed
	}
	a.an = off + 4
	a.ancount = int(binary.BigEndian.Uint16(msg[6:]))
	nscount := int(binary.BigEndian.Uint16(msg[8:]))

	// Follow the chain: each walk takes every link it meets in order, so
	// an answer in the usual order needs one walk and one more to see that
	// nothing is left; links given out of order need a walk each.
	a.chain = [][]byte{q.name}
	data := false // a record of the type asked for on the chain
	for grew := true; grew; {
		grew = false
		data = false
		_, err := walk(msg, a.an, a.ancount, func(owner []byte, typ, class uint16, off, end int) {
			if class != dns.ClassINET || !a.onChain(owner) {
				return
			}
			if typ == q.qtype {
				data = true
			}
			if typ != dns.TypeCNAME || !bytes.Equal(owner, a.chain[len(a.chain)-1]) {
				return
			}
			if len(a.chain) > maxChain {
				a.cut = true
				return
			}
			var tb [255]byte
			target, _, err := wireName(msg, off, &tb)
			if err == nil && !a.onChain(target) {
				a.chain = append(a.chain, bytes.Clone(target))
				grew = true
			}
		})
		if err != nil {
			return nil, errMalformed
		}
	}
	if data || a.cut {
		return a, nil
	}
	// Nothing of the type asked for on the chain: "no data" (with an SOA,
	// or nothing at all in the authority section), or a referral (NS
	// records, no SOA), also after CNAME records: an authoritative server
	// answers for the alias and refers the query for a target in a zone
	// it delegated or does not serve. After CNAME records, no SOA is a
	// referral when the server says it does not recurse (no RA), NS
	// records or none: an authoritative-only server whose alias points
	// into no zone it serves gives the CNAME alone (BIND with recursion
	// no: an empty authority section), and a negative answer carries its
	// zone's SOA (RFC 2308 §2.2, §3). With RA, NS records and no SOA are
	// a referral when they are not those of a zone the question's name is
	// in (a server that answered for the alias serves its zone, so NS
	// records of another zone delegate the target's): a forwarder
	// (dnsmasq) passes an authoritative-only server's referral on with RA
	// set. A recursive server's chain with no data and its zone's NS
	// records (an answer that is not minimal), or with nothing in the
	// authority section, says the alias's target has none.
	ns, soa, foreign := false, false, false
	nsOff, err := walk(msg, a.an, a.ancount, nil)
	if err == nil {
		_, err = walk(msg, nsOff, nscount, func(owner []byte, typ, _ uint16, _, _ int) {
			if typ == dns.TypeNS {
				ns = true
				foreign = foreign || !inZone(q.name, owner)
			}
			soa = soa || typ == dns.TypeSOA
		})
	}
	if err != nil {
		return nil, errMalformed
	}
	chained := len(a.chain) > 1
	a.referral = !soa && (ns && (!chained || foreign) || chained && !a.ra)
	return a, nil
}

// inZone reports whether name (wire form, lowercased) is zone or below
// it: whether zone's wire form ends name at a label boundary.
func inZone(name, zone []byte) bool {
	for i := 0; i < len(name); i += 1 + int(name[i]) {
		if bytes.Equal(name[i:], zone) {
			return true
		}
		if name[i] == 0 {
			break
		}
	}
	return false
}

func (a *answer) onChain(name []byte) bool {
	for _, c := range a.chain {
		if bytes.Equal(c, name) {
			return true
		}
	}
	return false
}

// records calls each for the answer's records of qtype on the chain.
func (a *answer) records(qtype uint16, each func(msg []byte, off, end int)) {
	walk(a.msg, a.an, a.ancount, func(owner []byte, typ, class uint16, off, end int) {
		if typ == qtype && class == dns.ClassINET && a.onChain(owner) {
			each(a.msg, off, end)
		}
	})
}

// walk goes over n records from off, calling f (when not nil) with each
// one's owner (wire form, lowercased; valid during the call only), type,
// class and data bounds, and returns the offset after them. Nothing is
// allocated per record.
func walk(msg []byte, off, n int, f func(owner []byte, typ, class uint16, off, end int)) (int, error) {
	var buf [255]byte
	for i := 0; i < n; i++ {
		owner, o, err := wireName(msg, off, &buf)
		if err != nil || o+10 > len(msg) {
			return 0, errMalformed
		}
		typ := binary.BigEndian.Uint16(msg[o:])
		class := binary.BigEndian.Uint16(msg[o+2:])
		end := o + 10 + int(binary.BigEndian.Uint16(msg[o+8:]))
		if end > len(msg) {
			return 0, errMalformed
		}
		if f != nil {
			f(owner, typ, class, o+10, end)
		}
		off = end
	}
	return off, nil
}

// wireName reads the (possibly compressed) name at off into buf in
// uncompressed wire form, ASCII letters lowercased, and returns it with the
// offset after the name as stored at off.
func wireName(msg []byte, off int, buf *[255]byte) ([]byte, int, error) {
	n, next, jumps := 0, -1, 0
	for {
		if off >= len(msg) {
			return nil, 0, errMalformed
		}
		c := int(msg[off])
		switch c & 0xC0 {
		case 0x00:
			if n+1+c > len(buf) || off+1+c > len(msg) {
				return nil, 0, errMalformed
			}
			buf[n] = byte(c)
			n++
			if c == 0 {
				if next < 0 {
					next = off + 1
				}
				return buf[:n], next, nil
			}
			for _, b := range msg[off+1 : off+1+c] {
				if 'A' <= b && b <= 'Z' {
					b += 'a' - 'A'
				}
				buf[n] = b
				n++
			}
			off += 1 + c
		case 0xC0:
			if off+1 >= len(msg) {
				return nil, 0, errMalformed
			}
			if next < 0 {
				next = off + 2
			}
			// A name has at most 127 labels: more jumps is a loop.
			if jumps++; jumps > 127 {
				return nil, 0, errMalformed
			}
			off = (c&0x3F)<<8 | int(msg[off+1])
		default: // extended label types (RFC 6891 §5)
			return nil, 0, errMalformed
		}
	}
}

func (r *Resolver) conf() *Config {
	if r.Conf != nil {
		return r.Conf
	}
	c, _ := ParseConfig(strings.NewReader(""))
	return c
}
