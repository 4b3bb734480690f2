package forward

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// deliverRaw runs each command as the program line of a .forward,
// with stand-ins for the tools in names on $PATH (each stores its input
// in the file named by its last argument), OUT in the command replaced
// by that file (appended if there is no OUT), BIN by the stand-ins'
// directory; it checks that the program got head (the mbox lines, or
// nothing) before the message.
func deliverRaw(t *testing.T, names []string, cases []struct{ cmd, head string }) {
	t.Helper()
	home := inHome(t)
	localEnv(t, "alice", "alice", "")
	bin := filepath.Join(home, "bin")
	os.Mkdir(bin, 0o755)
	for _, name := range names {
		os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\nfor f; do :; done\nexec cat > \"$f\"\n"), 0o755)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	for i, tc := range cases {
		f := filepath.Join(home, fmt.Sprintf("out%d", i))
		cmd := tc.cmd
		if !strings.Contains(cmd, "OUT") {
			cmd += " OUT"
		}
		cmd = strings.ReplaceAll(strings.ReplaceAll(cmd, "OUT", f), "BIN", bin)
		os.WriteFile(".forward", []byte("\"|"+strings.ReplaceAll(cmd, `"`, `\"`)+"\"\n"), 0o644)
		var out bytes.Buffer
		code := bounded(t, "dot-forward", func() int {
			return DotForwardMain(t.TempDir(), []string{".forward"}, msgFile(t, bigBody), &out)
		})
		if code != 99 {
			t.Errorf("%q: exit %d: %s", cmd, code, out.String())
			continue
		}
		if got := readFile(t, f); got != tc.head+bigBody {
			t.Errorf("%q: program got %d bytes, want %d; first 200: %q", cmd, len(got), len(tc.head+bigBody), got[:min(len(got), 200)])
		}
	}
}

// TestProgramMailerGetsMessage: "|/usr/sbin/sendmail -oi carol@x" and
// "|qmail-inject -n carol@x" in a .forward forward the message as it
// is, as qmail's dot-forward hands it over. They got the mbox lines
// first, and forwarded Return-Path, a From_ line (as "MBOX-Line: From
// ...") and a second Delivered-To in the header.
func TestProgramMailerGetsMessage(t *testing.T) {
	lines := aliceUF + aliceRP + aliceDT
	deliverRaw(t, []string{"sendmail", "qmail-inject", "sendmailx"}, []struct{ cmd, head string }{
		{"BIN/sendmail -oi carol@example.com", ""},
		{"sendmail -oi carol@example.com", ""},
		{"qmail-inject -n carol@example.com", ""},
		{"exec BIN/qmail-inject carol@example.com", ""},
		{"sendmailx carol@example.com", lines},
	})
}

// TestProgramPrefixedToolGetsMessage: a qmail tool run after the
// prefixes people write (env with its options, nice, command, nohup,
// setsid, a variable set in a command of its own, a cd, a group) gets
// the message as it is. "|env -u MAILDIR preline cat" gave cat the
// From_ line, Return-Path and Delivered-To twice.
func TestProgramPrefixedToolGetsMessage(t *testing.T) {
	lines := aliceUF + aliceRP + aliceDT
	deliverRaw(t, []string{"preline", "filter"}, []struct{ cmd, head string }{
		{"env -u MAILDIR preline", ""},
		{"/usr/bin/env -- preline", ""},
		{"env -i PATH=\"$PATH\" preline", ""},
		{"env -uMAILDIR --unset=HOME -C / preline", ""},
		{"nice preline", ""},
		{"nice -n 5 preline", ""},
		{"command preline", ""},
		{"command -p env PATH=BIN:/usr/bin:/bin preline", ""},
		{"nohup preline", ""},
		{"setsid -w preline", ""},
		{"PATH=BIN:$PATH; preline", ""},
		{"cd \"$HOME\" && preline", ""},
		{"{ preline OUT; }", ""},
		{"( exec preline OUT )", ""},
		{"2>/dev/null preline", ""},
		{"filter", lines},
		{"env -S filter", lines},
		{"nice -n 5 filter", lines},
		{"cd / && filter", lines},
	})
}

// TestWantsRaw: which commands are taken to run one of qmail's tools.
// When unsure (an option not known, a name that comes from an
// expansion), a command is not.
func TestWantsRaw(t *testing.T) {
	for _, tc := range []struct {
		cmd  string
		want bool
	}{
		// The tools, bare or any path.
		{"preline procmail", true},
		{"/var/qmail/bin/preline procmail", true},
		{"condredirect a@b false", true},
		{"forward a@b", true},
		{"bouncesaying no false", true},
		{"except true", true},
		{"/usr/sbin/sendmail -oi carol@x", true},
		{"sendmail -t", true},
		{"qmail-inject -n carol@x", true},
		{"/var/qmail/bin/qmail-inject carol@x", true},
		{"procmail", false},
		{"prelinex procmail", false},
		{"sendmail.postfix -t", false},
		{"echo preline", false},
		{"cat > preline", false},
		{"cat preline", false},
		{"'pre'line procmail", true},
		{"pre\\line procmail", true},
		{`"$HOME"/bin/preline procmail`, true},
		{"$HOME/bin/preline procmail", true},
		{"~/bin/preline procmail", true},
		{"prel* procmail", false},
		{"$X procmail", false},
		{"preline$X procmail", false},
		{"$(echo preline) procmail", false},
		{"`echo preline` procmail", false},
		{"sh -c 'preline procmail'", false},
		// Shell prefixes, grouping, lists.
		{"exec preline procmail", true},
		{"FOO=1 preline procmail", true},
		{"FOO='a b' BAR=$(date) preline procmail", true},
		{"'FOO=1' preline procmail", false},
		{"exec FOO=1 preline procmail", false},
		{"FOO=1 exec preline procmail", true},
		{"PATH=/bin:/usr/bin; preline procmail", true},
		{"cd $HOME && preline procmail", true},
		{"cd $HOME || exit 75; preline procmail", true},
		{"{ preline procmail; }", true},
		{"{ { preline procmail; }; }", true},
		{"'{' preline procmail", false},
		{"{preline procmail; }", false},
		{"( preline procmail )", true},
		{"! preline procmail", true},
		{"true & preline procmail", true},
		{"cat | preline procmail", true},
		{"true\npreline procmail", true},
		{"cat # ; preline", false},
		{"cat; # preline", false},
		{"echo '; preline'", false},
		{"echo \"; preline\"", false},
		{"echo \\; preline", false},
		{"echo $(cd /; preline x) > f", false},
		{"echo ${X:-;preline}", false},
		{"cat <<EOF\npreline\nEOF", false},
		{"2>/dev/null preline procmail", true},
		{">out preline procmail", true},
		{"preline procmail 2>&1 >/dev/null", true},
		{"echo x >preline", false},
		{"echo x 2> preline", false},
		{"3<&0 preline procmail", true},
		{"cat <&3; preline procmail", true},
		// exec's options.
		{"exec -a x preline procmail", true},
		{"exec -c -l preline procmail", true},
		{"exec -cla x preline procmail", true},
		{"exec -ax preline procmail", true},
		{"exec -- preline procmail", true},
		{"exec -z preline procmail", false},
		{"exec -a", false},
		{"exec 3<&0", false},
		// env's.
		{"env preline procmail", true},
		{"/usr/bin/env preline procmail", true},
		{"env -u MAILDIR preline procmail", true},
		{"env -uMAILDIR preline procmail", true},
		{"env --unset=MAILDIR preline procmail", true},
		{"env --unset MAILDIR preline procmail", true},
		{"env -iu FOO preline procmail", true},
		{"env -i preline", true},
		{"env - preline", true},
		{"env -i - FOO=1 'BAR=a b' preline", true},
		{"env -- preline procmail", true},
		{"env -C / preline", true},
		{"env -C/ preline", true},
		{"env --chdir=/ preline", true},
		{"env --chdir / preline", true},
		{"env -v --debug preline", true},
		{"env --ignore-environment preline", true},
		{"env --block-signal preline", true},
		{"env --default-signal=PIPE --ignore-signal=INT --list-signal-handling preline", true},
		{"env -S 'preline procmail'", false},
		{"env --split-string='preline procmail'", false},
		{"env -0 preline", false},
		{"env --null preline", false},
		{"env --ign preline", false},
		{"env -x preline", false},
		{"env -u", false},
		{"env FOO=$X preline", false},
		{`env "FOO=$X" preline`, true},
		{"env $OPTS preline", false},
		{`env -C "$HOME" preline`, true},
		// nice's.
		{"nice preline", true},
		{"nice -n 5 preline", true},
		{"nice -n5 preline", true},
		{"nice -n -5 preline", true},
		{"nice --adjustment=5 preline", true},
		{"nice --adjustment 5 preline", true},
		{"nice -5 preline", true},
		{"nice --5 preline", true},
		{"nice -+5 preline", true},
		{"nice -n 5 -n 3 -- preline", true},
		{"nice -n x preline", false},
		{"nice -x preline", false},
		{"/usr/bin/nice -10 preline", true},
		// command's, nohup's, setsid's.
		{"command preline procmail", true},
		{"command -p preline procmail", true},
		{"command -- preline procmail", true},
		{"command -v preline", false},
		{"command -V preline", false},
		{"nohup preline procmail", true},
		{"nohup -- preline procmail", true},
		{"/usr/bin/nohup preline procmail", true},
		{"nohup --help preline", false},
		{"setsid preline procmail", true},
		{"setsid -f -w -c preline procmail", true},
		{"setsid -fw --ctty preline procmail", true},
		{"setsid --wait --fork preline procmail", true},
		{"setsid -x preline", false},
		// Together.
		{"exec env -u MAILDIR nice -n 5 nohup setsid command preline procmail", true},
		{"exec nice env MAILDIR=x preline procmail", true},
		{"nice FOO=1 preline procmail", false},
		{"time preline procmail", false},
		{"if true; then preline procmail; fi", false},
	} {
		if got := wantsRaw(tc.cmd); got != tc.want {
			t.Errorf("wantsRaw(%q) = %v, want %v", tc.cmd, got, tc.want)
		}
	}
}

// TestNoTerminal: preline's program gets a process group of its own only
// when opening /dev/tty fails with ENXIO (no controlling terminal, as
// under qmail-local); not when it opens, nor on another failure.
func TestNoTerminal(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&os.PathError{Op: "open", Path: "/dev/tty", Err: syscall.ENXIO}, true},
		{nil, false},
		{&os.PathError{Op: "open", Path: "/dev/tty", Err: syscall.ENOENT}, false},
		{&os.PathError{Op: "open", Path: "/dev/tty", Err: syscall.EACCES}, false},
		{&os.PathError{Op: "open", Path: "/dev/tty", Err: syscall.EMFILE}, false},
	} {
		if got := noTerminal(tc.err); got != tc.want {
			t.Errorf("noTerminal(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
