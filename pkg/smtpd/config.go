package smtpd

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hqmail/hqmail/pkg/address"
	"github.com/hqmail/hqmail/pkg/cdb"
	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/idna"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/tlsconf"
)

// Limits beyond qmail (qmail has none): they turn abuse into a clear reply
// instead of unbounded memory use.
const (
	// DefaultMaxRcpt is the number of accepted recipients per message;
	// the next RCPT gets "452 too many recipients (#4.5.3)".
	DefaultMaxRcpt = 1000
	// DefaultMaxLine is the longest line (command or message line, CRLF
	// included) read; a longer one ends the session with a clear error.
	DefaultMaxLine = 256 << 10
	// MaxAddr: a parsed MAIL/RCPT address this long or longer is refused
	// with 555, as qmail does.
	MaxAddr = 900
)

// Config is everything a session needs from control files and the
// environment. It is read once per process (under tcpserver) or once per
// connection (with -listen), so control changes apply to the next
// connection, as with qmail.
type Config struct {
	Root        string
	Greeting    string // smtpgreeting, else me
	LocalIPHost string // localiphost (an empty file: ""), else me
	// NoLocalIPHost: neither localiphost nor me exists, and no address
	// literal is replaced (qmail's liphostok).
	NoLocalIPHost bool
	Timeout       time.Duration // timeoutsmtpd
	Databytes     int64         // 0 = no limit
	RcptHosts     *RcptHosts    // nil: rcpthosts absent, accept every recipient
	BadMailFrom   map[string]bool
	TLS           *tls.Config // nil: no STARTTLS
	MaxRcpt       int
	MaxLine       int
	// QueueEnv is the environment of qmail-queue (QMAILQUEUE is read from
	// it); nil means the process environment.
	QueueEnv []string
	// Now is the clock of the Received line and the "250 ok" reply.
	Now func() time.Time
}

// ErrControls is the failure behind "421 unable to read controls".
var ErrControls = errors.New("unable to read controls")

// LoadConfig reads the control files of the tree at root. getenv supplies
// DATABYTES. A control file that exists but cannot be read (with
// rcpthosts, a morercpthosts.cdb that cannot be opened), or a missing
// smtpgreeting with no me, is ErrControls (qmail answers 421). Problems
// with control/servercert.pem are not fatal: they are returned as warn and
// the session runs without STARTTLS.
func LoadConfig(root string, getenv func(string) (string, bool)) (cfg *Config, warn error, err error) {
	d := control.Open(root)
	fail := func(e error) (*Config, error, error) {
		return nil, nil, fmt.Errorf("%w: %v", ErrControls, e)
	}
	cfg = &Config{Root: root, MaxRcpt: DefaultMaxRcpt, MaxLine: DefaultMaxLine, Now: time.Now}
	g, ok, e := d.LineOrMeRequired("smtpgreeting")
	if e != nil {
		return fail(e)
	}
	if !ok {
		return fail(errors.New("neither control/smtpgreeting nor control/me exists"))
	}
	cfg.Greeting = g
	if cfg.LocalIPHost, ok, e = d.LineOrMeRequired("localiphost"); e != nil {
		return fail(e)
	}
	cfg.NoLocalIPHost = !ok
	// Numbers as qmail reads them (control.ReadUint): leading digits, and
	// a line without any keeps the default.
	t, e := d.ReadUint("timeoutsmtpd", 1200)
	if e != nil {
		return fail(e)
	}
	if t == 0 {
		t = 1
	}
	// Beyond about 292 years a time.Duration overflows (and would turn
	// negative: every session dropped at once); a year is for ever here.
	cfg.Timeout = time.Duration(min(t, 365*24*3600)) * time.Second
	db, e := d.ReadUint("databytes", 0)
	if e != nil {
		return fail(e)
	}
	if v, ok := getenv("DATABYTES"); ok {
		db, _ = control.ScanUlong(v) // qmail: scan_ulong, no digits is 0
	}
	cfg.Databytes = int64(db)
	hosts, ok, e := d.ReadList("rcpthosts")
	if e != nil {
		return fail(e)
	}
	if ok {
		more := filepath.Join(d.Path, "morercpthosts.cdb")
		if e := probeCDB(more); e != nil {
			return fail(e)
		}
		cfg.RcptHosts = NewRcptHosts(hosts, more)
	}
	bmf, ok, e := d.ReadList("badmailfrom")
	if e != nil {
		return fail(e)
	}
	if ok {
		cfg.BadMailFrom = make(map[string]bool, len(bmf))
		for _, b := range bmf {
			cfg.BadMailFrom[idna.FoldKey(b)] = true
		}
	}
	cfg.TLS, warn = loadTLS(filepath.Join(d.Path, "servercert.pem"))
	return cfg, warn, nil
}

// probeCDB checks, as qmail-smtpd's rcpthosts_init does by opening it
// before the greeting, that the morercpthosts.cdb at path can be used: one
// that exists but cannot be opened, or whose header cannot be read (a
// directory, a FIFO, a file shorter than a cdb's header), is a control
// read failure of the whole session, not of the first RCPT that needs it.
// A missing file is fine. The database is still opened afresh at each
// RCPT that needs it (RcptHosts.Allowed), so one that fails later costs
// that RCPT a 421.
func probeCDB(path string) error {
	db, err := cdb.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if errors.Is(err, cdb.ErrFormat) {
			return fmt.Errorf("%s: %w", path, err)
		}
		return err
	}
	return db.Close()
}

// loadTLS loads control/servercert.pem: the PEM certificate chain and the
// private key in one file (the convention of qmail's TLS patches). A
// missing file means no STARTTLS and no warning. A file that others than
// its owner may read is used, with a warning: its private key is exposed.
func loadTLS(path string) (*tls.Config, error) {
	// Opened as every control file is: a FIFO or a device put there
	// (a link to /dev/zero) would hold the session before its greeting,
	// past every time-out, or read without end.
	f, err := qhome.OpenRegular(path, os.O_RDONLY)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("servercert.pem: %w; STARTTLS disabled", qerr.Bare(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("servercert.pem: %w; STARTTLS disabled", qerr.Bare(err))
	}
	pem, err := qhome.ReadCapped(f)
	if err != nil {
		return nil, fmt.Errorf("servercert.pem: %w; STARTTLS disabled", qerr.Bare(err))
	}
	cert, err := tls.X509KeyPair(pem, pem)
	if err != nil {
		// crypto/tls names a certificate where it looked for the key
		// ("found a certificate rather than a key"): a file with the
		// certificate alone is the usual mistake, said plainly.
		if bytes.Contains(pem, []byte("-----BEGIN CERTIFICATE-----")) && !bytes.Contains(pem, []byte("PRIVATE KEY-----")) {
			return nil, fmt.Errorf("servercert.pem: it holds a certificate but no private key (both go in the one file); STARTTLS disabled")
		}
		return nil, fmt.Errorf("servercert.pem: %v; STARTTLS disabled", err)
	}
	// The TLS 1.2 suites include the RSA key exchange ones, as
	// qmail-remote's do (tlsconf.Suites): an old client's mail is taken
	// encrypted, not in clear.
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tlsconf.MinVersion, CipherSuites: tlsconf.Suites}
	if m := fi.Mode().Perm(); m&0o077 != 0 {
		return cfg, fmt.Errorf("servercert.pem: mode %04o lets others than its owner read its private key", m)
	}
	return cfg, nil
}

// RcptHosts is control/rcpthosts plus control/morercpthosts.cdb.
type RcptHosts struct {
	set  map[string]bool // entries in idna.Fold form
	more string          // path of morercpthosts.cdb
}

// NewRcptHosts builds the rule from the rcpthosts lines and the path of
// morercpthosts.cdb (which need not exist).
func NewRcptHosts(lines []string, morePath string) *RcptHosts {
	h := &RcptHosts{set: make(map[string]bool, len(lines)), more: morePath}
	for _, l := range lines {
		h.set[idna.Fold(l)] = true
	}
	return h
}

// Allowed reports whether a recipient address may be accepted without
// RELAYCLIENT: an address without '@' is; otherwise its domain, or a
// suffix of it starting at a '.', must be listed in rcpthosts or be a key
// of morercpthosts.cdb. A nil RcptHosts (no rcpthosts file) allows
// everything. err is set when morercpthosts.cdb exists but cannot be read.
//
// Domains are compared in idna.Fold form: ASCII letters fold, as in
// qmail, and either spelling of an IDN matches an entry in either (qmail
// compares the bytes, and a client that cannot send UTF-8 without
// SMTPUTF8 could reach a domain listed as "bücher.example" by neither
// spelling). morercpthosts.cdb keys are in that form since qmail-newmrh
// writes them so; a table written before (or by qmail's qmail-newmrh)
// holds the lowercased bytes, which are looked up too.
func (h *RcptHosts) Allowed(addr string) (bool, error) {
	if h == nil {
		return true, nil
	}
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return true, nil
	}
	dom := idna.Fold(addr[i+1:])
	var suffixes []string
	for j := 0; j < len(dom); j++ {
		if j == 0 || dom[j] == '.' {
			if h.set[dom[j:]] {
				return true, nil
			}
			suffixes = append(suffixes, dom[j:])
		}
	}
	if raw := address.LowerASCII(addr[i+1:]); raw != dom {
		for j := 0; j < len(raw); j++ {
			if j == 0 || raw[j] == '.' {
				suffixes = append(suffixes, raw[j:])
			}
		}
	}
	if len(suffixes) == 0 {
		return false, nil
	}
	db, err := cdb.Open(h.more)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	defer db.Close()
	for _, s := range suffixes {
		_, found, err := db.Get([]byte(s))
		if err != nil {
			return false, err
		}
		if found {
			return true, nil
		}
	}
	return false, nil
}

// BadFrom reports whether sender is listed in badmailfrom, as the whole
// address or as "@domain", ignoring the case of ASCII letters, and with
// either spelling of an IDN matching the other (idna.FoldKey).
func (c *Config) BadFrom(sender string) bool {
	if len(c.BadMailFrom) == 0 {
		return false
	}
	a := idna.FoldKey(sender)
	if c.BadMailFrom[a] {
		return true
	}
	if i := strings.LastIndexByte(a, '@'); i >= 0 && c.BadMailFrom[a[i:]] {
		return true
	}
	return false
}

// Peer is what is known about the client, from tcpserver's environment or
// from the socket.
type Peer struct {
	RemoteIP   string  // TCPREMOTEIP, default "unknown"
	RemoteHost string  // TCPREMOTEHOST, default "unknown"
	RemoteInfo *string // TCPREMOTEINFO, nil when unset
	LocalHost  string  // TCPLOCALHOST, else TCPLOCALIP, else "unknown"
	Relay      *string // RELAYCLIENT, nil when unset
	// LocalNamed is set when LocalHost is a name tcpserver gave
	// (TCPLOCALHOST) or -listen's control/me, and is given to qmail-queue
	// as TCPLOCALHOST; an address put there in its stead (TCPLOCALIP, the
	// socket's) is for the Received line only: tcpserver, finding no
	// name, sets no TCPLOCALHOST, and qmail passes its environment on.
	LocalNamed bool
}

// PeerFromEnv reads the tcpserver environment.
func PeerFromEnv(getenv func(string) (string, bool)) Peer {
	def := func(name, d string) string {
		if v, ok := getenv(name); ok {
			return v
		}
		return d
	}
	p := Peer{
		RemoteIP:   def("TCPREMOTEIP", "unknown"),
		RemoteHost: def("TCPREMOTEHOST", "unknown"),
	}
	if v, ok := getenv("TCPREMOTEINFO"); ok {
		p.RemoteInfo = &v
	}
	if v, ok := getenv("TCPLOCALHOST"); ok {
		p.LocalHost, p.LocalNamed = v, true
	} else {
		p.LocalHost = def("TCPLOCALIP", "unknown")
	}
	if v, ok := getenv("RELAYCLIENT"); ok {
		p.Relay = &v
	}
	return p
}
