package test

import (
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/test/harness"
)

// TestInjectDelivers runs the installed qmail-inject against the real
// qmail-queue and a running qmail, and checks the delivered header.
func TestInjectDelivers(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test; skipped under -short")
	}
	tr := harness.Install(t, harness.WithMe("mx.example.org"))
	tr.Start(t, "./Maildir/")
	in := "From: Alice <alice>\nTo: postmaster, Carol <carol@example.com>\nBcc: root\nContent-Length: 3\nSubject: inject\n\nbody"
	env := []string{"USER=alice", "PATH=/usr/bin:/bin"}
	if _, errs, code := runProg(t, tr.Bin("qmail-inject"), env, in, "-h", "ignored@example.com"); code != 0 {
		t.Fatalf("qmail-inject exit %d: %s", code, errs)
	}
	msgs := harness.WaitMaildir(t, 60*time.Second, tr.AliasMaildir(), 2)
	for _, m := range msgs {
		s := string(m)
		for _, want := range []string{
			"Return-Path: <alice@mx.example.org>\n",
			"\nFrom: Alice <alice@mx.example.org>\n",
			"\nTo: postmaster@mx.example.org, Carol <carol@example.com>\n",
			"\nSubject: inject\n\nbody\n",
			"\nMessage-ID: <",
			"\nDate: ",
		} {
			if !strings.Contains(s, want) {
				t.Errorf("delivered message lacks %q:\n%s", want, s)
			}
		}
		if strings.Contains(s, "Bcc") || strings.Contains(s, "Content-Length") {
			t.Errorf("Bcc or Content-Length kept:\n%s", s)
		}
	}
}

// TestInjectQueueFailure checks that a qmail-queue refusal reaches the
// caller as qmail-inject's exit code and message.
func TestInjectQueueFailure(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test; skipped under -short")
	}
	tr := harness.Install(t)
	for _, tc := range []struct {
		qq     string
		code   int
		stderr string
	}{
		{"/bin/false", 111, "qmail-inject: fatal: qq temporary problem (#4.3.0)\n"},
		{"/nonexistent/qmail-queue", 111, "qmail-inject: fatal: unable to exec qq (#4.3.0)\n"},
	} {
		_, errs, code := runProg(t, tr.Bin("qmail-inject"), []string{"USER=a", "QMAILQUEUE=" + tc.qq}, "Subject: x\n\n", "bob")
		if code != tc.code || errs != tc.stderr {
			t.Errorf("QMAILQUEUE=%s: exit %d stderr %q, want %d %q", tc.qq, code, errs, tc.code, tc.stderr)
		}
	}
}
