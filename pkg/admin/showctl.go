package admin

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/hqmail/hqmail/pkg/address"
	"github.com/hqmail/hqmail/pkg/cdb"
	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/hold"
	"github.com/hqmail/hqmail/pkg/idna"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
)

// ctlKind says how a control file is read.
type ctlKind int

const (
	kLine       ctlKind = iota // first line, default text
	kMe                        // first line, default me, else the file name
	kMeRequired                // first line, default me, else missing: its reader stops
	kMeOptional                // first line, default me, else its use is off (def says what then)
	kInt                       // number read as control.ReadInt (at most 2^31-1), default def
	kUint                      // number read as control.ReadUint (at most 2^62), default def
	kList                      // list lines, default text
	kHold                      // hold flag
	kStartHeld                 // a hold file applied at start (startheld), shown as kHold
	kSecret                    // contents never shown (passwords, keys)
	kCdb                       // a cdb compiled from the file without .cdb
	kListMe                    // list, default me (locals)
	kListTrim                  // list whose reader trims blanks and a CR from each value (routes, addresses)
	kSecretList                // contents never shown, read as list lines (smtpauth)
	kLinkWant                  // qmailctl's record of the last link event (linkwant, linkwant.boot): its first line, default text
	kLock                      // the control lock's file (lock): no contents, only whether it is a file closed to others
)

// ctlFile describes one control file for qmail-showctl.
type ctlFile struct {
	name    string
	kind    ctlKind
	def     string // default value (kLine, kInt) or default text
	reader  string // programs reading it
	meaning string
}

// controlFiles lists every control file qmail-showctl knows: qmail's
// (spec/injection.md §4) and the ones this project adds. It is the one
// table of how each is read: qmail-install -check asks it through
// ControlValueKind.
var controlFiles = []ctlFile{
	{"me", kLine, "", "every program", "this host's fully qualified name; the default of most host names"},
	{"aliases", kLine, "/etc/aliases", "newaliases", "path of the sendmail-style aliases file"},
	{"badmailfrom", kList, "any MAIL FROM is allowed", "qmail-smtpd", "rejected envelope senders and @domains"},
	{"bounceformat", kLine, "qsbmf", "qmail-send", "bounce format: qsbmf (qmail's) or dsn"},
	{"bouncefrom", kLine, "MAILER-DAEMON", "qmail-send", "user part of the bounce sender"},
	{"bouncehost", kMe, "", "qmail-send", "host part of the bounce sender"},
	{"concurrencylocal", kInt, strconv.Itoa(qhome.DefConcurrencyLocal), "qmail-send", "simultaneous local deliveries (at most " + strconv.Itoa(qhome.SpawnLimit) + ")"},
	{"concurrencyremote", kInt, strconv.Itoa(qhome.DefConcurrencyRemote), "qmail-send", "simultaneous remote deliveries (at most " + strconv.Itoa(qhome.RemoteSpawnLimit) + ")"},
	{"databytes", kUint, "0", "qmail-smtpd", "largest message accepted, in bytes; 0 is no limit"},
	{"defaultdelivery", kList, "the start scripts use ./Maildir/", "start scripts", "qmail-start's first argument: the default .qmail lines"},
	{"defaultdomain", kMe, "", "qmail-inject", "appended to host names without a dot"},
	{"defaulthost", kMe, "", "qmail-inject", "appended to addresses without a host"},
	{"doublebouncehost", kMe, "", "qmail-send", "host of the double-bounce recipient"},
	{"doublebounceto", kLine, "postmaster", "qmail-send", "user receiving double bounces"},
	{"envnoathost", kMe, "", "qmail-send", "domain for recipients without @"},
	{"helohost", kMeRequired, "", "qmail-remote", "HELO/EHLO argument"},
	{"holdlocal", kHold, "", "qmail-send", "hold flag of the local channel, read at start and on HUP; see qmailctl"},
	{"holdremote", kHold, "", "qmail-send", "hold flag of the remote channel (all, or a list of domains), read at start and on HUP; see qmailctl"},
	{"idhost", kMe, "", "qmail-inject", "host part of Message-ID"},
	{"linkwant", kLinkWant, "no link event recorded: a boot hold (qmailctl boot, startheld) holds", "qmailctl, qmail-start",
		"what the last link event wants, hold or release (qmailctl linkwant, for the network hooks and qmail-linkwatch); a release of this boot lifts the boot hold"},
	{"linkwant.boot", kLinkWant, "no boot id recorded: a release in linkwant counts when written after the boot time", "qmailctl, qmail-start",
		"the boot id linkwant was last recorded in, telling the boot hold whether its release is of this boot"},
	{"localiphost", kMeOptional, "qmail-smtpd leaves [local ip] in recipient addresses as it is", "qmail-smtpd", "replaces [local ip] in recipient addresses"},
	{"localcache", kInt, "5", "qmail-lspawn", "seconds an idle kept qmail-local is kept for the next delivery (0: one per delivery)"},
	{"locals", kListMe, "", "qmail-send", "domains delivered locally"},
	{control.LockName, kLock, "absent: made by the first qmailctl hold or release", "qmailctl, qmail-start",
		"no setting: its flock(2) is the control lock every hold, release, linkwant, boot and startheld takes; mode 0600, root's or the tree owner's"},
	{"morercpthosts", kList, "no extra rcpthosts", "qmail-newmrh", "extra rcpthosts, compiled into morercpthosts.cdb"},
	{"morercpthosts.cdb", kCdb, "", "qmail-smtpd", "compiled morercpthosts"},
	{"outgoingip", kListTrim, "the kernel chooses", "qmail-remote", "local addresses to connect from"},
	{"percenthack", kList, "no %-hack domains", "qmail-send", "domains whose user%host@domain is rewritten"},
	{"plusdomain", kMe, "", "qmail-inject", "appended to host names ending in +"},
	{"queuelifetime", kInt, "604800", "qmail-send", "seconds a message may stay in the queue (time all of its channel was held excluded)"},
	{"rcpthosts", kList, "every recipient domain is accepted (open relay!)", "qmail-smtpd", "domains accepted from SMTP"},
	{"relayclients", kListTrim, relayDefault, "qmail-smtpd -listen or -r", "clients allowed to relay"},
	{"resolvconf", kLine, "/etc/resolv.conf", "qmail-remote", "resolver configuration used for every DNS lookup"},
	{"servercert.pem", kSecret, "STARTTLS is not offered", "qmail-smtpd", "TLS certificate and key"},
	{"smtpauth", kSecretList, "no smarthost login", "qmail-remote", "relay:user:password logins for smarthosts (mode 0600)"},
	{"smtpcache", kInt, "5", "qmail-rspawn", "seconds an idle SMTP connection is kept for the next message (0: one per message)"},
	{"smtpgreeting", kMeRequired, "", "qmail-smtpd", "220 greeting text"},
	{"smtproutes", kListTrim, "no artificial routes; MX records are used", "qmail-remote", "domain:relay[:port] routes"},
	{"startheld", kStartHeld, "", "qmail-start", "hold of the remote channel (all, or a list of domains) made at start unless a network hook " +
		"released it since boot: holdremote made with its contents, or edited as qmailctl hold remote does; see qmail-start"},
	{"timeoutconnect", kInt, "60", "qmail-remote", "seconds to wait for a connection"},
	{"timeoutremote", kInt, "1200", "qmail-remote", "seconds to wait for each SMTP read or write"},
	{"timeoutsmtpd", kUint, "1200", "qmail-smtpd", "seconds to wait for each client read and each reply write"},
	{"tlsca", kSecret, "the system's root certificates", "qmail-remote", "PEM certificates trusted for verifying remote servers"},
	{"tlsroutes", kListTrim, "STARTTLS when offered", "qmail-remote", "per-destination TLS policy"},
	{"virtualdomains", kList, "no virtual domains", "qmail-send", "address or domain:prepend rewriting"},
}

// relayDefault is what qmail-smtpd does without control/relayclients:
// every client at a loopback address relays, and a proxy or port
// forwarder on this host makes every client one (pkg/smtpd relayClient).
const relayDefault = "127.0.0.1 and ::1: clients at this host's loopback addresses relay, and so does every client a proxy or " +
	"port forwarder on this host passes on (stunnel, haproxy, sslh, a container's port forwarder), as it connects from 127.0.0.1; " +
	"list the clients that may relay in this file (an empty file for none)"

// ShowctlMain is qmail-showctl: the compiled-in-like settings of the tree at
// root, then every known control file with its value or default and its
// reader, then the files in control/ it does not know. Exit 0, or 111 when
// a file or the control directory cannot be read, or when the report
// cannot be written ("qmail-showctl: fatal: unable to write output: ..."
// on stderr, as qmail-qread and qmail-qstat say it).
func ShowctlMain(root string, stdout, stderr io.Writer) int {
	w := bufio.NewWriter(stdout)
	code := 0
	fmt.Fprintf(w, "qmail home directory: %s.\n", root)
	fmt.Fprintf(w, "user-ext delimiter: -.\n")
	fmt.Fprintf(w, "paternalism (in decimal): 2.\n")
	fmt.Fprintf(w, "silent concurrency limit: local %d, remote %d.\n", qhome.SpawnLimit, qhome.RemoteSpawnLimit)
	fmt.Fprintf(w, "subdirectory split: %d.\n", qhome.Split)
	ids, err := qhome.LoadIDs(root)
	if err != nil {
		fmt.Fprintf(w, "user ids: unknown (unable to read %s: %v).\n", qhome.IDsFile, qerr.Bare(err))
		code = 111
	} else {
		f := ids.Format()
		var users, groups []string
		for _, l := range strings.Split(f, "\n") {
			p := strings.Fields(l)
			switch {
			case len(p) == 4 && p[0] == "user":
				users = append(users, p[1]+" "+p[2])
			case len(p) == 3 && p[0] == "group":
				groups = append(groups, p[1]+" "+p[2])
			}
		}
		fmt.Fprintf(w, "user ids: %s.\n", strings.Join(users, ", "))
		fmt.Fprintf(w, "group ids: %s.\n", strings.Join(groups, ", "))
		if ids.Shared {
			fmt.Fprintf(w, "shared tree: every program runs as uid %d, no uid switching.\n", ids.Qmails.UID)
		}
	}

	d := control.Open(root)
	fmt.Fprintf(w, "\ncontrol directory: %s.\n", d.Path)
	known := map[string]bool{}
	shared := ids != nil && ids.Shared
	for _, cf := range controlFiles {
		known[cf.name] = true
		if err := showFile(w, d, cf, shared); err != nil {
			fmt.Fprintf(w, "%s: unable to read: %v\n", cf.name, qerr.Bare(err))
			code = 111
		}
	}
	ents, err := os.ReadDir(d.Path)
	if err != nil {
		fmt.Fprintf(w, "\nunable to list the control directory: %v\n", qerr.Bare(err))
		code = 111
	} else {
		var unknown []string
		for _, e := range ents {
			if !known[e.Name()] {
				unknown = append(unknown, e.Name())
			}
		}
		sort.Strings(unknown)
		for _, n := range unknown {
			fmt.Fprintf(w, "%s: I have no idea what this file does.\n", n)
		}
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintf(stderr, "qmail-showctl: fatal: unable to write output: %v\n", err)
		return 111
	}
	return code
}

// readNumber is the value the programs get from a number file whose first
// line is s: its leading digits (how many: digits), saturated as the
// reader of kind saturates them, control.ReadInt at 2^31-1 (kInt) or
// control.ReadUint at 2^62 (kUint); capped says a larger number was
// written.
func readNumber(s string, kind ctlKind) (n uint64, digits int, capped bool) {
	n, digits = control.ScanUlong(s)
	limit := uint64(1<<31 - 1)
	if kind == kUint {
		limit = 1 << 62
	}
	// ScanUlong stops counting at 2^62: the digits tell whether that is
	// the number written or a larger one.
	if v, err := strconv.ParseUint(s[:digits], 10, 64); digits > 0 && (err != nil || v > limit) {
		return limit, digits, true
	}
	return n, digits, false
}

// numberNote says what the reader of a number file does with its value
// beyond reading it.
func numberNote(name string, n uint64) string {
	switch name {
	case "timeoutconnect", "timeoutremote", "timeoutsmtpd":
		if n == 0 {
			return " (taken as 1)"
		}
		if name == "timeoutsmtpd" && n > smtpdMaxTimeout {
			return fmt.Sprintf(" (qmail-smtpd waits at most a year, %d)", smtpdMaxTimeout)
		}
		return ""
	}
	return concurrencyNote(name, n)
}

// smtpdMaxTimeout is the longest timeoutsmtpd qmail-smtpd uses, in
// seconds (pkg/smtpd LoadConfig: a year).
const smtpdMaxTimeout = 365 * 24 * 3600

// concurrencyNote says what qmail-send makes of a concurrency value: the
// spawners' limits cap it, and 0 stops the channel.
func concurrencyNote(name string, n uint64) string {
	limit := map[string]uint64{"concurrencylocal": qhome.SpawnLimit, "concurrencyremote": qhome.RemoteSpawnLimit}[name]
	switch {
	case limit == 0:
		return ""
	case n == 0:
		return " (no " + strings.TrimPrefix(name, "concurrency") + " delivery starts)"
	case n > limit:
		return fmt.Sprintf(" (qmail-send uses %d, the most its spawner runs)", limit)
	}
	return ""
}

// showFile prints the entry of cf; shared says the tree is one user's
// (for the owner advice of smtproutes' warnings).
func showFile(w io.Writer, d *control.Dir, cf ctlFile, shared bool) error {
	head := fmt.Sprintf("%s (%s: %s)", cf.name, cf.reader, cf.meaning)
	path := filepath.Join(d.Path, cf.name)
	switch cf.kind {
	case kLine:
		s, ok, err := d.ReadLine(cf.name)
		if err != nil {
			return err
		}
		if !ok {
			if cf.def == "" {
				fmt.Fprintf(w, "%s: (Missing.) no default.\n", head)
			} else {
				fmt.Fprintf(w, "%s: (Default.) %s.\n", head, cf.def)
			}
			return nil
		}
		if m, ok := emptyMeans[cf.name]; ok && s == "" {
			fmt.Fprintf(w, "%s: (empty): %s.\n", head, m)
			return nil
		}
		fmt.Fprintf(w, "%s: %s\n", head, value(s))
		crWarning(w, path, s)
	case kMe, kMeRequired, kMeOptional:
		s, ok, err := d.ReadLine(cf.name)
		if err != nil {
			return err
		}
		if ok {
			fmt.Fprintf(w, "%s: %s\n", head, value(s))
			crWarning(w, path, s)
			return nil
		}
		me, meOK, err := d.Me()
		switch {
		case err != nil:
			return err
		case meOK:
			fmt.Fprintf(w, "%s: (Default.) me: %s.\n", head, me)
		case cf.kind == kMe:
			fmt.Fprintf(w, "%s: (Default.) no me either: the literal %s.\n", head, cf.name)
		case cf.kind == kMeOptional:
			// qmail-smtpd works on without it (qmail's liphostok).
			fmt.Fprintf(w, "%s: (Missing.) no me either: %s.\n", head, cf.def)
		default:
			fmt.Fprintf(w, "%s: (Missing.) no me either: %s cannot work.\n", head, cf.reader)
		}
	case kInt, kUint:
		s, ok, err := d.ReadLine(cf.name)
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintf(w, "%s: (Default.) %s.\n", head, cf.def)
			return nil
		}
		n, digits, capped := readNumber(s, cf.kind)
		var why []string
		if digits < len(s) {
			why = append(why, "the leading digits count")
		}
		if capped {
			why = append(why, fmt.Sprintf("larger numbers count as %d", n))
		}
		switch {
		case digits == 0:
			fmt.Fprintf(w, "%s: %q is not a number; (Default.) %s.\n", head, s, cf.def)
		case len(why) > 0:
			fmt.Fprintf(w, "%s: %d (from %q: %s)%s.\n", head, n, s, strings.Join(why, "; "), numberNote(cf.name, n))
		default:
			fmt.Fprintf(w, "%s: %s%s.\n", head, s, numberNote(cf.name, n))
		}
	case kList, kListMe, kListTrim:
		lines, ok, err := d.ReadList(cf.name)
		if err != nil {
			return err
		}
		if !ok && cf.kind == kListMe {
			me, meOK, err := d.Me()
			switch {
			case err != nil:
				return err
			case meOK:
				fmt.Fprintf(w, "%s: (Default.) me: %s.\n", head, me)
			default:
				fmt.Fprintf(w, "%s: (Missing.) no me either: %s cannot work.\n", head, cf.reader)
			}
			return nil
		}
		var routes []RouteExtra
		if cf.name == "smtproutes" && ok {
			// Read again for the line numbers (the same file, the same
			// list rule); a login written after the port is not shown.
			b, err := qhome.ReadRegular(path)
			if err != nil {
				return err
			}
			routes = SmtproutesExtras(b)
			lines = shownRoutes(b)
		}
		switch {
		case !ok:
			fmt.Fprintf(w, "%s: (Default.) %s.\n", head, cf.def)
		case len(lines) == 0:
			fmt.Fprintf(w, "%s: (empty list)\n", head)
		default:
			fmt.Fprintf(w, "%s:\n", head)
			for _, l := range lines {
				fmt.Fprintf(w, "  %s\n", l)
			}
		}
		if cf.kind != kListTrim {
			crWarning(w, path, lines...)
		}
		switch cf.name {
		case "outgoingip":
			outgoingWarnings(w, lines)
		case "smtproutes":
			for _, r := range routes {
				fmt.Fprintf(w, "  warning: control/smtproutes line %d: %s\n", r.Line, r.Warning(shared))
			}
		case "percenthack":
			if err := percentRelays(w, d, lines); err != nil {
				return err
			}
		}
	case kHold, kStartHeld:
		// startheld is read as holdremote is (pkg/ctl StartHeld): empty
		// or without a domain, everything is held at start.
		h, err := hold.Read(d.Path, cf.name)
		if err != nil {
			return err
		}
		if !h.Set {
			fmt.Fprintf(w, "%s: (Default.) not held.\n", head)
			return nil
		}
		fmt.Fprintf(w, "%s: %s.\n", head, h.Describe())
		for _, j := range h.JunkWarnings(cf.name) {
			fmt.Fprintf(w, "  warning: %s\n", j)
		}
	case kLinkWant:
		// Read as qmailctl reads it: no link followed, a regular file
		// of root, the tree's owner or this user.
		b, err := hold.ReadLinkWant(filepath.Dir(d.Path), filepath.Join("control", cf.name))
		var fe *hold.ForeignLinkWantError
		switch {
		case errors.Is(err, fs.ErrNotExist):
			fmt.Fprintf(w, "%s: (Default.) %s.\n", head, cf.def)
		case errors.As(err, &fe):
			fmt.Fprintf(w, "%s: not taken: %v.\n", head, err)
		case err != nil:
			return err
		default:
			// The whole file, trimmed, as qmailctl takes it.
			v := strings.TrimSpace(string(b))
			switch {
			case cf.name == "linkwant" && v != "hold" && v != "release":
				fmt.Fprintf(w, "%s: %q is neither hold nor release: qmailctl linkwant apply applies nothing.\n", head, v)
			case strings.ContainsAny(v, "\n\r\t"):
				fmt.Fprintf(w, "%s: %q.\n", head, v)
			default:
				fmt.Fprintf(w, "%s: %s\n", head, value(v))
			}
		}
	case kLock:
		// As qmailctl opens it (pkg/ctl lockDir): no link followed, a
		// regular file that only its owner can open.
		fi, err := os.Lstat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			fmt.Fprintf(w, "%s: (Default.) %s.\n", head, cf.def)
		case err != nil:
			return err
		case !fi.Mode().IsRegular():
			fmt.Fprintf(w, "%s: not a regular file: qmailctl and qmail-start refuse it; remove it.\n", head)
		case fi.Mode().Perm()&0o077 != 0:
			fmt.Fprintf(w, "%s: present, mode %04o: others can open it and hold the lock (chmod 600).\n", head, fi.Mode().Perm())
		default:
			fmt.Fprintf(w, "%s: present, mode %04o.\n", head, fi.Mode().Perm())
		}
	case kSecret, kSecretList:
		fi, err := os.Stat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			fmt.Fprintf(w, "%s: (Default.) %s.\n", head, cf.def)
		case err != nil:
			return err
		default:
			fmt.Fprintf(w, "%s: present, %d bytes, mode %04o (contents not shown).\n", head, fi.Size(), fi.Mode().Perm())
		}
	case kCdb:
		fi, err := os.Stat(path)
		src := strings.TrimSuffix(path, ".cdb")
		si, serr := os.Stat(src)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			fmt.Fprintf(w, "%s: (Default.) absent.\n", head)
			if serr == nil {
				fmt.Fprintf(w, "Oops! %s exists but %s does not; run qmail-newmrh.\n", filepath.Base(src), cf.name)
			}
		case err != nil:
			return err
		default:
			fmt.Fprintf(w, "%s: present.\n", head)
			if serr == nil && fi.ModTime().Before(si.ModTime()) {
				fmt.Fprintf(w, "Oops! %s is older than %s.\n", cf.name, filepath.Base(src))
			}
		}
	}
	return nil
}

// outgoingWarnings names, below control/outgoingip's entry, each line
// that is no IP address, which makes qmail-remote defer every delivery,
// and each line after the first of its family, which it ignores.
func outgoingWarnings(w io.Writer, lines []string) {
	var have4, have6 bool
	for _, l := range lines {
		a := control.OutgoingAddr(l)
		switch {
		case !a.IsValid():
			fmt.Fprintf(w, "  warning: %q is not an IP address: qmail-remote defers every delivery "+
				"(Unable to read control files)\n", l)
		case a.Is4() && have4, a.Is6() && have6:
			fmt.Fprintf(w, "  warning: %s is ignored: only the first address of each family is used\n", l)
		case a.Is4():
			have4 = true
		default:
			have6 = true
		}
	}
}

// crWarning prints, below a file's entry, a warning when one of its
// values as read (vals) ends in a CR: the file was saved with CRLF line
// endings. The reading rules keep that CR as part of the value, as qmail
// does (only spaces and tabs are trimmed), so a domain in locals or
// rcpthosts no longer matches and me puts the CR into replies and
// headers. Files whose CR changes nothing get no warning: a number (only
// its leading digits count), the lists whose reader trims each value
// (kListTrim: smtproutes, tlsroutes, outgoingip, relayclients) and the
// hold flags; nor do the files whose contents are not shown (smtpauth,
// servercert.pem, tlsca, the .cdb).
func crWarning(w io.Writer, path string, vals ...string) {
	for _, v := range vals {
		if strings.HasSuffix(v, "\r") {
			fmt.Fprintf(w, "  warning: this file has CRLF line endings (saved by a Windows editor?); "+
				"the CR is part of the value, as in qmail; %s\n", control.CRLFAdvice(path))
			return
		}
	}
}

// ValueKind is how hqmail's programs take the values of a control file,
// for a check of what a CR at the end of a line does to them.
type ValueKind int

const (
	// NoValues: the file is not read as values in lines (the hold flags,
	// whose reader drops a CR, startheld, the PEM and cdb files), or its
	// name is not known.
	NoValues ValueKind = iota
	// FirstLine: the value is the first line (control.FirstLine); a CR
	// ending it is part of the value.
	FirstLine
	// ListLines: each line but empty and comment lines is a value
	// (control.ListLines); a CR ending one is part of it.
	ListLines
	// TrimmedLines: list lines whose reader trims blanks and a CR from
	// each value (smtproutes, tlsroutes, outgoingip, relayclients): a
	// CR changes nothing.
	TrimmedLines
	// Number: the leading digits of the first line; a CR after them
	// changes nothing.
	Number
)

// ControlValueKind returns how the programs take the values of control
// file name (from controlFiles), and whether the name is known there.
func ControlValueKind(name string) (ValueKind, bool) {
	for _, cf := range controlFiles {
		if cf.name != name {
			continue
		}
		switch cf.kind {
		case kLine, kMe, kMeRequired, kMeOptional:
			return FirstLine, true
		case kList, kListMe, kSecretList:
			return ListLines, true
		case kListTrim:
			return TrimmedLines, true
		case kInt, kUint:
			return Number, true
		}
		return NoValues, true
	}
	return NoValues, false
}

// emptyMeans says, for a file whose empty first line is not just an
// empty value, what its reader does then.
var emptyMeans = map[string]string{
	"doublebounceto": "double bounces are discarded",
}

// value renders a single value: "(empty)" for an existing empty file.
func value(s string) string {
	if s == "" {
		return "(empty)."
	}
	return s + "."
}

// RouteExtra is a control/smtproutes line holding text qmail-remote does
// not use as it was written: a login after the port, as qmail's AUTH
// patches read it (":smtp.provider.test:587 me@provider.test s3cret"), or
// after the relay's name without a port. That text may be a password: it
// is never shown, and neither is the line's content beyond Shown.
type RouteExtra struct {
	Line  int    // its line number in the file, from 1
	Shown string // the line up to and including the port (or the relay's name up to its first blank)
	// Kind says where the text is: RouteAfterPort (after the port's
	// digits, which qmail-remote reads as qmail reads a number, the rest
	// dropped), RouteNoPort (in the port's place: no digits, port 25 is
	// used) or RouteInName (after a blank in the relay's name, with no
	// port: qmail-remote takes all of it for the name).
	Kind int
}

// Kinds of RouteExtra.
const (
	RouteAfterPort = iota
	RouteNoPort
	RouteInName
)

// routeLogin is the advice of every RouteExtra.
func routeLogin(shared bool) string {
	owner := "owner qmailr"
	if shared {
		owner = "owned by the tree's user"
	}
	return "a login belongs in control/smtpauth (mode 0600, " + owner + ")"
}

// Warning says what qmail-remote makes of the line, and where its login
// belongs (shared: the tree is one user's, who owns control/smtpauth).
func (r RouteExtra) Warning(shared bool) string {
	switch r.Kind {
	case RouteNoPort:
		return "text in the place of the port is ignored (port 25 is used); " + routeLogin(shared)
	case RouteInName:
		return "text after a blank in the relay's name is taken as part of the name, which no host has; " + routeLogin(shared)
	}
	return "text after the port is ignored; " + routeLogin(shared)
}

// routeLine is one list line of control/smtproutes: its number in the
// file, its text, and the text after which the rest is not shown.
type routeLine struct {
	n     int
	text  string
	extra *RouteExtra
}

// routeLines reads the contents of control/smtproutes as qmail-remote
// does (the list rule of control.ListLines, then remote.ParseTable's key
// and remote.ParseRoute's relay and port), keeping each line's number.
func routeLines(b []byte) []routeLine {
	var out []routeLine
	for i, line := range strings.Split(string(control.StripBOM(b)), "\n") {
		line = strings.TrimRight(line, " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		out = append(out, routeLine{n: i + 1, text: line, extra: routeExtra(i+1, line)})
	}
	return out
}

// routeExtra finds the text after the port (or the relay's name) of
// smtproutes line l (number n), nil when there is none. The key ends as
// remote's cutKey says: at the ']' of a bracketed literal followed by
// ':', else at the first ':'; a line without one is no route.
func routeExtra(n int, l string) *RouteExtra {
	start := -1
	if strings.HasPrefix(l, "[") {
		if i := strings.IndexByte(l, ']'); i >= 0 && strings.HasPrefix(l[i+1:], ":") {
			start = i + 2
		}
	}
	if start < 0 {
		i := strings.IndexByte(l, ':')
		if i < 0 {
			return nil
		}
		start = i + 1
	}
	// As remote.ParseRoute: a CR and blanks at the end are dropped.
	v := strings.TrimRight(l[start:], " \t\r")
	rest, restAt := "", -1 // the port and what follows; its offset in v
	if strings.HasPrefix(v, "[") {
		if i := strings.IndexByte(v, ']'); i >= 0 {
			rest, restAt = strings.TrimPrefix(v[i+1:], ":"), i+1
			if len(rest) < len(v[i+1:]) {
				restAt++
			}
		}
	} else if i := strings.IndexByte(v, ':'); i >= 0 {
		rest, restAt = v[i+1:], i+1
	}
	if restAt < 0 {
		// No port: a blank in the relay's name starts what is no name.
		k := len(v) - len(strings.TrimLeft(v, " \t"))
		if j := strings.IndexAny(v[k:], " \t"); j >= 0 {
			return &RouteExtra{Line: n, Shown: l[:start+k+j], Kind: RouteInName}
		}
		return nil
	}
	port := rest
	if i := strings.IndexByte(port, ':'); i >= 0 {
		port = port[:i]
	}
	_, digits := control.ScanUlong(port)
	if digits == len(rest) {
		return nil
	}
	kind := RouteAfterPort
	if digits == 0 {
		kind = RouteNoPort
	}
	return &RouteExtra{Line: n, Shown: l[:start+restAt+digits], Kind: kind}
}

// SmtproutesExtras returns the lines of control/smtproutes (contents b)
// that hold text after the port or the relay's name, which qmail-remote
// does not use as a login: qmail-showctl and qmail-install -check warn of
// each, by its number, never showing that text.
func SmtproutesExtras(b []byte) []RouteExtra {
	var out []RouteExtra
	for _, r := range routeLines(b) {
		if r.extra != nil {
			out = append(out, *r.extra)
		}
	}
	return out
}

// routeHidden follows the shown part of a line whose rest may be a
// password.
const routeHidden = " [text after the port not shown]"

// shownRoutes is the list of control/smtproutes (contents b) as
// qmail-showctl prints it: each line up to and including its port (or up
// to the blank in its relay's name), then routeHidden, when text follows.
func shownRoutes(b []byte) []string {
	var out []string
	for _, r := range routeLines(b) {
		switch {
		case r.extra == nil:
			out = append(out, r.text)
		case r.extra.Kind == RouteInName:
			out = append(out, r.extra.Shown+" [text after the relay's name not shown]")
		default:
			out = append(out, r.extra.Shown+routeHidden)
		}
	}
	return out
}

// percentRelays warns, below control/percenthack's entry, of each domain
// of it (lines, as qmail-send reads them) that qmail-smtpd accepts mail
// for without RELAYCLIENT: then anyone can send user%outside@domain,
// which qmail-send rewrites to user@outside and sends away. Domains are
// compared as qmail-smtpd compares them (pkg/smtpd RcptHosts.Allowed):
// in idna.Fold form, the domain or a ".suffix" of it in control/rcpthosts,
// control/morercpthosts (what the next qmail-newmrh makes live) or
// control/morercpthosts.cdb. Without rcpthosts every domain is accepted,
// which its own entry says.
func percentRelays(w io.Writer, d *control.Dir, lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	rh, ok, err := d.ReadList("rcpthosts")
	if err != nil || !ok {
		return err
	}
	more, _, err := d.ReadList("morercpthosts")
	if err != nil {
		return err
	}
	sets := []struct {
		file string
		set  map[string]string // folded entry -> as written
	}{{"control/rcpthosts", map[string]string{}}, {"control/morercpthosts", map[string]string{}}}
	for i, list := range [][]string{rh, more} {
		for _, l := range list {
			sets[i].set[idna.Fold(l)] = l
		}
	}
	db, _ := cdb.Open(filepath.Join(d.Path, "morercpthosts.cdb")) // its own entry names a problem
	if db != nil {
		defer db.Close()
	}
	for _, ph := range lines {
		dom := idna.Fold(ph)
		raw := address.LowerASCII(ph)
		var found string
		for j := 0; j < len(dom) && found == ""; j++ {
			if j != 0 && dom[j] != '.' {
				continue
			}
			for _, s := range sets {
				if e, ok := s.set[dom[j:]]; ok {
					found = s.file + " (" + e + ")"
					break
				}
			}
		}
		if found == "" && db != nil {
			for _, k := range []string{dom, raw} {
				for j := 0; j < len(k) && found == ""; j++ {
					if j != 0 && k[j] != '.' {
						continue
					}
					if _, ok, _ := db.Get([]byte(k[j:])); ok {
						found = "control/morercpthosts.cdb (" + k[j:] + ")"
					}
				}
			}
		}
		if found != "" {
			fmt.Fprintf(w, "  warning: %s is also accepted by %s: qmail-smtpd takes user%%outside@%s from anyone, and qmail-send "+
				"rewrites it to user@outside and sends it on (an open relay); never list a domain of rcpthosts in percenthack\n", ph, found, ph)
		}
	}
	return nil
}
