package testutil

import (
	"os"

	"golang.org/x/sys/unix"
)

// GoTrace is what the Go runtime writes on fd 2 when it cannot start a
// thread (a process limit): the fake agents of the spawners' tests write
// it as a crashing qmail-local or qmail-remote would.
const GoTrace = "runtime: failed to create new OS thread (have 5 already; errno=11)\n" +
	"runtime: may need to increase max user processes (ulimit -u)\n" +
	"fatal error: newosproc\n\ngoroutine 1 gp=0xc000002380 m=0 mp=0x6b3d40 [running]:\n" +
	"runtime.throw({0x52f0a5?, 0x0?})\n\t/usr/local/go/src/runtime/panic.go:1229 +0x48\n"

// Crash ends a fake agent as a Go program dies: "fatal" writes GoTrace on
// fd 2 and exits 2, "panic" panics with the text what, "dirty" writes a
// panic line with control and 8-bit bytes and exits 2, anything else
// ("quiet") exits 2 without a word.
func Crash(mode, what string) {
	switch mode {
	case "fatal":
		unix.Write(2, []byte(GoTrace))
	case "panic":
		panic(what)
	case "dirty":
		unix.Write(2, []byte("panic: bad \x1b[1m\xe9t\xe9\x7f\n\ngoroutine 1 [running]:\n"))
	}
	os.Exit(2)
}
