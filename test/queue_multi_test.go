package test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/test/harness"
)

// TestQueueMultiSmtpd: one qmail-smtpd session with several messages goes
// through one qmail-queue -m (the same qp pid in every 250); a message
// refused in the middle (databytes, after qmail-queue had started) queues
// nothing and the next one gets a fresh qmail-queue; every accepted message
// is queued byte for byte and delivered.
func TestQueueMultiSmtpd(t *testing.T) {
	tr := smtpdTree(t)
	tr.Control("rcpthosts", "mx.example.org\n")
	tr.Control("databytes", "100000\n")
	bodies := []string{
		"one line\n",
		strings.Repeat("0123456789 abcdefghijklmnopqrstuvwxyz\n", 2000), // 76 KB: several chunks
		strings.Repeat("too big for databytes\n", 6000),                 // 132 KB: 552
		".leading dot\n..two dots\nend\n",
		"",
	}
	var in strings.Builder
	in.WriteString("HELO client.example\r\n")
	for i, b := range bodies {
		fmt.Fprintf(&in, "MAIL FROM:<joe@client.example>\r\nRCPT TO:<postmaster@mx.example.org>\r\nDATA\r\n")
		fmt.Fprintf(&in, "Subject: m%d\r\n\r\n", i)
		for _, l := range strings.SplitAfter(b, "\n") {
			if l == "" {
				continue
			}
			if strings.HasPrefix(l, ".") {
				l = "." + l
			}
			in.WriteString(strings.TrimSuffix(l, "\n") + "\r\n")
		}
		in.WriteString(".\r\n")
	}
	in.WriteString("QUIT\r\n")
	cmd := tr.Command("qmail-smtpd")
	cmd.Env = smtpdEnv
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("qmail-smtpd: %v\n%s", err, out)
	}
	okRe := regexp.MustCompile(`^250 ok \d+ qp (\d+)$`)
	var pids []string
	for _, l := range strings.Split(string(out), "\r\n") {
		if m := okRe.FindStringSubmatch(l); m != nil {
			pids = append(pids, m[1])
		}
	}
	if len(pids) != 4 || !strings.Contains(string(out), "\r\n552 sorry, that message size exceeds my databytes limit (#5.3.4)\r\n") {
		t.Fatalf("replies:\n%s", out)
	}
	if pids[0] != pids[1] || pids[2] != pids[3] || pids[1] == pids[2] {
		t.Errorf("qp pids %v: want one qmail-queue for the first two and a fresh one after the 552", pids)
	}
	want := map[string]bool{}
	for i, b := range bodies {
		if i != 2 {
			want[fmt.Sprintf("Subject: m%d\n\n%s", i, b)] = true
		}
	}
	hdr := regexp.MustCompile(`^Received: \(qmail (\d+) invoked by uid \d+\); .*\n` +
		`Received: from client\.example \(joe@192\.0\.2\.7\)\n  by mx\.example\.org with SMTP; [^\n]*\n`)
	check := func(what string, msgs []string) {
		t.Helper()
		if len(msgs) != 4 {
			t.Fatalf("%s: %d messages, want 4", what, len(msgs))
		}
		seen := map[string]bool{}
		for _, m := range msgs {
			loc := hdr.FindStringIndex(m)
			if loc == nil {
				t.Errorf("%s: headers of\n%.300s", what, m)
				continue
			}
			rest := m[loc[1]:]
			if !want[rest] || seen[rest] {
				t.Errorf("%s: unexpected or repeated message\n%.300s", what, m)
			}
			seen[rest] = true
		}
	}
	check("queue", queuedMessages(t, tr))
	if n := len(tr.Glob("queue/pid/*")); n != 0 {
		t.Errorf("%d files left in queue/pid", n)
	}
	if n := len(tr.Glob("queue/intd/*")); n != 4 {
		t.Errorf("%d files in queue/intd, want 4", n)
	}

	tr.Start(t, "./Maildir/")
	var delivered []string
	for _, m := range harness.WaitMaildir(t, 60*time.Second, tr.AliasMaildir(), 4) {
		s := string(m)
		// qmail-local's Return-Path and Delivered-To come first.
		if i := strings.Index(s, "Received: (qmail "); i >= 0 {
			s = s[i:]
		}
		delivered = append(delivered, s)
	}
	check("Maildir", delivered)
}
