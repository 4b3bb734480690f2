package smtpd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/sigcatch"
	"github.com/hqmail/hqmail/pkg/spawn"
	"github.com/hqmail/hqmail/pkg/threads"
)

// Main is qmail-smtpd. Without -listen it serves one session on fd 0/1
// (tcpserver, inetd, systemd socket with Accept=yes, sendmail -bs); with
// -listen ADDR it accepts connections itself until SIGTERM, SIGINT or
// SIGHUP (Listener.Stop). It returns the exit status: 0 after QUIT, 1 when
// the client went away without QUIT or after a fatal reply (421, timeout,
// bare LF) as qmail-smtpd, 100 for a usage error, 111 when the listener
// cannot start; -listen exits 0 once stopped.
//
// Operands (the words from the first one that is no flag on) are ignored
// in the one-session mode, with a warning, as qmail's qmail-smtpd never
// looks at its arguments: run scripts of SMTP AUTH patches pass some
// (qmail-smtpd host /bin/checkpassword /bin/true), and refusing them
// would drop every connection of a migrated server without a word to the
// client. With -listen, a mode qmail never had, they are a usage error.
func Main(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("qmail-smtpd", flag.ContinueOnError)
	// The flag package's own complaint ("flag provided but not
	// defined: -x") is said here with the program's name instead.
	fs.SetOutput(io.Discard)
	listen := fs.String("listen", "", "accept connections on `ADDR` (host:port) instead of serving fd 0/1")
	maxConns := fs.Int("c", 40, "with -listen: at most `N` sessions at once")
	relay := fs.Bool("r", false, "one session on fd 0/1: set RELAYCLIENT for clients listed in control/relayclients, as -listen does")
	usage := func() {
		fmt.Fprintln(stderr, "usage: qmail-smtpd [-r] | qmail-smtpd -listen ADDR [-c N]")
		fs.SetOutput(stderr)
		fs.PrintDefaults()
	}
	fs.Usage = func() {} // said below, after the error
	err := fs.Parse(args)
	fs.Usage = usage
	if errors.Is(err, flag.ErrHelp) {
		usage() // on stderr: stdout may be the client
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "qmail-smtpd: %v\n", err)
		usage()
		return 100
	}
	if err == nil && fs.NArg() > 0 && *listen != "" {
		fmt.Fprintf(stderr, "qmail-smtpd: -listen takes no arguments: %s\n", strings.Join(fs.Args(), " "))
		fs.Usage()
		return 100
	}
	if err != nil || *maxConns < 1 || (*relay && *listen != "") {
		if err == nil {
			fs.Usage()
		}
		return 100
	}
	if *listen == "" {
		count := false
		fs.Visit(func(f *flag.Flag) { count = count || f.Name == "c" })
		if count {
			// -c bounds -listen's sessions; alone it would be ignored.
			fmt.Fprintln(stderr, "qmail-smtpd: -c needs -listen")
			fs.Usage()
			return 100
		}
	}
	var where listenAddr
	if *listen != "" {
		where, err = parseListen(*listen)
		if errors.Is(err, errListenUsage) {
			// A malformed address is a usage error, not "cannot listen".
			fmt.Fprintf(stderr, "qmail-smtpd: %v\n", err)
			fs.Usage()
			return 100
		}
		if err != nil {
			fmt.Fprintf(stderr, "qmail-smtpd: fatal: %v\n", err)
			return 111
		}
	}
	root := qhome.Root()
	getenv := os.LookupEnv
	if *listen != "" {
		logger := log.New(stderr, "qmail-smtpd: ", 0)
		if err := os.Chdir(root); err != nil {
			logger.Printf("fatal: unable to switch to %s: %v", root, qerr.Bare(err))
			return 111
		}
		// Descriptors inherited from whoever started the listener (a
		// shell's, make's jobserver pipes) must not reach every
		// session's qmail-queue or $QMAILQUEUE program.
		spawn.CloseOnExecAll()
		l := &Listener{Root: root, Getenv: getenv, Log: logger, MaxConns: *maxConns}
		// TERM (make stop, systemd, kill), INT (^C) and HUP (the
		// terminal gone; there is nothing to reload, every session
		// reads the controls afresh) stop the listener as tcpserver
		// stops: no new clients, and the sessions running finish (at
		// their next command, see Listener.Stop), so that none loses
		// the 250 of a message already queued. A second signal cuts
		// those left. INT and HUP ignored at start (nohup, the
		// background of a non-interactive shell) stay ignored, as they
		// did when they killed it: a listener started under nohup
		// outlives its terminal.
		stopSigs := []os.Signal{syscall.SIGTERM}
		for _, s := range []os.Signal{syscall.SIGINT, syscall.SIGHUP} {
			if !signal.Ignored(s) {
				stopSigs = append(stopSigs, s)
			}
		}
		sigs := sigcatch.Catch(stopSigs...)
		go func() {
			for sig := range sigs {
				// Stop first: a log whose reader has stopped
				// reading blocks the write, and the socket
				// must close at once all the same.
				l.Stop()
				logger.Printf("caught %s", sigName(sig))
			}
		}()
		// A log reader that has gone (a logger restarted) must cost the
		// log lines, not the listener: with SIGPIPE at its default the
		// next line killed it, and every client after it was refused.
		// tcpserver ignores it too.
		signal.Ignore(syscall.SIGPIPE)
		ln, err := where.listen(&net.ListenConfig{})
		if err != nil {
			logger.Printf("fatal: %v", err)
			return 111
		}
		logger.Printf("listening on %s, root %s", where.shown(ln.Addr()), root)
		// A listener serves every session: a full process table (each
		// session's qmail-queue counts) must refuse a message, not end
		// them all. The one-session mode pays for no reserve.
		threads.Reserve(threads.Daemon)
		if err := l.Serve(ln); err != nil {
			logger.Printf("fatal: %v", err)
			return 111
		}
		return 0
	}
	return serveStdio(root, getenv, *relay, fs.Args(), stderr)
}

// errListenUsage marks a -listen address refused as a usage error (exit
// 100): no host:port, a port out of range or unknown, a zone where no
// IPv6 address takes one.
var errListenUsage = errors.New("usage")

// errNoZone is a -listen address whose zone names no interface of this
// host (exit 111, as an address this host does not have: the link may
// come later, a VPN or a USB adapter, and a supervisor's restart then
// succeeds). Go would ignore the zone and listen on the bare address.
var errNoZone = errors.New("no such interface")

// listenError is an address parseListen refuses: its text, and as
// Unwrap errListenUsage or errNoZone.
type listenError struct {
	kind error
	text string
}

func (e *listenError) Error() string { return e.text }
func (e *listenError) Unwrap() error { return e.kind }

func listenErr(kind error, format string, args ...any) error {
	return &listenError{kind: kind, text: fmt.Sprintf(format, args...)}
}

// listenAddr is a -listen address checked by parseListen.
type listenAddr struct {
	network string // for net.Listen: "tcp4", "tcp6" or "tcp" (see parseListen)
	address string // as given
	zone    string // of an IPv6 literal, as given ("eth0", "2"); "" without
}

// parseListen checks a -listen address and picks the family to listen in.
// The address written is the family listened on: Go's "tcp" would open
// 0.0.0.0 as a dual-stack IPv6 socket, and an administrator who wrote an
// IPv4 address (tcpserver's 0 is IPv4) would get IPv6 clients too.
//
//   - an IPv4 address, 0.0.0.0 and ::ffff:a.b.c.d included: "tcp4";
//   - an IPv6 address other than ::: "tcp6";
//   - no host (":25") and "[::]:25": "tcp", both families (Go sets
//     IPV6_V6ONLY off whatever net.ipv6.bindv6only says), as they always
//     were;
//   - a host name: "tcp", looked up when listening (Go takes its first
//     IPv4 address, else its first one).
//
// The port is decimal, 0 to 65535 (0: the kernel picks a free one, which
// the "listening on" line names), or a name of /etc/services (smtp).
// Errors wrap errListenUsage or errNoZone.
func parseListen(s string) (listenAddr, error) {
	a := listenAddr{network: "tcp", address: s}
	host, port, err := net.SplitHostPort(s)
	if err != nil || port == "" {
		return a, listenErr(errListenUsage, "-listen %q: not host:port (an IPv6 address in brackets: [::1]:25)", s)
	}
	if strings.Trim(port, "0123456789") == "" {
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return a, listenErr(errListenUsage, "-listen %q: port %s out of range (1-65535, or 0 for a free port)", s, port)
		}
	} else if c := port[0]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
		// "+25" (which LookupPort takes for 25), "-1", "0x19": a
		// service's name starts with a letter.
		return a, listenErr(errListenUsage, "-listen %q: port %q is no number and no service of /etc/services", s, port)
	} else if _, err := net.LookupPort("tcp", port); err != nil {
		return a, listenErr(errListenUsage, "-listen %q: port %q is no number and no service of /etc/services", s, port)
	}
	if host == "" {
		return a, nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		if strings.Contains(host, "%") {
			// Only an IPv6 address takes a zone; no host name has a %.
			return a, listenErr(errListenUsage, "-listen %q: %q is no IPv6 address with a zone (fe80::1%%eth0)", s, host)
		}
		return a, nil // a host name
	}
	a.zone = ip.Zone()
	switch {
	case ip.Is4In6() && a.zone != "":
		return a, listenErr(errListenUsage, "-listen %q: an IPv4 address takes no zone", s)
	case ip.Is4() || ip.Is4In6():
		a.network = "tcp4"
	case ip.IsUnspecified() && a.zone == "":
		// "tcp": both families.
	default:
		a.network = "tcp6"
	}
	if a.zone != "" && !interfaceExists(a.zone) {
		return a, listenErr(errNoZone, "-listen %q: no interface %q on this host", s, a.zone)
	}
	return a, nil
}

// interfaceExists reports whether zone names a network interface, or is
// the decimal index of one (as Go reads a zone it has no name for).
func interfaceExists(zone string) bool {
	if _, err := net.InterfaceByName(zone); err == nil {
		return true
	}
	n, err := strconv.Atoi(zone)
	if err != nil || n < 1 || zone != strconv.Itoa(n) {
		return false
	}
	_, err = net.InterfaceByIndex(n)
	return err == nil
}

// listen opens the listening socket of a through lc.
func (a listenAddr) listen(lc *net.ListenConfig) (net.Listener, error) {
	return lc.Listen(context.Background(), a.network, a.address)
}

// shown is the listening address as the "listening on" line gives it:
// addr, with the zone written in -listen when addr is link-local and came
// back without one (the kernel may not say which link a socket is bound
// to, and fe80::1 alone names no address).
func (a listenAddr) shown(addr net.Addr) string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok || ta.Zone != "" || a.zone == "" ||
		!(ta.IP.IsLinkLocalUnicast() || ta.IP.IsLinkLocalMulticast() || ta.IP.IsInterfaceLocalMulticast()) {
		return addr.String()
	}
	z := *ta
	z.Zone = a.zone
	return z.String()
}

// ignoredArgs is the warning for operands given to the one-session mode.
// A word made only of plainWord's bytes is shown as it is; any other,
// and the empty word, in double quotes with Go's escapes (strconv.Quote:
// \" \\ \t \xff), so that the words are told apart and every byte is
// seen. It is not the shell's quoting (a shell would expand the $ of
// "$HOME"): it shows the words, it is no command line to paste.
func ignoredArgs(args []string) string {
	words := make([]string, len(args))
	for i, a := range args {
		words[i] = a
		if a == "" || strings.IndexFunc(a, func(r rune) bool { return !plainWord(r) }) >= 0 {
			words[i] = strconv.Quote(a)
		}
	}
	return "warning: ignoring arguments " + strings.Join(words, " ") +
		", as qmail's qmail-smtpd does (SMTP AUTH is not offered; no checkpassword program is run)"
}

// plainWord reports whether r may appear in a word ignoredArgs shows
// unquoted: ASCII letters and digits and _ . / : = @ % + , - (a path, an
// address, a host:port, an option).
func plainWord(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return true
	}
	return strings.ContainsRune("_./:=@%+,-", r)
}

// sigName is the name of the signals -listen catches, as kill(1) takes it.
func sigName(sig os.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "TERM"
	case syscall.SIGINT:
		return "INT"
	case syscall.SIGHUP:
		return "HUP"
	}
	return sig.String()
}

// serveStdio serves the one session on fd 0/1.
// With relay set, a client listed in control/relayclients gets
// RELAYCLIENT unless the environment sets it already. ignored, the
// operands of the command line, are named in a warning (see Main).
func serveStdio(root string, getenv func(string) (string, bool), relay bool, ignored []string, stderr io.Writer) int {
	// A peer that goes away must give EPIPE, not kill us with SIGPIPE.
	signal.Ignore(syscall.SIGPIPE)
	in, restoreIn := pollable(0, "stdin")
	out, restoreOut := pollable(1, "stdout")
	logger := log.New(stderr, "qmail-smtpd: ", 0)
	if sameFile(2, 0) || sameFile(2, 1) {
		// inetd and systemd may hand the socket over as stderr too,
		// and socat's "stderr" or a 2>&1 puts it on the client's pipe:
		// anything written there would reach the client, before or
		// within the replies. Every diagnostic of the session goes
		// through logger.
		logger.SetOutput(io.Discard)
	}
	if len(ignored) > 0 {
		logger.Print(ignoredArgs(ignored))
	}
	peer := PeerFromEnv(getenv)
	fillFromSocket(&peer, getenv)
	conn := &stdioConn{in: in, out: out, local: stdioAddr(peer.LocalHost), remote: stdioAddr(peer.RemoteIP),
		restore: []func(){restoreIn, restoreOut}}
	if err := os.Chdir(root); err != nil {
		logger.Printf("unable to switch to %s: %v", root, qerr.Bare(err))
		io.WriteString(conn, textControls+"\r\n")
		conn.Close()
		return 1
	}
	if relay && peer.Relay == nil {
		rip, _ := netip.ParseAddr(peer.RemoteIP)
		ok, err := relayClient(control.Open(root), rip, logger)
		if err != nil {
			logger.Printf("unable to read control/relayclients: %v", qerr.Bare(err))
			io.WriteString(conn, textControls+"\r\n")
			conn.Close()
			return 1
		}
		if ok {
			empty := ""
			peer.Relay = &empty
		}
	}
	cfg, warn, err := LoadConfig(root, getenv)
	if err != nil {
		logger.Printf("%v", err)
		io.WriteString(conn, textControls+"\r\n")
		conn.Close()
		return 1
	}
	if warn != nil && !(errors.Is(warn, fs.ErrPermission) && !isSocket(0)) {
		// An unreadable servercert.pem is not worth a word when the
		// client is a local program on a pipe (sendmail -bs run by a
		// user, who may not read qmaild's key).
		logger.Printf("warning: %v", warn)
	}
	if !Serve(conn, cfg, peer, logger) {
		return 1
	}
	return 0
}

// pollable returns fd as an *os.File whose deadlines work: sockets and
// pipes are switched to non-blocking mode first so that the Go runtime
// polls them. Terminals and files are left alone. restore puts the
// blocking mode back for whoever shares the descriptor after us.
func pollable(fd int, name string) (f *os.File, restore func()) {
	restore = func() {}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err == nil {
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFSOCK, syscall.S_IFIFO:
			if syscall.SetNonblock(fd, true) == nil {
				restore = func() { syscall.SetNonblock(fd, false) }
			}
		}
	}
	return os.NewFile(uintptr(fd), name), restore
}

// isSocket reports whether fd is a socket.
func isSocket(fd int) bool {
	var st syscall.Stat_t
	return syscall.Fstat(fd, &st) == nil && st.Mode&syscall.S_IFMT == syscall.S_IFSOCK
}

// sameFile reports whether two descriptors refer to the same file
// (device and inode: a socket, a pipe, whichever end, or any other
// file), unless it is a terminal: there a person runs the session by
// hand and reads the diagnostics between the replies.
func sameFile(a, b int) bool {
	var sa, sb syscall.Stat_t
	if syscall.Fstat(a, &sa) != nil || syscall.Fstat(b, &sb) != nil {
		return false
	}
	if sa.Dev != sb.Dev || sa.Ino != sb.Ino {
		return false
	}
	_, err := unix.IoctlGetTermios(a, unix.TCGETS)
	return err != nil
}

// fillFromSocket supplies TCPREMOTEIP and TCPLOCALIP from the socket on fd
// 0 when the super-server did not set them (systemd, inetd).
func fillFromSocket(p *Peer, getenv func(string) (string, bool)) {
	if _, ok := getenv("TCPREMOTEIP"); !ok {
		if sa, err := syscall.Getpeername(0); err == nil {
			if ip := sockIP(sa); ip != "" {
				p.RemoteIP = ip
			}
		}
	}
	_, lh := getenv("TCPLOCALHOST")
	_, li := getenv("TCPLOCALIP")
	if !lh && !li {
		if sa, err := syscall.Getsockname(0); err == nil {
			if ip := sockIP(sa); ip != "" {
				p.LocalHost = ip
			}
		}
	}
}

func sockIP(sa syscall.Sockaddr) string {
	switch a := sa.(type) {
	case *syscall.SockaddrInet4:
		return netip.AddrFrom4(a.Addr).String()
	case *syscall.SockaddrInet6:
		return netip.AddrFrom16(a.Addr).Unmap().String()
	}
	return ""
}
