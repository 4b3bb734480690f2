// Command splogger sends log lines read on stdin to syslog.
//
// Usage: splogger [tag [facility]]   (defaults: tag "splogger", facility mail)
//
// Runs as: qmaill/nofiles when started by qmail-start as its logger; any user.
// fds: 0 log lines, 2 warnings (syslog unreachable: lines are dropped, it
// goes on reading). Exit: 0 at end of input, 111 if reading fails.
// SPLOGGER_SOCKET names the syslog socket, datagram or stream (default /dev/log).
package main

import (
	"fmt"
	"os"

	"github.com/hqmail/hqmail/pkg/splog"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Println("usage: splogger [tag [facility]]   read log lines on stdin, send them to syslog")
		os.Exit(0)
	}
	tag, fac := "splogger", 2
	if len(args) > 0 {
		tag = args[0]
	}
	if len(args) > 1 {
		f, err := splog.ParseFacility(args[1])
		if err != nil {
			fmt.Fprintf(os.Stderr, "splogger: fatal: %v\n", err)
			os.Exit(100)
		}
		fac = f
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
