package inject

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// injectMain runs qmail-inject's Main with args against a capturing
// queue and returns the exit code, stdout, stderr and whether anything
// reached the queue.
func injectMain(t *testing.T, extraEnv []string, input string, args ...string) (code int, out, errs string, queued bool) {
	t.Helper()
	root, dir, env := captureQueue(t)
	env = append(env, extraEnv...)
	var o, e bytes.Buffer
	code = Main(append([]string{"qmail-inject"}, args...), root, env, strings.NewReader(input), &o, &e)
	for _, f := range []string{"started", "envelope"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			queued = true
		}
	}
	return code, o.String(), e.String(), queued
}

// A -f value with a CR, LF or NUL is refused, as sendmail refuses it: the
// envelope sender "a\nX: y@sink.test" was queued as it is, and the line
// end reached the failure notice's header and qmail-remote's MAIL FROM.
func TestSenderLineEndsRefused(t *testing.T) {
	const want = "qmail-inject: fatal: CR, LF or NUL in the -f argument (header injection refused)\n"
	bads := []string{"a\nX: y@sink.test", "a@b\r\nRCPT TO:<x@evil.example>", "a\r@b", "a@b\x00c", "\n"}
	for _, bad := range bads {
		for _, args := range [][]string{
			{"-f", bad, "root@localhost"},
			{"-f" + bad, "root@localhost"},
			{"-n", "-f", bad, "root@localhost"},
			{"-hf", bad},
		} {
			code, out, errs, queued := injectMain(t, nil, "Subject: t\n\nb\n", args...)
			if code != 100 || errs != want || out != "" || queued {
				t.Errorf("%q: exit %d stderr %q stdout %q queued %v, want 100 %q", args, code, errs, out, queued, want)
			}
		}
	}

	// sendmail runs the job in process (Exec): the same refusal, a
	// permanent failure that is not the queue's.
	root, _, env := captureQueue(t)
	s := "a\nX: y@sink.test"
	j := &Job{Root: root, Env: env, Name: "sendmail", Options: Options{Sender: &s, Args: []string{"bob"}},
		Stdin: strings.NewReader("x\n"), Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}
	if e := j.Exec(); e == nil || e.Code != 100 || e.Queue || e.Text != "CR, LF or NUL in the -f argument (header injection refused)" {
		t.Errorf("Exec: %+v", e)
	}
}

// A recipient argument with a CR, LF or NUL is refused whenever the
// arguments are used (-a, -A, -H): it reached the envelope as it is, and
// from there Delivered-To and qmail-remote's RCPT TO. With -h the
// arguments are ignored, so they are not looked at either.
func TestRecipientLineEndsRefused(t *testing.T) {
	bads := []string{"r\nX: y@sink.test", "r@b\r\nDATA", "r\r@b", "r@b\x00c"}
	for _, bad := range bads {
		want := "qmail-inject: fatal: CR, LF or NUL in the recipient argument " + strconv.Quote(bad) + " (header injection refused)\n"
		for _, args := range [][]string{
			{bad},
			{"ok@example.org", bad},
			{"-a", bad},
			{"-H", "ok@example.org", bad},
			{"-n", bad},
			{"-f", "s@example.org", "--", bad},
		} {
			code, out, errs, queued := injectMain(t, nil, "To: h@example.org\n\nb\n", args...)
			if code != 100 || errs != want || out != "" || queued {
				t.Errorf("%q: exit %d stderr %q stdout %q queued %v, want 100 %q", args, code, errs, out, queued, want)
			}
		}
		root, dir, env := captureQueue(t)
		var o, e bytes.Buffer
		code := Main([]string{"qmail-inject", "-h", bad}, root, env, strings.NewReader("To: h@example.org\n\nb\n"), &o, &e)
		envelope, _ := os.ReadFile(filepath.Join(dir, "envelope"))
		if code != 0 || string(envelope) != "Fu@defaulthost.defaultdomain\x00Th@example.org\x00\x00" {
			t.Errorf("-h %q: exit %d %q envelope %q", bad, code, e.String(), envelope)
		}
	}
}

// QMAILDEFAULTHOST, QMAILDEFAULTDOMAIN and QMAILPLUSDOMAIN are appended to
// addresses by the rewriting; as a literal, a quoted string or text that
// does not tokenize they kept a line end, in the envelope sender and in
// every recipient. They are refused as the sender's own variables are.
func TestControlOverrideLineEndsRefused(t *testing.T) {
	for _, c := range []struct{ v, val string }{
		{"QMAILDEFAULTHOST", "[h\nX: y]"},
		{"QMAILDEFAULTHOST", "h\r"},
		{"QMAILDEFAULTDOMAIN", "\"d\nX: y"},
		{"QMAILDEFAULTDOMAIN", "d\x00e"},
		{"QMAILPLUSDOMAIN", "[p\r\nX: y]"},
	} {
		want := "qmail-inject: fatal: CR, LF or NUL in $" + c.v + " (header injection refused)\n"
		code, out, errs, queued := injectMain(t, []string{c.v + "=" + c.val}, "To: h\n\nb\n", "-f", "a", "c@d+")
		if code != 100 || errs != want || out != "" || queued {
			t.Errorf("%s=%q: exit %d stderr %q stdout %q queued %v, want 100 %q", c.v, c.val, code, errs, out, queued, want)
		}
	}
	// Their ordinary values still rewrite.
	code, _, errs, queued := injectMain(t, []string{"QMAILDEFAULTHOST=dh", "QMAILDEFAULTDOMAIN=dd.example", "QMAILPLUSDOMAIN=pd.example"},
		"To: h\n\nb\n", "-f", "a", "c@d+")
	if code != 0 || errs != "" || !queued {
		t.Errorf("ordinary overrides: exit %d %q queued %v", code, errs, queued)
	}
}
