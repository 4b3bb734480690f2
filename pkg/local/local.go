package local

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/hqmail/hqmail/pkg/address"
	"github.com/hqmail/hqmail/pkg/dotqmail"
	"github.com/hqmail/hqmail/pkg/qdate"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
)

// Config is what Run needs from its process besides argv.
type Config struct {
	// Stdin is the message: a seekable file, read from offset 0 by every
	// delivery. Stdout and Stderr receive the report and are handed to
	// programs as their fd 1 and 2.
	Stdin, Stdout, Stderr *os.File
	// Environ is the inherited environment (os.Environ()).
	Environ []string
	// Root is the qmail tree whose bin/qmail-queue forwards go through
	// unless $QMAILQUEUE names another program.
	Root string
	// Now is the start time (UFLINE); zero means time.Now().
	Now time.Time
}

// usageText is qmail's usage line, byte for byte: the recorded vectors
// (testdata/vectors 047, 049 of cmd/qmail-local) hold it, as they hold
// qmail-local's other texts. It leaves out "--" and "-k"; qmail-local(8) lists
// them (SYNOPSIS, OPTIONS) and says why the line does not.
const usageText = "qmail-local: usage: qmail-local [ -nN ] user homedir local dash ext domain sender aliasempty"

// exit is a failure that ends the run: its text (if any) goes to stderr
// followed by a newline, and code is the exit status.
type exit struct {
	code int
	text string
}

func die(code int, format string, a ...any) *exit {
	return &exit{code, fmt.Sprintf(format, a...)}
}

func temp(format string, a ...any) *exit { return die(qerr.ExitTemp, format, a...) }

// delivery is the state of one run.
type delivery struct {
	cfg    Config
	doit   bool
	user   string
	home   string
	local  string
	dash   string
	ext    string
	host   string
	sender string
	empty  string // defaultdelivery ("aliasempty")

	env    environ
	dtline []byte
	rpline []byte
	ufline []byte
	safe   string
	owner  string // NEWSENDER

	forwardOnly bool
	stop        bool // a program exited 99
	files       int
	forwards    []string
	nforward    int
	programs    int
	qp          int
}

// Run is qmail-local: argv is the full argument vector (argv[0] names the
// program in option errors). It returns the exit status. Run sets the
// process umask to 077, ignores SIGPIPE for itself (programs it starts get
// the default action) and changes the working directory to the home. The
// delivery runs on a thread of its own that first joins a new anonymous
// session keyring, which every program of the delivery inherits
// (keyring.go).
func Run(argv []string, cfg Config) int {
	syscall.Umask(0o077)
	sigpipe := make(chan os.Signal, 1)
	signal.Notify(sigpipe, syscall.SIGPIPE)
	defer signal.Stop(sigpipe)

	d := &delivery{cfg: cfg, env: environ(append([]string(nil), cfg.Environ...))}
	// On a thread of its own in a new session keyring (keyring.go), so
	// that no program it runs shares its starter's keyring.
	if err := runDelivery(func() *exit { return d.run(argv) }); err != nil {
		if err.text != "" {
			io.WriteString(cfg.Stderr, err.text+"\n")
		}
		return err.code
	}
	return 0
}

// parseArgs handles [-nN] [--] and the eight arguments.
func (d *delivery) parseArgs(argv []string) *exit {
	prog := "qmail-local"
	if len(argv) > 0 {
		prog = path.Base(argv[0])
	}
	d.doit = true
	i := min(1, len(argv))
	for ; i < len(argv); i++ {
		a := argv[i]
		if len(a) < 2 || a[0] != '-' {
			break
		}
		if a[1] == '-' {
			// "--", and as qmail's getopt has it any argument
			// starting with "--", ends the options and is skipped.
			i++
			break
		}
		for j := 1; j < len(a); j++ {
			switch a[j] {
			case 'n':
				d.doit = false
			case 'N':
				d.doit = true
			default:
				return die(qerr.ExitPerm, "%s: illegal option -- %s\n%s", prog, string([]byte{a[j]}), usageText)
			}
		}
	}
	args := argv[i:]
	// Exactly eight: qmail-lspawn passes no more, and a privileged
	// caller's argv is taken only in its documented form.
	if len(args) != 8 {
		return die(qerr.ExitPerm, usageText)
	}
	d.user, d.home, d.local, d.dash = args[0], args[1], args[2], args[3]
	d.ext, d.host, d.sender, d.empty = args[4], args[5], args[6], args[7]
	if !strings.HasPrefix(d.home, "/") {
		return die(qerr.ExitPerm, usageText)
	}
	return nil
}

func (d *delivery) run(argv []string) *exit {
	if err := d.parseArgs(argv); err != nil {
		return err
	}
	if err := os.Chdir(d.home); err != nil {
		return temp("Unable to switch to %s: %s. (#4.3.0)", d.home, qerr.Str(err))
	}
	if err := d.checkHome(); err != nil {
		return err
	}

	d.env.put("HOST", d.host)
	d.env.put("HOME", d.home)
	d.env.put("USER", d.user)
	d.env.put("LOCAL", d.local)
	recip := d.local + "@" + d.host
	d.env.put("RECIPIENT", recip)
	d.dtline = []byte("Delivered-To: " + noNewline(recip) + "\n")
	d.env.put("DTLINE", string(d.dtline))

	if d.doit {
		if err := d.checkLoop(); err != nil {
			return err
		}
	}

	d.env.put("SENDER", d.sender)
	d.rpline = []byte("Return-Path: <" + noNewline(address.Quote(d.sender)) + ">\n")
	d.env.put("RPLINE", string(d.rpline))
	d.ufline = []byte("From " + fromSender(d.sender) + " " + qdate.FromLine(d.now()) + "\n")
	d.env.put("UFLINE", string(d.ufline))

	x := d.ext
	d.env.put("EXT", x)
	for _, k := range []string{"EXT2", "EXT3", "EXT4"} {
		if i := strings.IndexByte(x, '-'); i >= 0 {
			x = x[i+1:]
		} else {
			x = ""
		}
		d.env.put(k, x)
	}
	h := d.host
	for _, k := range []string{"HOST2", "HOST3", "HOST4"} {
		if i := strings.LastIndexByte(h, '.'); i >= 0 {
			h = h[:i]
		}
		d.env.put(k, h)
	}

	f, err := d.search()
	if err != nil {
		return err
	}
	if f == nil && d.dash != "" {
		return die(qerr.ExitPerm, "Sorry, no mailbox here by that name. (#5.1.1)")
	}

	d.owner = d.sender
	if d.sender != "" && d.sender != "#@[]" {
		has, err := d.exists(dotqmail.OwnerName(d.dash, d.ext, "-owner"))
		if err != nil {
			return err
		}
		if has {
			hasDefault, err := d.exists(dotqmail.OwnerName(d.dash, d.ext, "-owner-default"))
			if err != nil {
				return err
			}
			if hasDefault {
				d.owner = d.local + "-owner-@" + d.host + "-@[]"
			} else {
				d.owner = d.local + "-owner@" + d.host
			}
		}
	}
	d.env.put("NEWSENDER", d.owner)

	var cmds []byte
	if f != nil {
		var rerr error
		cmds, rerr = qhome.ReadCapped(f)
		f.Close()
		if errors.Is(rerr, qhome.ErrTooLarge) {
			// A sparse file of gigabytes must not cost its size in memory.
			return temp("Uh-oh: %s is larger than 64 MB. (#4.3.0)", f.Name())
		}
		if rerr != nil {
			// qmail reports every failure to read the file this way.
			return temp("Out of memory. (#4.3.0)")
		}
	}
	if len(cmds) == 0 {
		cmds = []byte(d.empty)
		d.forwardOnly = false
	}
	if len(cmds) == 0 || cmds[len(cmds)-1] != '\n' {
		cmds = append(cmds, '\n')
	}

	if err := d.instructions(cmds); err != nil {
		return err
	}
	if d.nforward > 0 && d.doit {
		if err := d.forward(); err != nil {
			return err
		}
	}
	report := fmt.Sprintf("did %d+%d+%d\n", d.files, d.nforward, d.programs)
	if d.qp != 0 {
		report += fmt.Sprintf("qp %d\n", d.qp)
	}
	io.WriteString(d.cfg.Stdout, report)
	return nil
}

func (d *delivery) now() time.Time {
	if d.cfg.Now.IsZero() {
		return time.Now()
	}
	return d.cfg.Now
}

// noNewline turns every '\n' into '_' so a value stays one header line.
func noNewline(s string) string { return strings.ReplaceAll(s, "\n", "_") }

// fromSender is the sender as the From_ line shows it: MAILER-DAEMON for
// the empty sender, blanks and newlines turned into '-'.
func fromSender(s string) string {
	if s == "" {
		return "MAILER-DAEMON"
	}
	b := []byte(s)
	for i, c := range b {
		if c == ' ' || c == '\t' || c == '\n' {
			b[i] = '-'
		}
	}
	return string(b)
}

// checkHome refuses a world-writable home and a sticky one (the user is
// editing .qmail files; a dry run only warns).
func (d *delivery) checkHome() *exit {
	var st syscall.Stat_t
	if err := syscall.Stat(".", &st); err != nil {
		return temp("Unable to stat home directory: %s. (#4.3.0)", qerr.Str(err))
	}
	if st.Mode&0o002 != 0 {
		return temp("Uh-oh: home directory is writable. (#4.7.0)")
	}
	if st.Mode&syscall.S_ISVTX != 0 {
		if d.doit {
			return temp("Home directory is sticky: user is editing his .qmail file. (#4.2.1)")
		}
		io.WriteString(d.cfg.Stderr, "Warning: home directory is sticky.\n")
	}
	return nil
}

// rewind puts the message back at offset 0.
func (d *delivery) rewind() *exit {
	if _, err := d.cfg.Stdin.Seek(0, io.SeekStart); err != nil {
		return temp("Unable to rewind message. (#4.3.0)")
	}
	return nil
}

// checkLoop bounces a message whose header already holds our
// Delivered-To line.
func (d *delivery) checkLoop() *exit {
	if err := d.rewind(); err != nil {
		return err
	}
	size := 4096
	if len(d.dtline) >= size {
		size = len(d.dtline) + 1
	}
	r := bufio.NewReaderSize(d.cfg.Stdin, size)
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// Longer than our line: cannot match; skip the rest.
			for err == bufio.ErrBufferFull {
				line, err = r.ReadSlice('\n')
			}
			if err == nil {
				continue
			}
		}
		if err == io.EOF {
			return nil // a last line without '\n' ends the check
		}
		if err != nil {
			return temp("Unable to read message: %s. (#4.3.0)", qerr.Str(err))
		}
		if len(line) <= 1 {
			return nil
		}
		if bytes.Equal(line, d.dtline) {
			return die(qerr.ExitPerm, "This message is looping: it already has my Delivered-To line. (#5.4.6)")
		}
	}
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
