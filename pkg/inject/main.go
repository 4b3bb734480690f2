package inject

import (
	"io"
	"path/filepath"
)

// usageText is what --help prints.
const usageText = `usage: qmail-inject [-nNaAhH] [-f sender] [--] [recipient ...]
  Reads a message on standard input, completes its header (From, Date,
  Message-ID; addresses rewritten with control/defaulthost, defaultdomain
  and plusdomain) and queues it. Recipients are the arguments, or, with
  none, the To, Cc and Bcc fields (-h: the fields only; -H: both; -a: the
  arguments only). -f sets the envelope sender; -n prints the message
  instead of queueing it. See qmail-inject(8).
`

// Main is qmail-inject: it parses argv ("qmail-inject [-nNaAhH] [-f
// sender] [--] [recip ...]") and runs the job. Option errors print
// "qmail-inject: illegal option -- X" (or "option requires an argument")
// and exit 100 before any input is read.
func Main(argv []string, root string, env []string, stdin io.Reader, stdout, stderr io.Writer) int {
	prog := "qmail-inject"
	if len(argv) > 0 {
		prog = filepath.Base(argv[0])
		argv = argv[1:]
	}
	if len(argv) > 0 && argv[0] == "--help" {
		// Not qmail's: its getopt skips "--help" and reads a message
		// from the terminal. -h is taken (header recipients).
		io.WriteString(stdout, usageText)
		return 0
	}
	j := &Job{Root: root, Env: env, Stdin: stdin, Stdout: stdout, Stderr: stderr}
	i := 0
args:
	for ; i < len(argv); i++ {
		a := argv[i]
		if len(a) < 2 || a[0] != '-' {
			break
		}
		if a[1] == '-' {
			// qmail's getopt ends the options at "--" and at any
			// argument starting with it, which it skips: "--foo bob"
			// has the one recipient bob. A lone "-" is an argument.
			i++
			break
		}
		for k := 1; k < len(a); k++ {
			switch c := a[k]; c {
			case 'a':
				j.Strategy = RecipArgs
			case 'A':
				j.Strategy = RecipDefault
			case 'h':
				j.Strategy = RecipHeader
			case 'H':
				j.Strategy = RecipBoth
			case 'n':
				j.Print = true
			case 'N':
				j.Print = false
			case 'f':
				var v string
				if k+1 < len(a) {
					v = a[k+1:]
				} else if i+1 < len(argv) {
					i++
					v = argv[i]
				} else {
					io.WriteString(stderr, prog+": option requires an argument -- f\n")
					return 100
				}
				j.Sender = &v
				continue args
			default:
				io.WriteString(stderr, prog+": illegal option -- "+string(c)+"\n")
				return 100
			}
		}
	}
	j.Args = argv[i:]
	return j.Run()
}
