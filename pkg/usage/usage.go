// Package usage answers -h for programs that take no arguments (or one
// that never starts with "-"): the daemons qmail-start runs and the admin
// tools (qmail-tcpok, qmail-newu, qmail-qread, ...). A person who runs one
// by hand to learn what it is gets a paragraph instead of a silent exit 111
// or, worse, the tool's work done.
package usage

import "os"

// Help prints text to stdout and exits 0 when args[0] is -h or --help.
func Help(args []string, text string) {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		os.Stdout.WriteString(text)
		os.Exit(0)
	}
}

// NoArgs is Help for a program that takes no arguments: any other argument
// prints text to stderr and exits 100 (qmail's code for a permanent usage
// error).
func NoArgs(args []string, text string) {
	Help(args, text)
	if len(args) > 0 {
		os.Stderr.WriteString(text)
		os.Exit(100)
	}
}
