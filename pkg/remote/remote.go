package remote

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-smtp"
	"github.com/hqmail/hqmail/pkg/address"
	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/dnsmx"
	"github.com/hqmail/hqmail/pkg/idna"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/tcpto"
	"github.com/hqmail/hqmail/pkg/tlsconf"
)

// Fixed report texts (spec/delivery.md §6).
const (
	txtUsage     = "I (qmail-remote) was invoked improperly. (#5.3.5)\n"
	txtHome      = "Unable to switch to home directory. (#4.3.0)\n"
	txtControl   = "Unable to read control files. (#4.3.0)\n"
	txtDNSTemp   = "Sorry, I couldn't find any host by that name. (#4.1.2)\n"
	txtNoMX      = "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n"
	txtSelfLoop  = "Sorry. Although I'm listed as a best-preference MX or A for that host,\nit isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n"
	txtNoConnect = "Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n"
)

// Config is qmail-remote's control-file configuration.
type Config struct {
	Helo           string
	TimeoutRemote  time.Duration
	TimeoutConnect time.Duration
	Routes         Table    // control/smtproutes
	TLSRoutes      Table    // control/tlsroutes
	OutgoingIP     []net.IP // control/outgoingip: at most one IPv4 and one IPv6
	ResolvConf     string   // control/resolvconf, default /etc/resolv.conf
	ctl            *control.Dir
}

// LoadConfig reads the control files. Any error (a file that exists but
// cannot be read, no helohost and no me, a bad outgoingip) means
// "Unable to read control files".
func LoadConfig(root string) (*Config, error) {
	d := control.Open(root)
	c := &Config{ctl: d}
	tr, err := d.ReadInt("timeoutremote", 1200)
	if err != nil {
		return nil, err
	}
	tc, err := d.ReadInt("timeoutconnect", 60)
	if err != nil {
		return nil, err
	}
	c.TimeoutRemote = time.Duration(max(tr, 1)) * time.Second
	c.TimeoutConnect = time.Duration(max(tc, 1)) * time.Second
	helo, ok, err := d.LineOrMeRequired("helohost")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errors.New("neither control/helohost nor control/me exists")
	}
	// EHLO names a host in ASCII (RFC 5321; it goes before anything
	// says whether the peer takes UTF-8): an internationalized helohost
	// or me is said in its A-labels, as DNS knows it.
	c.Helo = idna.ToASCII(helo)
	lines, _, err := d.ReadList("smtproutes")
	if err != nil {
		return nil, err
	}
	c.Routes = ParseTable(lines)
	lines, _, err = d.ReadList("tlsroutes")
	if err != nil {
		return nil, err
	}
	c.TLSRoutes = ParseTable(lines)
	lines, _, err = d.ReadList("outgoingip")
	if err != nil {
		return nil, err
	}
	var have4, have6 bool
	for _, l := range lines {
		a := control.OutgoingAddr(l)
		if !a.IsValid() {
			return nil, badOutgoingIP(l)
		}
		if a.Is4() && !have4 {
			c.OutgoingIP, have4 = append(c.OutgoingIP, net.IP(a.AsSlice())), true
		} else if a.Is6() && !have6 {
			c.OutgoingIP, have6 = append(c.OutgoingIP, net.IP(a.AsSlice())), true
		}
	}
	c.ResolvConf, err = d.LineDefault("resolvconf", dnsmx.DefaultResolvConf)
	if err != nil {
		return nil, err
	}
	if c.ResolvConf == "" {
		c.ResolvConf = dnsmx.DefaultResolvConf
	}
	return c, nil
}

// badOutgoingIP is a line of control/outgoingip that is no address.
type badOutgoingIP string

func (b badOutgoingIP) Error() string {
	return "control/outgoingip: not an IP address: " + string(b)
}

// Main is qmail-remote: deliver the message on msg for args (host sender
// recip...) and write the reports to out. It always returns 0.
func Main(root string, args []string, msg *os.File, out io.Writer) int {
	return mainGate(root, args, msg, out, oneShotGate(out))
}

// mainGate is Main with the stopGate g.
func mainGate(root string, args []string, msg *os.File, out io.Writer, g *stopGate) int {
	w := bufio.NewWriter(out)
	var rep *report
	if g.begin() {
		rep = run(root, args, msg, w, nil, g)
	} else {
		rep = &report{letter: 'Z', text: TextStopped}
	}
	rep = g.outcome(rep)
	w.WriteByte(rep.letter)
	w.WriteString(rep.text)
	w.WriteByte(0)
	w.Flush()
	return 0
}

// delivery is one run of qmail-remote.
type delivery struct {
	cfg    *Config
	root   string
	host   string
	sender string
	rcpts  []string
	msg    *os.File
	out    *bufio.Writer

	route  Route
	routed bool
	policy string
	creds  *Credentials
	roots  *x509.CertPool
	keep   *keeper // keep mode (qmail-remote -k): the connection kept between deliveries
	stop   *stopGate
	// plain is the "Sent without TLS" note of a connection made in plain
	// text after a failed opportunistic handshake; its session keeps it
	// for the deliveries that reuse it.
	plain string
}

// run is one delivery. keep is nil for a one-shot qmail-remote; in keep
// mode it may hold a connection left open by an earlier delivery, which is
// used first when it was made for the same destination, and it is offered
// this delivery's connection when the peer accepted the message.
func run(root string, args []string, msg *os.File, out *bufio.Writer, keep *keeper, stop *stopGate) *report {
	if len(args) < 3 {
		return &report{letter: 'D', text: txtUsage}
	}
	if err := os.Chdir(root); err != nil {
		return &report{letter: 'Z', text: txtHome}
	}
	cfg, err := LoadConfig(root)
	var bad badOutgoingIP
	if errors.As(err, &bad) {
		// qmail's text, then which line of which file: every control
		// file can be read, and the admin would look for a permission.
		return &report{letter: 'Z', text: "Unable to read control files: control/outgoingip: " +
			strconv.Quote(string(bad)) + " is not an IP address. (#4.3.0)\n"}
	}
	if err != nil {
		return &report{letter: 'Z', text: txtControl}
	}
	d := &delivery{cfg: cfg, root: root, host: args[0], sender: args[1], rcpts: args[2:], msg: msg, out: out, keep: keep, stop: stop}
	if strings.ContainsAny(d.sender, "\r\n") {
		return &report{letter: 'D', text: "Sorry, the envelope sender contains a CR or LF. (#5.1.7)\n"}
	}
	d.route, d.routed = cfg.Routes.LookupRoute(d.host)
	if d.routed {
		if rep := d.loadCredentials(); rep != nil {
			return rep
		}
	}
	d.policy = cfg.TLSRoutes.TLSPolicy(d.host, d.creds != nil)
	if verifies(d.policy) {
		if rep := d.loadRoots(); rep != nil {
			return rep
		}
	}
	if rep, ok := d.reuse(); ok {
		return rep
	}
	addrs, rep := d.addresses()
	if rep != nil {
		return rep
	}
	return d.connect(addrs)
}

// loadCredentials reads control/smtpauth for the route's relay. The file
// holds passwords: it must be readable by its owner only, and its contents
// never appear in a report.
func (d *delivery) loadCredentials() *report {
	p := filepath.Join(d.cfg.ctl.Path, "smtpauth")
	st, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return &report{letter: 'Z', text: txtControl}
	}
	if !st.Mode().IsRegular() {
		if qhome.IsDevNull(st) {
			return nil // a link to /dev/null: empty, as every control file
		}
		// A directory's or a FIFO's mode says nothing of who reads
		// passwords: it is not the file asked for.
		return &report{letter: 'Z', text: "Sorry, control/smtpauth is not a regular file; make it qmailr's with mode 0600. (#4.3.0)\n"}
	}
	if st.Mode().Perm()&0o077 != 0 {
		return &report{letter: 'Z', text: "Sorry, control/smtpauth is readable by group or others; make it qmailr's with mode 0600. (#4.3.0)\n"}
	}
	lines, _, err := d.cfg.ctl.ReadList("smtpauth")
	if err != nil {
		return &report{letter: 'Z', text: txtControl}
	}
	if c, ok := AuthFor(lines, d.route.Relay); ok {
		d.creds = &c
	}
	return nil
}

// loadRoots reads control/tlsca (PEM certificates trusted instead of the
// system's roots) when it exists. A file that cannot be read, or that
// holds no certificate, defers the delivery with a report naming the file
// and why: "Unable to read control files" sent the admin looking through
// every control file for a permission, when tlsca was a DER file.
func (d *delivery) loadRoots() *report {
	// As every control file: a FIFO there would hold the delivery for
	// ever, before it connects.
	b, err := qhome.ReadRegular(filepath.Join(d.cfg.ctl.Path, "tlsca"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &report{letter: 'Z', text: "Unable to read control/tlsca: " + whyUnread(err) + ". (#4.3.0)\n"}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return &report{letter: 'Z', text: "Sorry, control/tlsca holds no PEM certificate" + noPEMWhy(b) + ". (#4.3.0)\n"}
	}
	d.roots = pool
	return nil
}

// noPEMWhy says, after "holds no PEM certificate", what control/tlsca
// holds instead, b being a file in which x509 found no certificate.
func noPEMWhy(b []byte) string {
	if _, err := x509.ParseCertificates(b); err == nil && len(b) > 0 {
		// The commonest mistake: a CA's certificate downloaded as .der
		// or .cer.
		return ": it holds a certificate in DER form; convert it with openssl x509 -inform der -in FILE -out control/tlsca"
	}
	var blocks int
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		blocks++
		if block.Type == "CERTIFICATE" {
			if _, err := x509.ParseCertificate(block.Bytes); err != nil {
				return ": a CERTIFICATE block does not parse (" + oneLine(err.Error()) + ")"
			}
		}
	}
	if blocks > 0 {
		return ": none of its PEM blocks is a CERTIFICATE"
	}
	return " (-----BEGIN CERTIFICATE-----)"
}

// addresses finds where to connect: the route's relay (every address
// eligible) or the host's exchangers below this host's own preference.
func (d *delivery) addresses() ([]dnsmx.Addr, *report) {
	name := d.host
	if d.routed {
		name = d.route.Relay
	}
	// Literal hosts need neither DNS nor its configuration.
	if ip := dnsmx.Literal(name); ip != nil {
		addrs := []dnsmx.Addr{{IP: ip, Name: name}}
		if d.routed {
			return addrs, nil
		}
		return selfFilter(addrs, localIPs())
	}
	var conf *dnsmx.Config
	var err error
	if d.cfg.ResolvConf == dnsmx.DefaultResolvConf {
		conf, err = dnsmx.ReadConfig(d.cfg.ResolvConf) // missing: the C resolver's defaults
	} else {
		// A file control/resolvconf names must be there and readable:
		// falling back to a nameserver on 127.0.0.1 would hide the mistake.
		conf, err = dnsmx.ReadConfigStrict(d.cfg.ResolvConf)
	}
	if err != nil {
		return nil, &report{letter: 'Z', text: d.resolvConfText(err)}
	}
	local := localIPs()
	// A TERM cuts the lookups short (dnsmx's Ctx): a stop does not wait
	// for the timeouts of a DNS server gone with the link.
	r := &dnsmx.Resolver{Conf: conf, PreferIPv6: hasGlobalIPv6(local), Ctx: d.stop.dialContext()}
	var addrs []dnsmx.Addr
	if d.routed {
		addrs, err = r.Host(name)
	} else {
		// dnsmx makes the self cut as it looks the exchangers up, on the
		// whole MX list before its caps (a better exchanger that could not
		// be looked up for now makes "only this host is left" ErrTemp).
		r.IsSelf = func(ip net.IP) bool { return isLocal(ip, local) }
		addrs, err = r.MX(name)
	}
	if d.stop.stopped() {
		return nil, &report{letter: 'Z', text: TextStopped}
	}
	// The host as the reports show it: qmail prints it through outsafe
	// (a byte below 33 or above 126 is '?'); here it goes through
	// oneLine, as in the tlsroutes reports: a control byte (a LF would
	// start a line of its own in the bounce) is a space, and an
	// internationalized name in UTF-8 stays as written, as the recipient
	// address it came from stands in the bounce (a byte that is not
	// UTF-8 becomes U+FFFD).
	shown := oneLine(name)
	switch {
	case errors.Is(err, dnsmx.ErrNoHost), d.routed && errors.Is(err, dnsmx.ErrNoData):
		// A relay is looked up for its addresses only: one whose A query
		// is answered with nothing at all is "no such host", as qmail's
		// dns_ip makes it (glibc's res_query fails on an empty answer).
		// One that is a CNAME to a name without addresses is not: the
		// answer holds the CNAME, qmail finds no address and says #5.4.4
		// (ErrNoAddr, below).
		return nil, &report{letter: 'D', text: "Sorry, I couldn't find any host named " + shown + ". (#5.1.2)\n"}
	case errors.Is(err, dnsmx.ErrNullMX):
		// Checked before ErrNoAddr, which it also is.
		return nil, &report{letter: 'D', text: "Sorry, " + shown + " does not accept mail: it publishes a null MX (RFC 7505). (#5.1.10)\n"}
	case errors.Is(err, dnsmx.ErrNoAddr):
		return nil, &report{letter: 'D', text: txtNoMX}
	case errors.Is(err, dnsmx.ErrSelf):
		return nil, &report{letter: 'D', text: txtSelfLoop}
	case errors.Is(err, dnsmx.ErrReferral):
		return nil, &report{letter: 'Z', text: txtDNSTemp + txtReferral}
	case err != nil:
		return nil, &report{letter: 'Z', text: txtDNSTemp}
	}
	return addrs, nil
}

// resolvConfText is the deferral for a resolver configuration file that
// exists but could not be read (mode 0600 as a VPN tool may leave
// /etc/resolv.conf, a directory, a line too long), or that
// control/resolvconf names and is missing: it names the file and
// why, since "Unable to read control files" sent the admin to control/,
// where nothing was wrong. A relative name (control/resolvconf) is shown
// as the path under the qmail root it was opened at.
func (d *delivery) resolvConfText(err error) string {
	name := d.cfg.ResolvConf
	if !filepath.IsAbs(name) && d.root != "" {
		name = filepath.Join(d.root, name)
	}
	return "Unable to read " + name + ": " + whyUnread(err) + ". (#4.3.0)\n"
}

// whyUnread says why a file could not be read, for a report naming it.
func whyUnread(err error) string {
	why := qerr.Str(err) // qmail's words for an errno: "access denied", "is a directory"
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
	case errors.Is(err, bufio.ErrTooLong):
		why = "a line is too long"
	case errors.Is(err, qhome.ErrNotRegular):
		why = "not a regular file"
	case errors.Is(err, qhome.ErrTooLarge):
		why = qhome.ErrTooLarge.Error()
	}
	return why
}

// txtReferral follows txtDNSTemp when every nameserver that answered gave
// a referral, or REFUSED without recursion available: the resolver configuration names a server that does not
// recurse (an authoritative-only one), which only its admin can fix.
const txtReferral = "The DNS server does not recurse (it answered with a referral, or refused a\nname it does not serve): control/resolvconf or /etc/resolv.conf must name\nrecursive resolvers.\n"

// selfPref is the lowest preference of an address of this host among
// addrs, -1 if none.
func selfPref(addrs []dnsmx.Addr, local []net.IP) int {
	prefme := -1
	for _, a := range addrs {
		if isLocal(a.IP, local) && (prefme < 0 || a.Pref < prefme) {
			prefme = a.Pref
		}
	}
	return prefme
}

// selfFilter keeps the addresses whose preference is below the lowest
// preference of an address of this host.
func selfFilter(addrs []dnsmx.Addr, local []net.IP) ([]dnsmx.Addr, *report) {
	prefme := selfPref(addrs, local)
	if prefme < 0 {
		return addrs, nil
	}
	var out []dnsmx.Addr
	for _, a := range addrs {
		if a.Pref < prefme {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, &report{letter: 'D', text: txtSelfLoop}
	}
	return out, nil
}

// localIPs are this host's interface addresses.
func localIPs() []net.IP {
	var ips []net.IP
	as, _ := net.InterfaceAddrs()
	for _, a := range as {
		if n, ok := a.(*net.IPNet); ok {
			ips = append(ips, n.IP)
		}
	}
	return ips
}

func isLocal(ip net.IP, local []net.IP) bool {
	if ip.IsUnspecified() {
		return true
	}
	for _, l := range local {
		if l.Equal(ip) {
			return true
		}
	}
	return false
}

// hasGlobalIPv6 reports whether an interface has a public IPv6 address, the
// sign that IPv6 destinations are reachable and worth trying first.
func hasGlobalIPv6(local []net.IP) bool {
	for _, ip := range local {
		if ip.To4() == nil && ip.IsGlobalUnicast() && !ip.IsPrivate() {
			return true
		}
	}
	return false
}

// connect tries the addresses in order and delivers over the first
// connection made.
func (d *delivery) connect(addrs []dnsmx.Addr) *report {
	port := 25
	if d.routed {
		port = d.route.Port
	}
	tt := tcpto.Open(d.root)
	var refused *report // the last TLS-policy refusal
	var unbound net.IP  // an outgoingip source the kernel refused
	for _, a := range addrs {
		if d.stop.stopped() {
			return &report{letter: 'Z', text: TextStopped}
		}
		ready, present := tt.Ready(a.IP)
		if !ready {
			continue
		}
		conn, err := d.dial(a.IP, port)
		if err != nil {
			if d.stop.stopped() {
				// Cut short by the TERM: nothing is known of the peer.
				return &report{letter: 'Z', text: TextStopped}
			}
			if src := d.source(a.IP); src != nil && errors.Is(err, syscall.EADDRNOTAVAIL) {
				// Our address, not the peer, is at fault: say so, and
				// do not mark the peer as unreachable.
				unbound = src
				continue
			}
			tt.Result(a.IP, isTimeout(err), present)
			continue
		}
		tt.Result(a.IP, false, present)
		err = d.smtp(conn, a, port, true)
		plain := ""
		if fb := (*tlsFallback)(nil); errors.As(err, &fb) {
			// The opportunistic handshake failed: the same host again, in
			// plain text; if it cannot be reached again, the next one.
			plain = fb.note()
			if conn, err = d.dial(a.IP, port); err != nil {
				continue
			}
			d.plain = plain
			err = d.smtp(conn, a, port, false)
			d.plain = ""
		}
		var rep *report
		if errors.As(err, &rep) {
			if rep.tlsPolicy {
				refused = rep
				continue
			}
			if rep.letter == 'K' && plain != "" {
				rep.text += plain // the log says the mail went in clear
			}
			return rep
		}
		return &report{letter: 'Z', text: "Connected to " + a.IP.String() + " but connection died. (#4.4.2)\n"}
	}
	if refused != nil {
		return refused
	}
	if unbound != nil {
		return &report{letter: 'Z', text: "Sorry, I wasn't able to establish an SMTP connection: control/outgoingip's " +
			unbound.String() + " is not an address of this host. (#4.4.1)\n"}
	}
	return &report{letter: 'Z', text: txtNoConnect}
}

// source is the control/outgoingip address used for connections to ip, or
// nil for the kernel's choice.
func (d *delivery) source(ip net.IP) net.IP {
	for _, src := range d.cfg.OutgoingIP {
		if (src.To4() != nil) == (ip.To4() != nil) {
			return src
		}
	}
	return nil
}

func (d *delivery) dial(ip net.IP, port int) (net.Conn, error) {
	dl := net.Dialer{Timeout: d.cfg.TimeoutConnect}
	if src := d.source(ip); src != nil {
		dl.LocalAddr = &net.TCPAddr{IP: src}
	}
	c, err := dl.DialContext(d.stop.dialContext(), "tcp", net.JoinHostPort(ip.String(), itoa(port)))
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		c = lateConn{tc}
	}
	return watch(c), nil
}

func isTimeout(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.ETIMEDOUT)
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(b[i:])
}

// tlsConfig is the client configuration for a connection to the host named
// name: verified only under the "require" policy and a login's default.
// TLS below 1.2 is refused (Go's client default, written out so that the
// man pages' promise does not hang on it): a peer offering only TLS 1.0
// or 1.1 is a failed handshake, under each policy what one is. The TLS
// 1.2 cipher suites are tlsconf.Suites, RSA key exchange included. SHA-1
// signatures in a TLS 1.2 handshake (Go 1.25 refuses them by default)
// are allowed for qmail-remote as a whole: crypto/tls has no setting per
// connection, so cmd/qmail-remote says tlssha1=1.
func (d *delivery) tlsConfig(name string) *tls.Config {
	name = strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
	if len(name) > 5 && strings.EqualFold(name[:5], "ipv6:") {
		name = name[5:]
	}
	return &tls.Config{
		ServerName:         name,
		InsecureSkipVerify: !verifies(d.policy),
		RootCAs:            d.roots,
		MinVersion:         tlsconf.MinVersion,
		CipherSuites:       tlsconf.Suites,
	}
}

// smtp runs the dialogue on conn and returns the message report (as a
// *report error), or a *tlsFallback.
func (d *delivery) smtp(conn net.Conn, a dnsmx.Addr, port int, tryTLS bool) (err error) {
	s := newSession(conn, a.IP.String(), d.cfg.TimeoutRemote)
	s.plain = d.plain
	if d.creds != nil {
		s.login(*d.creds) // every reply quoted from now on is redacted
	}
	defer func() {
		// A refusal of STARTTLS under "try" (tlsFailed) goes on in
		// plain text: the log says so, as for a failed handshake (the
		// retry's note, d.plain, is added by the caller).
		if rep := (*report)(nil); errors.As(err, &rep) && rep.letter == 'K' && s.plain != d.plain {
			rep.text += s.plain
		}
		if fb := (*tlsFallback)(nil); errors.As(err, &fb) {
			// The same address is dialled again at once, in plain
			// text: let the peer see this connection end first (a peer
			// allowing one connection per client refuses the next
			// while it counts this one).
			s.endAndWait(d.cfg.TimeoutConnect)
		}
		if !s.parked {
			s.close()
		}
	}()
	// The extensions go-smtp's Client may use in MAIL (see wire.view): it
	// adds BODY=8BITMIME whenever 8BITMIME is offered, and the wire takes
	// it out again for a message without 8-bit bytes; SMTPUTF8 is used only
	// when transaction asks for it; SIZE=n (RFC 1870) declares the
	// message's size, so that a peer with a smaller limit refuses it at
	// MAIL instead of after all of it went over the link.
	s.w.show = func(kw string) bool { return kw == "8BITMIME" || kw == "SMTPUTF8" || kw == "SIZE" }
	if !d.attach(s) {
		return &report{letter: 'Z', text: TextStopped}
	}
	required := requiresTLS(d.policy)
	if port == 465 {
		if err := s.handshake(d.tlsConfig(a.Name)); err != nil {
			return d.tlsFailed(s, err, true)
		}
	}
	s.client()
	ext, err := s.hello(d.cfg.Helo)
	if err != nil {
		return err
	}
	if !s.tls && d.policy != TLSNone {
		if _, offered := ext["STARTTLS"]; offered && (tryTLS || required) {
			if err := s.startTLS(d.tlsConfig(a.Name), required); err != nil {
				if err := d.tlsFailed(s, err, false); err != nil {
					return err
				}
			}
			if s.tls {
				if ext, err = s.hello(d.cfg.Helo); err != nil {
					if s.w.ioErr != nil && s.w.refused == nil && !errors.Is(s.w.ioErr, errOutOfStep) {
						// A TLS 1.3 server refuses a client (one
						// without a certificate it wants) after the
						// client's side of the handshake is done: on
						// the first read. That is a failed handshake
						// (a server that just says nothing, until
						// timeoutremote, counts as one too). A reply
						// to EHLO, even a refusal (421, or one
						// followed by the end of the connection),
						// came over a TLS session that works: it is
						// the server's answer and the report, as it
						// would be in plain text, under every policy.
						return d.tlsFailed(s, &tlsFailure{err: s.w.ioErr, after: true}, false)
					}
					return err
				}
			}
		}
	}
	if !s.tls {
		switch {
		case required && d.policy != TLSLogin:
			s.quit()
			return policy(&report{letter: 'Z', text: "Connected to " + s.ip + " but it does not offer STARTTLS, which control/tlsroutes requires. (#4.7.0)\n"})
		case d.creds != nil:
			why := "it does not offer STARTTLS"
			if d.policy == TLSNone {
				why = "control/tlsroutes says none for " + oneLine(d.host)
			}
			s.quit()
			return policy(&report{letter: 'Z', text: "Connected to " + s.ip + " but I will not send a password without TLS: " + why + ". (#4.7.0)\n"})
		}
	}
	if d.creds != nil && d.policy == TLSNone {
		// Implicit TLS (port 465) under "none": the session is encrypted
		// but unchecked, and "none" promises the password is never sent.
		s.quit()
		return policy(&report{letter: 'Z', text: "Connected to " + s.ip + " but I will not send a password: control/tlsroutes says none for " + oneLine(d.host) + ". (#4.7.0)\n"})
	}
	if d.creds != nil {
		if err := s.auth(ext, *d.creds); err != nil {
			return err
		}
	}
	s.ext, s.key, s.born = ext, d.key(), time.Now()
	return d.transaction(s, ext)
}

// tlsFailed decides what a TLS session that could not be had means under
// the delivery's policy; err is a *tlsFailure (any other error is
// returned as it is), implicit is set for TLS from the first byte (port
// 465), which has no plain text to go on in. It returns nil when the
// dialogue goes on in plain text (STARTTLS refused under "try", no
// login), a *tlsFallback when the same address is to be tried again in
// plain text (a failed handshake under "try", no login), and otherwise the
// report: a TLS-policy refusal (nothing was sent: the next address is
// tried). A login's refusal names the password, which is what TLS was
// needed for; it is never sent in plain text, so no plain-text retry is
// made for it.
func (d *delivery) tlsFailed(s *session, err error, implicit bool) error {
	f := (*tlsFailure)(nil)
	if !errors.As(err, &f) {
		return err
	}
	refuse := func(text string) error {
		if f.refused != nil {
			s.quit() // the plain-text session is still there: end it
		}
		return policy(&report{letter: 'Z', text: "Connected to " + s.ip + " but " + text})
	}
	switch {
	case d.creds != nil && (d.policy == TLSLogin || !requiresTLS(d.policy)):
		if cv := (*tls.CertificateVerificationError)(nil); d.policy == TLSLogin && errors.As(f.err, &cv) {
			return refuse("its certificate did not verify (" + oneLine(cv.Err.Error()) + "); I will not send a password to it. " +
				d.unverifiedHint(cv.Err) + " (#4.7.5)\n")
		}
		code := "(#4.7.5)"
		if f.refused != nil {
			code = "(#4.7.0)"
		}
		return refuse("I will not send a password without TLS: " + s.redact(f.reason()) + ". " + code + "\n")
	case !requiresTLS(d.policy) && !implicit:
		if f.refused != nil {
			// Plain text, as the policy allows; each report of a
			// message this connection carries says so.
			s.plain = "Sent without TLS: " + f.reason() + ".\n"
			return nil
		}
		return &tlsFallback{why: f.err, after: f.after}
	case f.refused != nil:
		s.quit()
		return policy(s.fail('Z', "Connected to ", " but STARTTLS was rejected"))
	}
	return refuse(f.what() + ": " + oneLine(f.errText()) + ". (#4.7.5)\n")
}

// unverifiedHint is what lets a login's password go to a relay whose
// certificate did not verify (why, the x509 error): the control/tlsroutes
// line that would give this delivery "encrypt", and, for a certificate
// of an unknown CA (a self-signed one, a company's own CA), control/tlsca.
// tlsroutes is looked up by the recipient host, as smtproutes: the line
// named has the key of the smtproutes line that routed the mail to the
// relay (the default key for a catch-all route, ":encrypt"), which covers
// all the mail that line sends there, unless a tlsroutes line with an
// empty policy matches the host before it, whose key is named then.
func (d *delivery) unverifiedHint(why error) string {
	key := strings.TrimSuffix(idna.Fold(d.host), ".") // no route: never, a login is a route's
	if rk, _, ok := d.cfg.Routes.find(d.host); ok {
		key = rk
	}
	t := Table{}
	maps.Copy(t, d.cfg.TLSRoutes)
	t[key] = TLSEncrypt
	if t.TLSPolicy(d.host, true) != TLSEncrypt {
		// A line with an empty policy, more specific than the route's
		// key, matches first: that line is the one to change.
		key, _, _ = d.cfg.TLSRoutes.find(d.host)
	}
	line := "a control/tlsroutes line " + oneLine(key) + ":encrypt"
	if key == "" {
		line += " (for every domain without a line of its own)"
	}
	var ua x509.UnknownAuthorityError
	if errors.As(why, &ua) {
		return "The certificate of its CA (its own, if self-signed) in control/tlsca, or " + line + ", allows it."
	}
	return strings.ToUpper(line[:1]) + line[1:] + " allows it."
}

// attach makes s carry this delivery: the 8-bit question is asked of its
// message, and a kept connection is offered back to d.keep when the peer
// accepts it.
func (d *delivery) attach(s *session) bool {
	s.stop = d.stop
	if !d.stop.attach(s.raw) {
		s.abort = true // not a byte more on it
		return false
	}
	var want *bool
	s.w.want8bit = func() bool {
		if want == nil {
			b := has8bit(d.msg)
			want = &b
		}
		return *want
	}
	s.park = nil
	if d.keep != nil {
		s.park = d.keep.park
	}
	return true
}

// transaction is MAIL, RCPT for each recipient, DATA. Any code below 400
// is success (go-smtp's Client wants 250 after MAIL, 25x after RCPT: other
// 2xx/3xx codes come back as an *smtp.SMTPError and count as accepted).
func (d *delivery) transaction(s *session, ext map[string]string) error {
	opts := &smtp.MailOptions{}
	if _, ok := ext["SMTPUTF8"]; ok && d.needsUTF8() {
		opts.UTF8 = true
	}
	overLimit := false // the declared size is over the limit the peer gave
	if limit, ok := ext["SIZE"]; ok {
		// The queue file's size: each line's CR, which the wire adds,
		// is not counted (as Postfix declares its queue file's).
		if st, err := d.msg.Stat(); err == nil && st.Size() > 0 {
			opts.Size = st.Size()
			n, err := strconv.ParseInt(limit, 10, 64)
			overLimit = err == nil && n > 0 && opts.Size > n
		}
	}
	s.uses++
	if _, ok := ext["PIPELINING"]; ok {
		s.w.ahead = d.pipelined(opts.UTF8)
	}
	if err := s.c.Mail(wireAddr(d.sender, opts.UTF8), opts); err != nil {
		c := s.code(err)
		// A message over the SIZE the peer gave, refused with 552, is
		// refused on any connection: no new one is made for it.
		final := c == 552 && overLimit
		if s.uses > 1 && (c < 0 || c >= 400) && !final {
			// A kept connection the peer gave up while it was idle, or
			// one on which it takes no more transactions (some peers
			// limit messages per connection, which qmail, connecting
			// once per message, never meets): nothing was accepted, so
			// the delivery is made again over a new connection, which
			// then decides.
			s.retry = true
			return s.died()
		}
		switch {
		case c < 0:
			return s.died()
		case c >= 500:
			s.quit()
			return s.fail('D', "Connected to ", " but sender was rejected")
		case c >= 400:
			s.quit()
			return s.fail('Z', "Connected to ", " but sender was rejected")
		}
	}
	// The recipients' reports are written once the transaction goes on:
	// a retry over a new connection must find nothing written.
	var reports strings.Builder
	defer func() {
		if !s.retry {
			d.out.WriteString(reports.String())
		}
	}()
	accepted := 0
	for _, rc := range d.rcpts {
		if strings.ContainsAny(rc, "\r\n") {
			reports.WriteString("hSorry, the recipient address contains a CR or LF. (#5.1.3)\n\x00")
			continue
		}
		c := 250
		if err := s.c.Rcpt(wireAddr(rc, opts.UTF8), nil); err != nil {
			c = s.code(err)
		}
		if (c < 0 || c >= 400) && s.uses > 1 {
			// Refused on a kept connection (a peer that limits what one
			// connection may carry), or the connection lost there:
			// nothing is accepted before the data, so a new connection
			// decides, as with MAIL.
			s.retry = true
			return s.died()
		}
		if c < 0 {
			return s.died()
		}
		switch {
		case c >= 500:
			reports.WriteString("h" + s.ip + " does not like recipient.\n" + s.said() + "\x00")
		case c >= 400:
			reports.WriteString("s" + s.ip + " does not like recipient.\n" + s.said() + "\x00")
		default:
			reports.WriteString("r\x00")
			accepted++
		}
	}
	if accepted == 0 {
		s.quit()
		// Each recipient's report quoted the reply already: qmail prints
		// the text once (outsmtptext empties it), so none here.
		return &report{letter: 'D', text: "Giving up on " + s.ip + ".\n"}
	}
	return s.body(d.msg)
}

// pipelined returns the lines the Client will write after MAIL when the
// peer offers PIPELINING: "RCPT TO:<addr>" for every recipient
// transaction asks for (not those with CR or LF, refused before any
// command), then DATA; nil when no recipient is left. They must be the
// Client's lines byte for byte (go-smtp's Rcpt without options, Data).
func (d *delivery) pipelined(smtputf8 bool) [][]byte {
	var lines [][]byte
	for _, rc := range d.rcpts {
		if !strings.ContainsAny(rc, "\r\n") {
			lines = append(lines, []byte("RCPT TO:<"+wireAddr(rc, smtputf8)+">\r\n"))
		}
	}
	if len(lines) == 0 {
		return nil
	}
	return append(lines, []byte("DATA\r\n"))
}

// wireAddr is address a as MAIL or RCPT says it (smtpAddr). In a
// transaction without SMTPUTF8 (the peer does not offer it, or an
// envelope address is not UTF-8: needsUTF8) an internationalized domain
// after an ASCII local part is written in its A-labels: the same address,
// in the only form such a peer must take (RFC 6531 §3.2; sent as UTF-8 it
// was refused by strict peers). A local part that is not ASCII has no such
// form and goes as it is, and so does a domain that is not UTF-8 (Latin-1:
// idna.ToASCII leaves it alone), byte for byte, as qmail sends it.
func wireAddr(a string, smtputf8 bool) string {
	if at := strings.LastIndexByte(a, '@'); !smtputf8 && at >= 0 && isASCII(a[:at]) && !isASCII(a[at+1:]) {
		a = a[:at+1] + idna.ToASCII(a[at+1:])
	}
	return smtpAddr(a)
}

// isASCII reports whether s has no byte above 127.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// smtpAddr is an address as qmail puts it between < and >: the local part
// quoted if needed; an address without '@' as it is.
func smtpAddr(a string) string {
	if !strings.Contains(a, "@") {
		return a
	}
	return address.Quote(a)
}

// needsUTF8 reports whether the transaction declares SMTPUTF8 to a peer
// that offers it: some envelope address is UTF-8 and not ASCII, and the
// sender is UTF-8. SMTPUTF8 promises UTF-8 (RFC 6531 §3.2): a sender with
// other bytes above 127 (Latin-1, as qmail passes on whatever bytes it was
// given) makes the transaction one as to a peer without SMTPUTF8
// (wireAddr), its bytes as they are, as qmail sends them, and so does an
// envelope whose only such addresses are not UTF-8. A recipient that is
// not UTF-8 beside one that is does not take SMTPUTF8 from the others: it
// goes as it is in their transaction, for the peer to take or refuse
// alone (without SMTPUTF8 a peer may refuse the sender, and every
// recipient with it).
func (d *delivery) needsUTF8() bool {
	if !utf8.ValidString(d.sender) {
		return false
	}
	for _, a := range append([]string{d.sender}, d.rcpts...) {
		if !isASCII(a) && utf8.ValidString(a) {
			return true
		}
	}
	return false
}

// has8bit reports whether the message has a byte >= 128. It reads a regular
// file with ReadAt (the offset is untouched); anything else counts as 8-bit.
func has8bit(f *os.File) bool {
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return true
	}
	bufs := copyBufs.Get().(*dataBufs)
	defer copyBufs.Put(bufs)
	buf := bufs.in[:]
	var off int64
	for {
		n, err := f.ReadAt(buf, off)
		for _, c := range buf[:n] {
			if c >= 0x80 {
				return true
			}
		}
		off += int64(n)
		if err == io.EOF {
			return false
		}
		if err != nil {
			return true
		}
	}
}
