package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/test/harness"
)

// capture is a stand-in qmail-queue that keeps what it was given.
type capture struct{ dir, prog string }

func newCapture(t *testing.T) *capture {
	t.Helper()
	dir := harness.TempRoot(t)
	c := &capture{dir: dir, prog: filepath.Join(dir, "qq")}
	script := fmt.Sprintf("#!/bin/sh\n/bin/cat > '%s/message'\n/bin/cat <&1 > '%s/envelope'\nexit 0\n", dir, dir)
	if err := os.WriteFile(c.prog, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *capture) read(t *testing.T) (msg, env string) {
	t.Helper()
	m, err := os.ReadFile(filepath.Join(c.dir, "message"))
	if err != nil {
		t.Fatalf("qmail-queue was not run: %v", err)
	}
	e, _ := os.ReadFile(filepath.Join(c.dir, "envelope"))
	return string(m), string(e)
}

// runProg runs ROOT/bin/NAME (or argv0 when it is a path) with env and stdin.
func runProg(t *testing.T, path string, env []string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Dir = "/"
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return o.String(), e.String(), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not finish in 60 s", path)
	}
	return o.String(), e.String(), 0
}

func TestSendmailCaptured(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test; skipped under -short")
	}
	tr := harness.Install(t, harness.WithMe("mx.example.org"))
	tr.Control("defaultdomain", "example.org")
	tests := []struct {
		name     string
		args     []string
		env      []string
		in       string
		envelope string
		has      []string
		lacks    []string
	}{
		{name: "t with Bcc", args: []string{"-t"},
			in:       "From: alice@example.org\nTo: bob@example.com\nCc: carol\nBcc: dave@example.net,\n erin\nSubject: bcc\n\nbody\n",
			envelope: "Falice@mx.example.org\x00Tbob@example.com\x00Tcarol@mx.example.org\x00Terin@mx.example.org\x00Tdave@example.net\x00\x00",
			has:      []string{"To: bob@example.com\n", "Cc: carol@mx.example.org\n"},
			lacks:    []string{"Bcc", "dave", "erin"}},
		{name: "t plus argument", args: []string{"-t", "-i", "zed@example.net"},
			in:       "To: bob@example.com\n\nx\n",
			envelope: "Falice@mx.example.org\x00Tzed@example.net\x00Tbob@example.com\x00\x00"},
		{name: "cron", args: []string{"-FCronDaemon", "-i", "-B8BITMIME", "-oem", "user"},
			in:       "Subject: Cron <user@host> /usr/bin/true\nContent-Type: text/plain; charset=UTF-8\n\noutput\n",
			envelope: "Falice@mx.example.org\x00Tuser@mx.example.org\x00\x00",
			has:      []string{"From: \"CronDaemon\" <alice@mx.example.org>\n", "Cc: recipient list not shown: ;\n", "\n\noutput\n"}},
		{name: "f", args: []string{"-oi", "-f", "list-bounces@lists.example.org", "--", "bob@example.com"},
			env:      []string{"NAME=Alice", "MAILHOST=home.example"},
			in:       "Subject: f\n\nx\n",
			envelope: "Flist-bounces@lists.example.org\x00Tbob@example.com\x00\x00",
			has:      []string{"From: list-bounces@lists.example.org\n"},
			lacks:    []string{"Alice", "home.example"}},
		{name: "dsn flags ignored", args: []string{"-N", "success,failure", "-R", "hdrs", "-V", "id1", "-odb", "-v", "bob@example.com"},
			in:       "Subject: dsn\n\nx\n",
			envelope: "Falice@mx.example.org\x00Tbob@example.com\x00\x00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCapture(t)
			env := append([]string{"USER=alice", "PATH=/usr/bin:/bin", "QMAILQUEUE=" + c.prog}, tc.env...)
			_, errs, code := runProg(t, tr.Bin("sendmail"), env, tc.in, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			msg, envl := c.read(t)
			if envl != tc.envelope {
				t.Errorf("envelope %q, want %q", envl, tc.envelope)
			}
			for _, h := range tc.has {
				if !strings.Contains(msg, h) {
					t.Errorf("message lacks %q:\n%s", h, msg)
				}
			}
			for _, h := range tc.lacks {
				if strings.Contains(msg, h) {
					t.Errorf("message contains %q:\n%s", h, msg)
				}
			}
		})
	}
}

func TestSendmailErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test; skipped under -short")
	}
	tr := harness.Install(t)
	c := newCapture(t)
	env := []string{"USER=alice", "QMAILQUEUE=" + c.prog}
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"-Y", "bob"}, 64, "sendmail: illegal option -- Y\nsendmail: usage:"},
		{[]string{"-bd"}, 64, "unsupported mode -bd"},
		{[]string{}, 64, "recipient addresses must be given"},
		{[]string{"-f", "a@b\nBcc: victim@example.com", "bob"}, 64, "header injection refused"},
		{[]string{"-F", "Eve\nBcc: victim@example.com", "bob"}, 64, "header injection refused"},
		{[]string{"-t"}, 65, "no recipients found"},
		{[]string{"-q"}, 75, "qmail-send is not running"},
		{[]string{"-q", "bob"}, 75, "-q only flushes the queue; the recipients and standard input are ignored"},
	}
	for _, tc := range tests {
		_, errs, code := runProg(t, tr.Bin("sendmail"), env, "Subject: x\n\nx\n", tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.stderr) {
			t.Errorf("sendmail %q: exit %d stderr %q, want %d and %q", tc.args, code, errs, tc.code, tc.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(c.dir, "message")); err == nil {
		t.Errorf("a refused invocation ran qmail-queue")
	}
}

// TestSendmailBs speaks SMTP to sendmail -bs, which runs qmail-smtpd.
func TestSendmailBs(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test; skipped under -short")
	}
	tr := harness.Install(t, harness.WithMe("mx.example.org"))
	if _, err := os.Stat(tr.Bin("qmail-smtpd")); err != nil {
		t.Skip("ROOT/bin/qmail-smtpd is not installed: ", harness.BuildError("qmail-smtpd"))
	}
	c := newCapture(t)
	env := []string{"QMAILQUEUE=" + c.prog}
	dialog := "HELO client.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nSubject: bs\r\n\r\nhello\r\n.\r\nQUIT\r\n"
	out, errs, code := runProg(t, tr.Bin("sendmail"), env, dialog, "-bs")
	if code != 0 {
		t.Fatalf("exit %d; stdout %q stderr %q", code, out, errs)
	}
	if !strings.HasPrefix(out, "220 ") || !strings.Contains(out, "\r\n250 ok ") || !strings.Contains(out, "\r\n221 ") {
		t.Errorf("SMTP replies: %q", out)
	}
	msg, envl := c.read(t)
	if envl != "Fa@example.net\x00Tb@example.com\x00\x00" {
		t.Errorf("envelope %q", envl)
	}
	if !strings.Contains(msg, "(sendmail-bs@127.0.0.1)") || !strings.HasSuffix(msg, "Subject: bs\n\nhello\n") {
		t.Errorf("message:\n%s", msg)
	}
}

// TestSendmailBsUserNoTLSWarning: an ordinary user's sendmail -bs may not
// read qmaild's servercert.pem, and is not told so on every run (on a pipe
// STARTTLS protects nothing).
func TestSendmailBsUserNoTLSWarning(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test; skipped under -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run sendmail -bs as another user")
	}
	tr := harness.Install(t, harness.WithMe("mx.example.org"))
	if _, err := os.Stat(tr.Bin("qmail-smtpd")); err != nil {
		t.Skip("ROOT/bin/qmail-smtpd is not installed: ", harness.BuildError("qmail-smtpd"))
	}
	cert := tr.Path("control", "servercert.pem")
	writeCert(t, cert)
	if err := os.Chmod(cert, 0o600); err != nil { // root's: nobody cannot read it
		t.Fatal(err)
	}
	cmd := exec.Command(tr.Bin("sendmail"), "-bs")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Dir = "/"
	cmd.Stdin = strings.NewReader("QUIT\r\n")
	cmd.SysProcAttr = credential(65534, 65534)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		t.Fatalf("sendmail -bs as nobody: %v; stdout %q stderr %q", err, o.String(), e.String())
	}
	if !strings.HasPrefix(o.String(), "220 ") || e.Len() != 0 {
		t.Errorf("stdout %q stderr %q, want a greeting and no warning", o.String(), e.String())
	}
}

// TestSendmailDelivers sends through the real qmail-queue and a running
// qmail, with sendmail reached through a /usr/sbin/sendmail-style symlink.
func TestSendmailDelivers(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test; skipped under -short")
	}
	tr := harness.Install(t)
	link := filepath.Join(harness.TempRoot(t), "sendmail")
	if err := os.Symlink(tr.Bin("sendmail"), link); err != nil {
		t.Fatal(err)
	}
	sys := tr.Start(t, "./Maildir/")
	_ = sys
	in := "To: postmaster\nBcc: root\nSubject: through the queue\n\nhello\n"
	if _, errs, code := runProg(t, link, []string{"USER=alice", "PATH=/usr/bin:/bin"}, in, "-t", "-i"); code != 0 {
		t.Fatalf("sendmail exit %d: %s", code, errs)
	}
	msgs := harness.WaitMaildir(t, 60*time.Second, tr.AliasMaildir(), 2)
	for _, m := range msgs {
		s := string(m)
		if !strings.Contains(s, "Subject: through the queue\n") || strings.Contains(s, "Bcc") {
			t.Errorf("delivered message:\n%s", s)
		}
	}
	// -q asks the running qmail-send to retry now.
	if _, errs, code := runProg(t, link, nil, "", "-q"); code != 0 {
		t.Errorf("sendmail -q with qmail-send running: exit %d: %s", code, errs)
	}
}

// TestMailqLink runs sendmail as mailq (argv[0]) and as sendmail -bp.
func TestMailqLink(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test; skipped under -short")
	}
	tr := harness.Install(t)
	if _, err := os.Stat(tr.Bin("qmail-qread")); err != nil {
		t.Skip("ROOT/bin/qmail-qread is not installed")
	}
	link := filepath.Join(harness.TempRoot(t), "mailq")
	if err := os.Symlink(tr.Bin("sendmail"), link); err != nil {
		t.Fatal(err)
	}
	tr.Control("holdremote", "")
	tr.Start(t, "./Maildir/")
	if _, errs, code := runProg(t, tr.Bin("sendmail"), []string{"USER=alice"}, "Subject: q\n\nx\n", "bob@example.com"); code != 0 {
		t.Fatalf("sendmail: exit %d: %s", code, errs)
	}
	for _, argv := range [][]string{{link}, {tr.Bin("sendmail"), "-bp"}} {
		var out, errs string
		code := -1
		ok := harness.Eventually(30*time.Second, func() bool {
			out, errs, code = runProg(t, argv[0], nil, "", argv[1:]...)
			return code == 0 && strings.Contains(out, "bob@example.com")
		})
		if !ok {
			t.Errorf("%q: exit %d stdout %q stderr %q", argv, code, out, errs)
		}
	}
}

// TestSendmailHardLinkNoLoop: a hard link of sendmail in another bin/
// (ln /var/qmail/bin/sendmail /usr/bin/newaliases) takes that bin's
// parent as its tree, where "bin/newaliases" is sendmail again: it execed
// itself for ever at full CPU (package scripts run newaliases). Now it
// says what is wrong and exits EX_UNAVAILABLE.
func TestSendmailHardLinkNoLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test; skipped under -short")
	}
	tr := harness.Install(t)
	bin := filepath.Join(harness.TempRoot(t), "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"sendmail", "newaliases"} {
		if err := os.Link(tr.Bin("sendmail"), filepath.Join(bin, n)); err != nil {
			t.Skipf("no hard link across these directories: %v", err)
		}
	}
	for _, argv := range [][]string{{"newaliases"}, {"sendmail", "-bi"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, filepath.Join(bin, argv[0]), argv[1:]...)
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		out, _ := cmd.CombinedOutput()
		timedOut := ctx.Err() != nil
		cancel()
		if timedOut {
			t.Fatalf("%q did not end (execs itself?): %q", argv, out)
		}
		if code := cmd.ProcessState.ExitCode(); code != 69 || !strings.Contains(string(out), "is this sendmail itself") {
			t.Errorf("%q: exit %d, output %q", argv, code, out)
		}
	}
}

// TestSendmailHardLinkQueue: a hard link of sendmail outside the tree
// that queues mail explains that its directory is no qmail tree, as -bp
// does; it said only "unable to exec qq (#4.3.0)".
func TestSendmailHardLinkQueue(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test; skipped under -short")
	}
	tr := harness.Install(t)
	dir := harness.TempRoot(t)
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(bin, "sendmail")
	if err := os.Link(tr.Bin("sendmail"), link); err != nil {
		t.Skipf("no hard link across these directories: %v", err)
	}
	for _, tc := range []struct {
		args []string
		code int
	}{{[]string{"bob"}, 75}, {[]string{"-bp"}, 69}} {
		_, errs, code := runProg(t, link, []string{"USER=alice", "PATH=/usr/bin:/bin"}, "Subject: x\n\nx\n", tc.args...)
		want := "sendmail: fatal: " + dir + " is no qmail tree (there is no " + filepath.Join(bin, "qmail-queue") + ")"
		if code != tc.code || !strings.HasPrefix(errs, want) || !strings.Contains(errs, "(ln -s)") {
			t.Errorf("%q: exit %d, stderr %q", tc.args, code, errs)
		}
	}
}
