package sendmail

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

// sendmailRun runs Main with args (argv[0] included) on the fake tree and
// returns the exit code, standard error, and what the capture qmail-queue
// got: the envelope and the message (nil when it was not started).
func sendmailRun(t *testing.T, args []string, in string, extraEnv ...string) (code int, stderr string, envl, msg []byte) {
	t.Helper()
	root, capdir, env := fakeTree(t)
	env = append(env, extraEnv...)
	var out, errb bytes.Buffer
	sys := Sys{Chdir: func(string) error { return nil }, Exec: func(string, []string, []string) error { return errors.New("no exec in tests") }}
	code = Main(args, root, env, strings.NewReader(in), &out, &errb, sys)
	envl, _ = os.ReadFile(filepath.Join(capdir, "envelope"))
	msg, err := os.ReadFile(filepath.Join(capdir, "message"))
	if err != nil {
		msg = nil
	}
	return code, errb.String(), envl, msg
}

// TestUnclosedInArgument: a quoted string or comment left open in a
// recipient argument runs to the end of it; the words before it are no
// addresses of their own. "admin@x.org (Admin" queued admin@x.org and a
// made-up local recipient "(Admin" (which bounced). The element is one
// address, read by qmail-inject's rule as a -f value is: refused (65,
// nothing queued) when its domain cannot be read, one mailbox when the
// open quote is in its local part.
func TestUnclosedInArgument(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		envelope string
		errHas   string
	}{
		{name: "open comment after an address", args: []string{"admin@x.org (Admin"}, code: ExDataErr,
			errHas: "sendmail: fatal: unable to parse address: admin@x.org (Admin\n"},
		{name: "open comment with a comma", args: []string{"a@x.org (Admin, Ops"}, code: ExDataErr,
			errHas: "unable to parse address: a@x.org (Admin, Ops\n"},
		{name: "open comment after two addresses", args: []string{"a@x.org b@y.org (c"}, code: ExDataErr,
			errHas: "unable to parse address: a@x.org b@y.org (c\n"},
		// The -f value is refused by the same rule, and named as the
		// -f value, as its other errors name it.
		{name: "-f alike", args: []string{"-f", "bob@x.org (Bob", "joe"}, code: ExDataErr,
			errHas: `sendmail: fatal: unable to parse the -f address "bob@x.org (Bob": the domain after its last @ cannot be read`},
		{name: "open quote", args: []string{`a@x.org "b c@y.org`},
			envelope: "Falice@mx.example.org\x00Ta@x.org \"b c@y.org\x00\x00"},
		// Elements before the one left open are read as before.
		{name: "open comment in a later element", args: []string{"k@z.org, admin@x.org (Admin"}, code: ExDataErr,
			errHas: "unable to parse address: admin@x.org (Admin\n"},
		// A closed comment is still a word of its own, and no recipient.
		{name: "closed comment", args: []string{"a@x.org (Admin) b@y.org"},
			envelope: "Falice@mx.example.org\x00Ta@x.org\x00Tb@y.org\x00\x00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr, envl, _ := sendmailRun(t, append([]string{"sendmail"}, tc.args...), "Subject: s\n\nb\n")
			if code != tc.code || !strings.Contains(stderr, tc.errHas) {
				t.Errorf("exit %d, stderr %q; want %d with %q", code, stderr, tc.code, tc.errHas)
			}
			if string(envl) != tc.envelope {
				t.Errorf("envelope %q, want %q", envl, tc.envelope)
			}
		})
	}
	got, err := SplitRecipients([]string{"admin@x.org (Admin"})
	if err != nil || len(got) != 1 || got[0] != "admin@x.org (Admin" {
		t.Errorf("SplitRecipients: %q, %v; want the one element", got, err)
	}
}

// TestHeaderRecipientLineEnd: with -t, an address taken from the header
// with a CR or LF in it (quoted, or after a backslash) refuses the
// message, exit 65, before qmail-queue is started, as in a recipient
// argument: it was queued, the line end in the envelope, from where it
// reaches Delivered-To, a Return-Path and qmail-remote's RCPT.
func TestHeaderRecipientLineEnd(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		args     []string
		errHas   string
	}{
		{name: "backslash LF", in: "To: a@x.org\\\n\nb\n",
			errHas: "sendmail: fatal: CR, LF or NUL in an address of the To: field, \"a@x.org\\n\" (header injection refused)\n"},
		{name: "quoted CR, with an argument", in: "To: \"a\rRCPT TO:<v@y.org>\"@x.org\nSubject: s\n\nb\n", args: []string{"k@z.org"},
			errHas: "CR, LF or NUL in an address of the To: field, \"a\\rRCPT TO:<v@y.org>@x.org\" (header injection refused)"},
		{name: "in Bcc after good ones", in: "To: k@z.org\nBcc: j@z.org, \"x\ry\"@z.org\n\n" + strings.Repeat("body line\n", 20000),
			errHas: "of the Bcc: field, \"x\\ry@z.org\""},
		{name: "resent", in: "To: k@z.org\nResent-To: x@z.org\\\n\nb\n",
			errHas: "of the Resent-To: field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr, envl, msg := sendmailRun(t, append([]string{"sendmail", "-t"}, tc.args...), tc.in)
			if code != ExDataErr || !strings.Contains(stderr, tc.errHas) {
				t.Errorf("exit %d, stderr %q; want %d with %q", code, stderr, ExDataErr, tc.errHas)
			}
			if envl != nil || msg != nil {
				t.Errorf("qmail-queue was run: envelope %q, message %q", envl, msg)
			}
		})
	}
}

// TestFromLineDropped: a leading mbox "From " line (stored mail handed
// back to sendmail) is dropped, as sendmail and Postfix drop it; it was
// queued as an "MBOX-Line:" field. Only the first line, only "From ".
func TestFromLineDropped(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		args     []string
		envelope string
		msgHas   []string
		msgLacks []string
	}{
		{name: "mbox line", in: "From bob@x.org Mon Nov 29 10:00:00 2026\nSubject: s\n\nb\n",
			msgHas: []string{"\nSubject: s\n\nb\n"}, msgLacks: []string{"MBOX-Line", "From bob"}},
		{name: "CR LF", in: "From bob@x.org Mon Nov 29 10:00:00 2026\r\nSubject: s\r\n\r\nb\r\n",
			msgHas: []string{"\nSubject: s\n\nb\n"}, msgLacks: []string{"MBOX-Line", "From bob", "\r"}},
		{name: "only the first", in: "From a@x.org Mon\nFrom b@x.org Tue\nSubject: s\n\nb\n",
			msgHas: []string{"MBOX-Line: From b@x.org Tue\n"}, msgLacks: []string{"From a@x.org"}},
		{name: "with -t", in: "From a@x.org Mon\nTo: k@z.org\n\nb\n", args: []string{"-t"},
			envelope: "Falice@mx.example.org\x00Tk@z.org\x00\x00", msgLacks: []string{"From a@x.org"}},
		{name: "a long one", in: "From " + strings.Repeat("x", 70000) + "\nSubject: s\n\nb\n",
			msgHas: []string{"\nSubject: s\n\nb\n"}, msgLacks: []string{"xxx"}},
		{name: "nothing else", in: "From a@x.org Mon",
			msgLacks: []string{"From a@x.org"}},
		{name: "not at the top", in: "Subject: s\nFrom a@x.org Mon\n\nb\n",
			msgHas: []string{"MBOX-Line: From a@x.org Mon\n"}},
		{name: "quoted", in: ">From a@x.org Mon\nSubject: s\n\nb\n",
			msgHas: []string{"\n>From a@x.org Mon\n"}},
		{name: "lower case", in: "from a@x.org Mon\nSubject: s\n\nb\n",
			msgHas: []string{"\nfrom a@x.org Mon\n"}},
		{name: "a From field", in: "From: a@x.org\nSubject: s\n\nb\n",
			msgHas: []string{"From: a@x.org\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"sendmail"}, tc.args...)
			if len(tc.args) == 0 {
				args = append(args, "joe")
			}
			code, stderr, envl, msg := sendmailRun(t, args, tc.in)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if tc.envelope != "" && string(envl) != tc.envelope {
				t.Errorf("envelope %q, want %q", envl, tc.envelope)
			}
			checkMessage(t, msg, tc.msgHas, tc.msgLacks)
		})
	}
}

// TestFromLineReader: the first line goes when it starts "From ", however
// the reads split the input; a read error on the way is returned.
func TestFromLineReader(t *testing.T) {
	split := map[string]func(io.Reader) io.Reader{
		"whole": func(r io.Reader) io.Reader { return r },
		"bytes": iotest.OneByteReader,
		"half":  iotest.HalfReader,
	}
	for in, want := range map[string]string{
		"From a\nb\n":      "b\n",
		"From a":           "",
		"From \n":          "",
		"From":             "From",
		"Fro":              "Fro",
		"":                 "",
		"FROM a\nb\n":      "FROM a\nb\n",
		"x\nFrom a\n":      "x\nFrom a\n",
		"From a\nFrom b\n": "From b\n",
	} {
		for name, f := range split {
			b, err := io.ReadAll(newFromLineReader(f(strings.NewReader(in))))
			if err != nil || string(b) != want {
				t.Errorf("%s %q: %q %v, want %q", name, in, b, err, want)
			}
		}
	}
	boom := errors.New("boom")
	for _, in := range []io.Reader{iotest.ErrReader(boom), io.MultiReader(strings.NewReader("From a"), iotest.ErrReader(boom))} {
		if _, err := io.ReadAll(newFromLineReader(in)); !errors.Is(err, boom) {
			t.Errorf("error %v, want %v", err, boom)
		}
	}
}

// TestSenderWithoutLocalPart: -f with nothing before its @ is the
// envelope sender as given, and the From field matches it, as for any -f
// (the empty QMAILUSER -f set was dropped as an empty variable, and From
// named the caller: root@x.org for -f @x.org).
func TestSenderWithoutLocalPart(t *testing.T) {
	code, stderr, envl, msg := sendmailRun(t, []string{"sendmail", "-f", "@x.org", "joe"}, "Subject: s\n\nb\n", "QMAILUSER=zed")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if want := "F@x.org\x00Tjoe@mx.example.org\x00\x00"; string(envl) != want {
		t.Errorf("envelope %q, want %q", envl, want)
	}
	if !bytes.Contains(msg, []byte("\nFrom: \"\"@x.org\n")) {
		t.Errorf("From does not match -f:\n%s", msg)
	}
	// An empty variable of the caller's is still no user.
	code, stderr, envl, msg = sendmailRun(t, []string{"sendmail", "joe"}, "Subject: s\n\nb\n", "QMAILUSER=")
	if code != 0 || !strings.HasPrefix(string(envl), "Falice@mx.example.org\x00") || !bytes.Contains(msg, []byte("\nFrom: alice@mx.example.org\n")) {
		t.Errorf("exit %d, stderr %q, envelope %q, message:\n%s", code, stderr, envl, msg)
	}
}

// TestMailqOptionError: mailq's option errors name mailq.
func TestMailqOptionError(t *testing.T) {
	var errb bytes.Buffer
	code := Main([]string{"mailq", "-k"}, t.TempDir(), nil, strings.NewReader(""), &bytes.Buffer{}, &errb, Sys{})
	if want := "mailq: illegal option -- k\n" + MailqUsage + "\n"; code != ExUsage || errb.String() != want {
		t.Errorf("exit %d, stderr %q; want %d, %q", code, errb.String(), ExUsage, want)
	}
}
