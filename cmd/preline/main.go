// Command preline runs a program with the message on its standard input
// preceded by the From_, Return-Path and Delivered-To lines.
//
// Runs as: the recipient, as a program line of a .qmail file, started by
// qmail-local's /bin/sh (cwd = home); the lines come from $UFLINE, $RPLINE
// and $DTLINE. argv: preline [-dfrDFR] program [arg ...]; -h or
// --help first prints the usage on fd 1 and exits 100, as dot-forward
// does (exit 0 would let qmail-local go on with the next line).
// fds: 0 the message, 1/2 the report (and the program's 1/2).
// Exit: the program's exit code; 111 if it could not be started, was
// killed, or the message could not be read; 100 usage (-h included) or a
// variable unset.
package main

import (
	"os"

	"github.com/hqmail/hqmail/pkg/usertools"
)

const help = `usage: preline [-dfrDFR] program [arg ...]
  Runs program with, on its standard input, $UFLINE (the mbox From_ line),
  $RPLINE (Return-Path) and $DTLINE (Delivered-To), then the message as it
  is. -f leaves out the From_ line, -r the Return-Path, -d the Delivered-To;
  -F, -R, -D put them back (a later option wins).
  Use it in a .qmail file: |preline procmail. Exits with the program's
  code. -h prints this and exits 100: in a .qmail file the message
  bounces with this text. See preline(1).
`

func main() {
	if code, asked := usertools.Help(os.Args[1:], help, os.Stdout); asked {
		os.Exit(code)
	}
	os.Exit(usertools.PrelineMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
