package test

// The .qmail tools (maildirmake, preline, bouncesaying, condredirect,
// except, forward) in a running system: real mail, queued and delivered by
// qmail-send and qmail-local, to a user whose .qmail files use them.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/test/harness"
)

// deliveryResult waits for the end of the local delivery to rcpt and
// returns its log line ("delivery N: success: ...").
func deliveryResult(t *testing.T, sys *harness.System, rcpt string) string {
	t.Helper()
	start := regexp.MustCompile(`starting delivery (\d+): msg \d+ to local ` + regexp.QuoteMeta(rcpt) + `$`)
	var result string
	if !harness.Eventually(30*time.Second, func() bool {
		id := ""
		for _, l := range sys.Lines() {
			if m := start.FindStringSubmatch(l); m != nil && id == "" {
				id = m[1]
				continue
			}
			if id != "" && strings.Contains(l, "delivery "+id+": ") && !strings.Contains(l, "starting delivery") {
				result = l
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no delivery to %s ended within 30s; log:\n%s", rcpt, sys.Log())
	}
	return result
}

func TestUsertoolsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	tr := harness.Install(t)
	a := tr.IDs().Alias
	// box sends the mail (and gets the bounce); other is where
	// condredirect and forward send it. Both are Maildirs in the alias home.
	for _, p := range []string{"box", "other"} {
		maildirAt(t, tr.Path("alias", p), a.UID, a.GID)
		aliasWrite(t, tr, ".qmail-"+p, "./"+p+"/\n", 0o644)
	}

	// uma has a home of her own and her extensions (uma-NAME) there.
	uid, gid := a.UID, a.GID
	if os.Geteuid() == 0 {
		uid = harness.TestUIDBase + 31
	}
	home := tr.Path("home-uma")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	// Her Maildir is made with maildirmake; a second run refuses.
	maildir := filepath.Join(home, "Maildir")
	if out, code := tr.Run(t, nil, "maildirmake", maildir); code != 0 || out != "" {
		t.Fatalf("maildirmake: exit %d, %q", code, out)
	}
	if out, code := tr.Run(t, nil, "maildirmake", maildir); code != 111 || !strings.Contains(out, maildir) {
		t.Fatalf("maildirmake on an existing Maildir: exit %d, %q", code, out)
	}
	for _, p := range []string{home, maildir, maildir + "/tmp", maildir + "/new", maildir + "/cur"} {
		os.Chown(p, uid, gid)
	}
	assign, _ := os.ReadFile(tr.Path("users", "assign"))
	entries := fmt.Sprintf("=uma:uma:%[1]d:%[2]d:%[3]s:::\n+uma-:uma:%[1]d:%[2]d:%[3]s:-::\n", uid, gid, home)
	os.WriteFile(tr.Path("users", "assign"), []byte(entries+string(assign)), 0o644)
	if out, code := tr.Run(t, nil, "qmail-newu"); code != 0 {
		t.Fatalf("qmail-newu: %d %s", code, out)
	}
	bin := tr.Bin
	qmail := map[string]string{
		// preline, and a Maildir copy to compare its bytes with.
		".qmail":       "|" + bin("preline") + " cat >> prelined\n./Maildir/\n",
		".qmail-flags": "|" + bin("preline") + " -f -d cat >> flagged\n",
		// bouncesaying: the bounce has the text; the line after never runs.
		".qmail-bounce": "|" + bin("bouncesaying") + " \"go away\"\n|touch bounce-after\n",
		// condredirect with a test that succeeds: forwarded, the rest
		// skipped; with one that fails: nothing forwarded, the rest runs.
		".qmail-cond":   "|" + bin("condredirect") + " other@testhost.example true\n|touch cond-after\n",
		".qmail-nocond": "|" + bin("condredirect") + " other@testhost.example false\n|touch nocond-after\n",
		// except: false's exit 1 counts as "did not match": success, and
		// the next line runs (qmail's except).
		".qmail-except": "|" + bin("except") + " false\n|touch except-after\n",
		// forward, then the next line.
		".qmail-fwd": "|" + bin("forward") + " other@testhost.example\n|touch fwd-after\n",
	}
	// Each tool's -h on a line: the usage and exit 100, so the message
	// bounces with the usage as the reason and the next line never runs
	// (exit 0 would report a success and go on).
	helpTools := []string{"forward", "condredirect", "except", "preline", "bouncesaying"}
	for _, name := range helpTools {
		qmail[".qmail-h"+name] = "|" + bin(name) + " -h\n|touch h" + name + "-after\n"
	}
	for name, content := range qmail {
		p := filepath.Join(home, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chown(p, uid, gid)
	}
	sys := tr.Start(t, "./Maildir/")

	messages := map[string]string{}
	send := func(rcpt, subject string) {
		t.Helper()
		// No final newline, and a From_ look-alike in the body: preline
		// passes both through as they are.
		msg := fmt.Sprintf("From: box@testhost.example\nSubject: %s\n\nFrom the body\n%s body, no final newline", subject, subject)
		messages[subject] = msg
		if err := tr.Queue(t, "box@testhost.example", []string{rcpt}, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	send("uma@testhost.example", "to uma")
	send("uma-flags@testhost.example", "to flags")
	send("uma-bounce@testhost.example", "to bounce")
	send("uma-cond@testhost.example", "to cond")
	send("uma-nocond@testhost.example", "to nocond")
	send("uma-except@testhost.example", "to except")
	send("uma-fwd@testhost.example", "to fwd")
	for _, name := range helpTools {
		send("uma-h"+name+"@testhost.example", "to h"+name)
	}

	t.Run("preline", func(t *testing.T) {
		got := waitFile(t, filepath.Join(home, "prelined"), "to uma body, no final newline")
		from, rest, _ := strings.Cut(got, "\n")
		if !strings.HasPrefix(from, "From box@testhost.example ") {
			t.Errorf("From_ line %q", from)
		}
		// After the From_ line, the bytes a Maildir delivery of the same
		// message holds: Return-Path, Delivered-To, the message as queued.
		box := harness.WaitMaildir(t, 30*time.Second, maildir, 1)
		if rest != string(box[0]) {
			t.Errorf("preline gave\n%q\nthe Maildir holds\n%q", rest, box[0])
		}
		if !strings.HasPrefix(rest, "Return-Path: <box@testhost.example>\nDelivered-To: uma@testhost.example\n") ||
			!strings.HasSuffix(rest, messages["to uma"]) {
			t.Errorf("preline gave\n%q", rest)
		}
		flagged := waitFile(t, filepath.Join(home, "flagged"), "to flags body, no final newline")
		if !strings.HasPrefix(flagged, "Return-Path: <box@testhost.example>\nReceived: ") || !strings.HasSuffix(flagged, messages["to flags"]) {
			t.Errorf("preline -f -d gave\n%q", flagged)
		}
	})

	t.Run("bouncesaying", func(t *testing.T) {
		b := waitFor(t, tr.Path("alias", "box"), "<uma-bounce@testhost.example>:\n")
		if !strings.Contains(b, "<uma-bounce@testhost.example>:\ngo away\n") || !strings.Contains(b, "Subject: to bounce\n") {
			t.Errorf("bounce:\n%s", b)
		}
		if r := deliveryResult(t, sys, "uma-bounce@testhost.example"); !strings.Contains(r, ": failure: go_away/") {
			t.Errorf("log: %s", r)
		}
		if _, err := os.Stat(filepath.Join(home, "bounce-after")); err == nil {
			t.Error("the line after bouncesaying ran")
		}
	})

	t.Run("condredirect", func(t *testing.T) {
		m := waitFor(t, tr.Path("alias", "other"), "Subject: to cond\n")
		if !strings.HasPrefix(m, "Return-Path: <box@testhost.example>\nDelivered-To: other@testhost.example\n") ||
			!strings.Contains(m, "\nDelivered-To: uma-cond@testhost.example\n") || !strings.HasSuffix(m, messages["to cond"]) {
			t.Errorf("redirected copy:\n%s", m)
		}
		if r := deliveryResult(t, sys, "uma-cond@testhost.example"); !strings.Contains(r, ": success: condredirect:_qp_") {
			t.Errorf("log: %s", r)
		}
		if _, err := os.Stat(filepath.Join(home, "cond-after")); err == nil {
			t.Error("the line after condredirect ran (exit 99 skips it)")
		}
		// The test failed: nothing forwarded, the next line ran.
		if r := deliveryResult(t, sys, "uma-nocond@testhost.example"); !strings.Contains(r, ": success: did_0+0+2/") {
			t.Errorf("log: %s", r)
		}
		harness.WaitForFile(t, 30*time.Second, filepath.Join(home, "nocond-after"))
		for _, m := range harness.MaildirMessages(t, tr.Path("alias", "other")) {
			if strings.Contains(string(m), "Subject: to nocond\n") {
				t.Error("condredirect forwarded although its program failed")
			}
		}
	})

	t.Run("except", func(t *testing.T) {
		harness.WaitForFile(t, 30*time.Second, filepath.Join(home, "except-after"))
		if r := deliveryResult(t, sys, "uma-except@testhost.example"); !strings.Contains(r, ": success: ") {
			t.Errorf("except false: %s (want a success: exit 1 becomes 0)", r)
		}
	})

	t.Run("forward", func(t *testing.T) {
		m := waitFor(t, tr.Path("alias", "other"), "Subject: to fwd\n")
		if !strings.Contains(m, "\nDelivered-To: uma-fwd@testhost.example\n") || !strings.HasPrefix(m, "Return-Path: <box@testhost.example>\n") {
			t.Errorf("forwarded copy:\n%s", m)
		}
		harness.WaitForFile(t, 30*time.Second, filepath.Join(home, "fwd-after"))
	})

	t.Run("help", func(t *testing.T) {
		for _, name := range helpTools {
			rcpt := "uma-h" + name + "@testhost.example"
			r := deliveryResult(t, sys, rcpt)
			if _, err := os.Stat(filepath.Join(home, "h"+name+"-after")); err == nil {
				t.Errorf("the line after %s -h ran", name)
			}
			if !strings.Contains(r, ": failure: usage:_"+name+"_") {
				t.Errorf("%s -h on a .qmail line: %s; want a failure with the usage as the report", name, r)
				continue // no bounce to wait for
			}
			b := waitFor(t, tr.Path("alias", "box"), "<"+rcpt+">:\n")
			if !strings.Contains(b, "<"+rcpt+">:\nusage: "+name+" ") {
				t.Errorf("%s -h: bounce without the usage:\n%s", name, b)
			}
		}
	})
}

// TestUsertoolsHelp: each tool answers -h with its usage on stdout, and
// refuses a call without arguments with 100. -h exits 0 for maildirmake,
// which is run by hand, and 100 for the tools of .qmail lines, where 0
// would mean "done, go on with the next line".
func TestUsertoolsHelp(t *testing.T) {
	for _, name := range []string{"maildirmake", "preline", "bouncesaying", "condredirect", "except", "forward"} {
		bin := harness.RequireBin(t, name)
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(bin, "-h")
		cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(""), &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code, err = ee.ExitCode(), nil
		}
		want := 100
		if name == "maildirmake" {
			want = 0
		}
		if err != nil || code != want || !strings.HasPrefix(stdout.String(), "usage: "+name+" ") || stderr.Len() != 0 {
			t.Errorf("%s -h: %v, exit %d (want %d), stdout %q, stderr %q", name, err, code, want, stdout.String(), stderr.String())
		}
		stdout.Reset()
		cmd = exec.Command(bin)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(""), &stdout, &stderr
		err = cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 100 || !strings.Contains(stderr.String(), "usage: "+name+" ") {
			t.Errorf("%s without arguments: %v, stderr %q", name, err, stderr.String())
		}
		stderr.Reset()
	}
}
