// Command splogger sends log lines read on stdin to syslog.
//
// Usage: splogger [tag [facility]]   (defaults: tag "splogger", facility mail)
//
// Runs as: qmaill/nofiles when started by qmail-start as its logger; any user.
// argv: -h or --help prints the usage on stdout and exits 0; more than two
// arguments, or a tag that starts with "-", print it on stderr and exit
// 100, as does an unknown facility; in all three cases nothing is read.
// fds: 0 log lines, 2 warnings (syslog unreachable: lines are dropped, it
// goes on reading). Exit: 0 at end of input, 111 if reading fails.
// SPLOGGER_SOCKET names the syslog socket, datagram or stream (default /dev/log).
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hqmail/hqmail/pkg/splog"
	"github.com/hqmail/hqmail/pkg/usage"
)

const help = `usage: splogger [tag [facility]]
  Reads log lines on stdin and sends each to syslog, tagged tag (default
  splogger) with facility (a name such as mail or local0, or a number;
  default mail). The socket is $SPLOGGER_SOCKET, else /dev/log.
  Exit 0 at end of input; 100 usage or unknown facility; 111 if reading
  fails. See splogger(8).
`

func main() {
	args := os.Args[1:]
	usage.Help(args, help)
	tag, fac, code := parseArgs(args, os.Stderr)
	if code != 0 {
		os.Exit(code)
	}
	sock := os.Getenv("SPLOGGER_SOCKET")
	if sock == "" {
		sock = "/dev/log"
	}
	if err := splog.Run(os.Stdin, sock, tag, fac, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "splogger: fatal: %v\n", err)
		os.Exit(111)
	}
}

// parseArgs returns the tag and the facility code of [tag [facility]],
// or, for arguments splogger cannot take, a message on stderr and exit code
// 100. A tag that starts with "-" is taken for an option splogger does not
// have (splogger --version, or logger(1)'s -t), not for a tag: started by
// hand it would otherwise wait for log lines on the terminal.
func parseArgs(args []string, stderr io.Writer) (tag string, fac, code int) {
	tag, fac = "splogger", 2
	if len(args) > 2 || (len(args) > 0 && strings.HasPrefix(args[0], "-")) {
		io.WriteString(stderr, help)
		return "", 0, 100
	}
	if len(args) > 0 {
		tag = args[0]
	}
	if len(args) > 1 {
		f, err := splog.ParseFacility(args[1])
		if err != nil {
			fmt.Fprintf(stderr, "splogger: fatal: %v\n", err)
			return "", 0, 100
		}
		fac = f
	}
	return tag, fac, 0
}
