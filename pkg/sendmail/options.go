package sendmail

import (
	"fmt"
	"strings"
)

// Modes of operation.
const (
	ModeDeliver    = iota // -bm (default): read a message and queue it
	ModeSMTP              // -bs: qmail-smtpd on stdin/stdout
	ModeQueueList         // -bp, or invoked as mailq: qmail-qread
	ModeNewAliases        // -bi, or invoked as newaliases
	ModeFlush             // -q...: ask qmail-send to retry everything now
)

// sysexits codes used by sendmail.
const (
	ExUsage       = 64
	ExDataErr     = 65
	ExUnavailable = 69
	ExSoftware    = 70
	ExTempFail    = 75
	ExNoPerm      = 77
)

// Usage is printed after an option error.
const Usage = "sendmail: usage: sendmail [ -t ] [ -fsender ] [ -Fname ] [ -bp ] [ -bs ] [ -bi ] [ -q ] [ arg ... ]"

// MailqUsage is printed after an option error of mailq, which takes
// sendmail's options and lists the queue whatever they ask.
const MailqUsage = "mailq: usage: mailq (sendmail's options are accepted and ignored)"

// Help is what sendmail --help prints: every option it reads, and the
// ones it accepts and ignores. (-h is sendmail's hop count, not help.)
const Help = `usage: sendmail [ options ] [ -- ] [ recip ... ]
       mailq
       newaliases
Queues the message on standard input for the recipients, as qmail-inject does.
  -t             recipients from To:, Cc:, Bcc: (removed), Apparently-To:
                 or the Resent- fields too
  -f sender      envelope sender (-r sender too); MAILER-DAEMON or <> is none
  -F name        the sender's full name, for a From: line made here
  -XV            a variable envelope return path (VERP)
  -bm            queue a message (the default)
  -bs            speak SMTP on standard input and output (qmail-smtpd)
  -bp            list the queue (as mailq)
  -bi, -I        rebuild the aliases database (as newaliases; -oAfile names it)
  -q[...]        ask qmail-send to retry the queue now (no recipients read)
  -i, -oi        a line of one dot does not end the message (always so)
Accepted and ignored: -N -R -V -B -L -C -h -O -p -X -A -e (with an argument),
-o... (but -oA), -v -G -U -x -m -n -E -J.
Exit: 0 queued, 64 usage, 65 bad address or header, 75 try again later;
the others and every option in full: sendmail(8).
`

// Config is what the command line asks for.
type Config struct {
	Mode       int
	Header     bool    // -t: recipients from the header too
	Sender     *string // -f / -r
	Name       *string // -F
	FlushArg   string  // what followed -q (recorded, not interpreted)
	AliasFile  string  // -oAfile: the aliases file for -bi
	VERP       bool    // -XV: a variable envelope return path
	Ignored    []string
	Recipients []string
}

// UsageError is an option error; its text goes on stderr before Usage.
type UsageError struct{ Text string }

func (e *UsageError) Error() string { return e.Text }

// withArg are the option letters that take an argument, attached or as
// the next word. The ones not listed in the switch of Parse are accepted
// and ignored: -o (-oi, -oem, -odb ...), -e, -p, -B (body type), -N (DSN
// notify), -R (DSN return), -V (envelope id), -L (syslog tag), -C (config
// file), -h (hop count), -O (long option), -X (log file; -XV is VERP),
// -A (-Ac, -Am:
// which submit.cf, as Postfix ignores it).
const withArg = "bfrFoepBNRVLChOXA"

// Parse reads sendmail's options from args (without argv[0]). Options can
// be bundled (-ti) and their arguments attached (-fjoe) or separate
// (-f joe); "--" or the first word that is no option ends them: one not
// starting with '-', or a lone "-", a recipient as with getopt and
// qmail's sendmail. prog is the basename of argv[0]: "mailq" lists the
// queue and "newaliases" rebuilds the aliases, once the options were
// accepted; the errors name mailq when invoked so.
func Parse(prog string, args []string) (*Config, error) {
	c := &Config{}
	me := "sendmail"
	if prog == "mailq" {
		me = prog
	}
	i := 0
	now := false // -bs or -bp: the rest of the words are not read
words:
	for ; i < len(args); i++ {
		a := args[i]
		if len(a) < 2 || a[0] != '-' {
			break
		}
		if a == "--" {
			i++
			break
		}
		for k := 1; k < len(a); k++ {
			opt := a[k]
			switch opt {
			case 't':
				c.Header = true
				continue
			case 'i', 'v', 'x', 'm', 'G', 'U', 'n':
				c.Ignored = append(c.Ignored, "-"+string(opt))
				continue
			case 'I': // sendmail's and Postfix's old spelling of -bi
				c.Mode = ModeNewAliases
				continue
			case 'q':
				c.Mode = ModeFlush
				c.FlushArg = a[k+1:]
				continue words
			case 'E', 'J':
				c.Ignored = append(c.Ignored, a[k:])
				continue words
			}
			if strings.IndexByte(withArg, opt) < 0 {
				return nil, &UsageError{fmt.Sprintf("%s: illegal option -- %c", me, opt)}
			}
			var v string
			attached := k+1 < len(a)
			switch {
			case attached:
				v = a[k+1:]
			case i+1 < len(args):
				i++
				v = args[i]
			default:
				return nil, &UsageError{fmt.Sprintf("%s: option requires an argument -- %c", me, opt)}
			}
			switch opt {
			case 'b':
				// Only the mode's first letter counts, as in qmail's
				// sendmail (so -bmx is -bm).
				switch v[:min(len(v), 1)] {
				case "m":
					c.Mode = ModeDeliver
				case "s", "p":
					// qmail's sendmail runs qmail-smtpd or the queue
					// listing right here, whatever words follow.
					c.Mode = ModeSMTP
					if v[0] == 'p' {
						c.Mode = ModeQueueList
					}
					now = true
					break words
				case "i":
					c.Mode = ModeNewAliases
				default:
					return nil, &UsageError{fmt.Sprintf("%s: unsupported mode -b%s", me, v)}
				}
			case 'f', 'r':
				v := v
				c.Sender = &v
			case 'F':
				v := v
				c.Name = &v
			case 'X':
				// Postfix's -XV (and -XVxy, with delimiters of its
				// own): VERP. Only attached: "-X file" is sendmail's
				// log file, ignored.
				if attached && v[0] == 'V' {
					c.VERP = true
				} else {
					c.Ignored = append(c.Ignored, "-X"+v)
				}
			case 'o':
				if strings.HasPrefix(v, "A") {
					if v == "A" {
						// -oA /etc/aliases, as newaliases takes it; only
						// -oA's file may be a word of its own (-o's
						// other values are attached: -oi, -oem).
						if i+1 >= len(args) || args[i+1] == "" || strings.HasPrefix(args[i+1], "-") {
							return nil, &UsageError{me + ": -oA needs the aliases file (-oA/etc/aliases or -oA /etc/aliases)"}
						}
						i++
						v += args[i]
					}
					c.AliasFile = v[1:]
				}
				c.Ignored = append(c.Ignored, "-o"+v)
			default:
				c.Ignored = append(c.Ignored, "-"+string(opt)+v)
			}
			continue words
		}
	}
	if !now {
		c.Recipients = args[i:]
	}
	switch prog {
	case "mailq":
		c.Mode = ModeQueueList
	case "newaliases":
		c.Mode = ModeNewAliases
	}
	if c.Sender != nil {
		// White space around the value goes (a line read from a file,
		// its newline included); a line end inside it is refused.
		*c.Sender = trim(*c.Sender)
		if bad(*c.Sender) {
			return nil, &UsageError{me + ": fatal: CR, LF or NUL in the -f argument (header injection refused)"}
		}
	}
	if c.Name != nil && bad(*c.Name) {
		return nil, &UsageError{me + ": fatal: CR, LF or NUL in the -F argument (header injection refused)"}
	}
	return c, nil
}

func bad(s string) bool { return strings.ContainsAny(s, "\r\n\x00") }
