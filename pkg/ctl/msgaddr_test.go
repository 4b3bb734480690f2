package ctl

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/sendmail"
)

// queuedBySendmail runs sendmail on root with args (its -f and recipient
// arguments) and returns the envelope it queued: the sender and the
// recipients, as qmail-queue got them ($QMAILQUEUE captures them).
func queuedBySendmail(t *testing.T, root string, args ...string) (string, []string) {
	t.Helper()
	capdir := t.TempDir()
	qq := filepath.Join(capdir, "qq")
	script := "#!/bin/sh\n/bin/cat > /dev/null\n/bin/cat <&1 > '" + capdir + "/envelope'\n"
	if err := os.WriteFile(qq, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	sys := sendmail.Sys{Chdir: func(string) error { return nil }}
	code := sendmail.Main(append([]string{"sendmail"}, args...), root, []string{"USER=alice", "QMAILQUEUE=" + qq},
		strings.NewReader("Subject: a\n\nb\n"), &bytes.Buffer{}, &errb, sys)
	if code != 0 {
		t.Fatalf("sendmail %q: exit %d, %s", args, code, errb.String())
	}
	env, err := os.ReadFile(filepath.Join(capdir, "envelope"))
	if err != nil {
		t.Fatal(err)
	}
	var sender string
	var recips []string
	for _, f := range strings.Split(strings.TrimSuffix(string(env), "\x00\x00"), "\x00") {
		switch {
		case strings.HasPrefix(f, "F"):
			sender = f[1:]
		case strings.HasPrefix(f, "T"):
			recips = append(recips, f[1:])
		}
	}
	return sender, recips
}

// TestMsgAddressRewritten: the ADDRESS of hold|release from|to gets the
// rewriting sendmail gives a recipient argument and a -f address (the
// tree's defaulthost, defaultdomain and plusdomain), so that it names the
// address sendmail queued: in a tree whose defaultdomain is localdomain,
// mail sent to carol@localhost or to carol is queued to
// carol@localhost.localdomain, and "hold to carol@localhost" or "hold to
// carol" must ask qmail-send for that address (it asked for
// carol@localhost, which held none of them: "0 messages ... held"). Every
// case is checked against what sendmail itself queues on the same tree.
// The address as written is asked for as well when it differs: mail that
// came by SMTP is queued without the rewriting.
func TestMsgAddressRewritten(t *testing.T) {
	root := makeTree(t)
	for name, v := range map[string]string{"me": "mx.example.org", "defaulthost": "localhost",
		"defaultdomain": "localdomain", "plusdomain": "plus.example"} {
		if err := os.WriteFile(filepath.Join(root, "control", name), []byte(v+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mkfifo(t, root)
	startFake(t, root, "FAKE_SEND_CTL=1")
	tests := []struct {
		dir, typed, want string
		// written is the address before the rewriting, asked for too
		// when qmail-send would not take it for the rewritten one:
		// mail that came by SMTP is queued as written.
		written string
	}{
		{"to", "carol@localhost", "carol@localhost.localdomain", "carol@localhost"},
		{"to", "carol", "carol@localhost.localdomain", "carol"},
		{"to", "<carol>", "carol@localhost.localdomain", "carol"},
		{"to", "carol@localhost.localdomain", "carol@localhost.localdomain", ""},
		{"to", "Carol@LocalHost.LocalDomain", "Carol@LocalHost.LocalDomain", ""},
		{"to", "carol@a.test.", "carol@a.test", ""}, // the same to qmail-send
		{"to", "carol@a.test", "carol@a.test", ""},
		{"to", "carol@a+", "carol@a.plus.example", "carol@a+"},
		{"to", "carol@[127.0.0.1]", "carol@[127.0.0.1]", ""},
		{"to", `"joe smith"`, "joe smith@localhost.localdomain", "joe smith"},
		{"from", "carol@localhost", "carol@localhost.localdomain", "carol@localhost"},
		{"from", "carol", "carol@localhost.localdomain", "carol"},
		{"from", "<carol@localhost>", "carol@localhost.localdomain", "carol@localhost"},
		{"from", "carol@a.test", "carol@a.test", ""},
		{"from", "mailer-daemon", "<>", ""},
		{"from", "<>", "<>", ""},
	}
	for _, tc := range tests {
		// What sendmail queues for the same address.
		queued := ""
		if tc.dir == "to" {
			_, r := queuedBySendmail(t, root, tc.typed)
			if len(r) != 1 {
				t.Fatalf("sendmail %q queued recipients %q", tc.typed, r)
			}
			queued = r[0]
		} else {
			queued, _ = queuedBySendmail(t, root, "-f", tc.typed, "x@a.test")
		}
		if queued == "" {
			queued = "<>"
		}
		if queued != tc.want {
			t.Errorf("sendmail queued %s %q as %q, the test wants %q", tc.dir, tc.typed, queued, tc.want)
		}
		for _, verb := range []string{"hold", "release"} {
			code, out, errs := run(t, root, verb, tc.dir, tc.typed)
			want := "fake " + verb + "-" + tc.dir + " " + queued + "\n"
			if tc.written != "" {
				want += "fake " + verb + "-" + tc.dir + " " + tc.written + "\n"
			}
			if code != 0 || out != want || errs != "" {
				t.Errorf("%s %s %q: exit %d, stdout %q, stderr %q; want %q", verb, tc.dir, tc.typed, code, out, errs, want)
			}
		}
	}
}

// TestMsgAddressNoControls: without the rewriting files qmail's defaults
// apply (me, then the file's own name), as sendmail's; a control file that
// cannot be read is a temporary failure (exit 111), not a wrong address.
func TestMsgAddressNoControls(t *testing.T) {
	root := makeTree(t)
	mkfifo(t, root)
	startFake(t, root, "FAKE_SEND_CTL=1")
	_, r := queuedBySendmail(t, root, "x@y")
	if len(r) != 1 || r[0] != "x@y.defaultdomain" {
		t.Fatalf("sendmail queued %q", r)
	}
	if code, out, errs := run(t, root, "hold", "to", "x@y"); code != 0 || out != "fake hold-to x@y.defaultdomain\nfake hold-to x@y\n" {
		t.Errorf("hold to x@y: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	// A directory in place of the file: unreadable as root too.
	if err := os.Mkdir(filepath.Join(root, "control", "defaultdomain"), 0o755); err != nil {
		t.Fatal(err)
	}
	code, out, errs := run(t, root, "hold", "to", "x@y")
	if code != ExitTemp || out != "" || !strings.Contains(errs, "hold to: unable to read control/defaultdomain") {
		t.Errorf("unreadable control: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}
