// Package dnstest runs a small authoritative DNS server on loopback for
// tests: github.com/miekg/dns serving records the test adds, over UDP and
// TCP on one 127.0.0.1 port, with names that answer NXDOMAIN, SERVFAIL or
// nothing at all (to test timeouts).
//
// Point qmail-remote at it with WriteResolvConf and control/resolvconf (see
// qmail-remote(8)).
package dnstest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Server is a running test DNS server.
type Server struct {
	Addr string // 127.0.0.1:port

	mu       sync.Mutex
	rrs      map[string][]dns.RR // key: lower fqdn + "/" + type
	names    map[string]bool     // names that exist (NOERROR even without data)
	servfail map[string]bool
	silent   map[string]bool
	nxtype   map[string]bool // key(name, type): NXDOMAIN for that type only
	noEDNS   bool            // FORMERR to any query with an OPT record
	dropEDNS bool            // no answer at all to a query with an OPT record
	whole    bool            // UDP answers are never truncated (a broken proxy)
	queries  []string
	tcpCount int

	udp, tcp *dns.Server
}

// Start starts a server on 127.0.0.1 and stops it in t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	// The UDP port the kernel picks may be taken for TCP (another test's
	// connection): pick again, a bounded number of times.
	var err error
	for try := 0; try < 20; try++ {
		var pc net.PacketConn
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			break
		}
		var ln net.Listener
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			return Serve(t, pc, ln)
		}
		pc.Close()
	}
	t.Fatalf("dnstest: %v", err)
	return nil
}

// Serve starts a server on sockets the caller opened (e.g. inside a network
// namespace the test created) and stops it in t.Cleanup. Addr is the
// address of pc.
func Serve(t testing.TB, pc net.PacketConn, ln net.Listener) *Server {
	t.Helper()
	s := &Server{rrs: map[string][]dns.RR{}, names: map[string]bool{},
		servfail: map[string]bool{}, silent: map[string]bool{}, nxtype: map[string]bool{}}
	s.Addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(s.serve)
	s.udp = &dns.Server{PacketConn: pc, Handler: h}
	s.tcp = &dns.Server{Listener: ln, Handler: h}
	var started sync.WaitGroup
	started.Add(2)
	s.udp.NotifyStartedFunc = started.Done
	s.tcp.NotifyStartedFunc = started.Done
	go s.udp.ActivateAndServe()
	go s.tcp.ActivateAndServe()
	started.Wait()
	t.Cleanup(func() {
		s.udp.Shutdown()
		s.tcp.Shutdown()
	})
	return s
}

func key(name string, qtype uint16) string {
	return strings.ToLower(dns.Fqdn(name)) + "/" + dns.TypeToString[qtype]
}

// Add adds records in zone-file syntax, e.g. "example.test. MX 10 mx1.example.test.".
// A missing TTL is 60.
func (s *Server) Add(records ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range records {
		rr, err := dns.NewRR("$TTL 60\n" + r)
		if err != nil || rr == nil {
			panic(fmt.Sprintf("dnstest: bad record %q: %v", r, err))
		}
		h := rr.Header()
		k := key(h.Name, h.Rrtype)
		s.rrs[k] = append(s.rrs[k], rr)
		s.names[strings.ToLower(h.Name)] = true
	}
}

// Exists makes name answer NOERROR with no data for types it has no records of.
func (s *Server) Exists(name string) {
	s.mu.Lock()
	s.names[strings.ToLower(dns.Fqdn(name))] = true
	s.mu.Unlock()
}

// ServFail makes every query for name answer SERVFAIL.
func (s *Server) ServFail(name string) {
	s.mu.Lock()
	s.servfail[strings.ToLower(dns.Fqdn(name))] = true
	s.mu.Unlock()
}

// Silent makes the server never answer queries for name.
func (s *Server) Silent(name string) {
	s.mu.Lock()
	s.silent[strings.ToLower(dns.Fqdn(name))] = true
	s.mu.Unlock()
}

// NXDomainFor makes queries of qtype for name answer NXDOMAIN although the
// name has other records (as some broken servers do).
func (s *Server) NXDomainFor(name string, qtype uint16) {
	s.mu.Lock()
	s.nxtype[key(name, qtype)] = true
	s.mu.Unlock()
}

// RefuseEDNS makes the server answer FORMERR to every query that carries
// an EDNS OPT record, as old DNS proxies do.
func (s *Server) RefuseEDNS() {
	s.mu.Lock()
	s.noEDNS = true
	s.mu.Unlock()
}

// DropEDNS makes the server ignore every query that carries an EDNS OPT
// record, as some router DNS proxies do.
func (s *Server) DropEDNS() {
	s.mu.Lock()
	s.dropEDNS = true
	s.mu.Unlock()
}

// NoTruncate makes the server send every UDP answer whole, without TC,
// however big (a proxy passing on an upstream answer).
func (s *Server) NoTruncate() {
	s.mu.Lock()
	s.whole = true
	s.mu.Unlock()
}

// Queries returns "name/TYPE" of every query received so far.
func (s *Server) Queries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.queries...)
}

// TCPQueries returns how many queries came over TCP.
func (s *Server) TCPQueries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tcpCount
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	if len(req.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeFormatError)
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	s.mu.Lock()
	s.queries = append(s.queries, key(name, q.Qtype))
	if _, udp := w.RemoteAddr().(*net.UDPAddr); !udp {
		s.tcpCount++
	}
	silent, servfail, exists := s.silent[name], s.servfail[name], s.names[name]
	nx, formerr := s.nxtype[key(name, q.Qtype)], s.noEDNS && req.IsEdns0() != nil
	drop, whole := s.dropEDNS && req.IsEdns0() != nil, s.whole
	answer := append([]dns.RR(nil), s.rrs[key(name, q.Qtype)]...)
	s.mu.Unlock()
	if silent || drop {
		return
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	switch {
	case formerr:
		m.Rcode = dns.RcodeFormatError
	case nx:
		m.Rcode = dns.RcodeNameError
	case servfail:
		m.Rcode = dns.RcodeServerFailure
	case !exists:
		m.Rcode = dns.RcodeNameError
	default:
		m.Answer = answer
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp && !whole {
		// Like a real server: an answer too big for the client's buffer is
		// truncated (TC set) and must be asked again over TCP.
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)
	}
	w.WriteMsg(m)
}

// ResolvConf is the resolv.conf text pointing at the server, with a 1 s
// timeout and one attempt so timeouts are quick.
func (s *Server) ResolvConf() string {
	return fmt.Sprintf("nameserver %s\noptions timeout:1 attempts:1\n", s.Addr)
}

// WriteResolvConf writes ResolvConf to dir/resolv.conf and returns its path.
func (s *Server) WriteResolvConf(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(p, []byte(s.ResolvConf()), 0644); err != nil {
		t.Fatal(err)
	}
	return p
}
