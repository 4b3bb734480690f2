package spawn

import (
	"strings"
	"testing"
)

// What the Go runtime writes when it gives up, as the spawners find it in
// a delivery program's output.
const (
	traceNewosproc = "runtime: failed to create new OS thread (have 7 already; errno=11)\n" +
		"runtime: may need to increase max user processes (ulimit -u)\n" +
		"fatal error: newosproc\n\ngoroutine 1 [running]:\n" +
		"runtime.throw({0x5a1b2c?, 0x0?})\n\t/usr/local/go/src/runtime/panic.go:1229 +0x48 fp=0xc000 sp=0xc000 pc=0x4321\n"
	traceOOM = "runtime: out of memory: cannot allocate 1048576-byte block (3997696 in use)\n" +
		"fatal error: out of memory\n\ngoroutine 1 gp=0xc000002380 m=0 mp=0x6b3d40 [running]:\n"
	tracePanic = "panic: runtime error: index out of range [5] with length 3\n\n" +
		"goroutine 1 [running]:\nmain.main()\n\t/src/x.go:5 +0x1d\n"
)

func TestCrashReason(t *testing.T) {
	long := "panic: " + strings.Repeat("x", 200)
	for _, tc := range []struct {
		name, out, want string
	}{
		{"newosproc", traceNewosproc, "fatal error: newosproc"},
		{"out of memory", traceOOM, "fatal error: out of memory"},
		{"panic", tracePanic, "panic: runtime error: index out of range [5] with length 3"},
		{"panic raised again", "panic: first [recovered]\n\tpanic: second\n\ngoroutine 1:\n", "panic: first [recovered]"},
		{"fatal error after a panic", "panic: x\nfatal error: panic holding locks\n", "fatal error: panic holding locks"},
		{"runtime note alone", "runtime: program exceeds 10000-thread limit\n", "runtime: program exceeds 10000-thread limit"},
		{"after a report", "did 0+0+1\nwarning\n" + tracePanic, "panic: runtime error: index out of range [5] with length 3"},
		{"after NUL-ended pieces", "r\x00Zpartial\x00fatal error: newosproc\n", "fatal error: newosproc"},
		{"no newline at the end", "fatal error: cut", "fatal error: cut"},
		{"control and 8-bit bytes", "panic: bad \x1b[31mred\x1b[0m \xc3\xa9t\xe9\x00 \tx\r\n", "panic: bad ?[31mred?[0m ??t?"},
		{"tab and CR inside", "fatal error: a\tb\rc\n", "fatal error: a?b?c"},
		{"too long", long + "\n", long[:MaxReason]},
		{"not at a line start", "x panic: no\nsaid fatal error: no\n", ""},
		{"prefix without its space", "fatal error:\npanic:x\n", ""},
		{"nothing", "", ""},
		{"ordinary output", "Unable to write to Maildir. (#4.3.0)\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CrashReason([]byte(tc.out)); got != tc.want {
				t.Errorf("CrashReason = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCrashText(t *testing.T) {
	for _, tc := range []struct {
		prog, out, want string
	}{
		{"qmail-local", "", "qmail-local crashed.\n"},
		{"qmail-remote", "r\x00", "qmail-remote crashed.\n"},
		{"qmail-local", traceNewosproc, "qmail-local crashed (fatal error: newosproc).\n"},
		{"qmail-remote", tracePanic, "qmail-remote crashed (panic: runtime error: index out of range [5] with length 3).\n"},
	} {
		if got := CrashText(tc.prog, []byte(tc.out)); got != tc.want {
			t.Errorf("CrashText(%s, %q) = %q, want %q", tc.prog, tc.out, got, tc.want)
		}
	}
}

// FuzzCrashReason: whatever a program writes, the reason is empty or one
// line of printable ASCII, at most MaxReason bytes, that begins with one
// of the runtime's prefixes.
func FuzzCrashReason(f *testing.F) {
	f.Add([]byte(traceNewosproc))
	f.Add([]byte(tracePanic))
	f.Add([]byte("r\x00Kok\x00panic: \xff\x00"))
	f.Add([]byte{})
	f.Add([]byte("panic: "))
	f.Add([]byte("fatal error: \t\r\n"))
	f.Fuzz(func(t *testing.T, out []byte) {
		r := CrashReason(out)
		if r == "" {
			return
		}
		if len(r) > MaxReason {
			t.Fatalf("%d bytes: %q", len(r), r)
		}
		for i := 0; i < len(r); i++ {
			if r[i] < ' ' || r[i] > '~' {
				t.Fatalf("byte %#x in %q", r[i], r)
			}
		}
		ok := false
		for _, p := range crashPrefixes {
			ok = ok || strings.HasPrefix(r, p)
		}
		if !ok {
			t.Fatalf("no runtime prefix: %q", r)
		}
	})
}
