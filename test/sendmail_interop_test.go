package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/test/harness"
)

// Real MUAs from Debian's packages (installed by .ci/run) sending through
// ROOT/bin/sendmail; a capture program stands in for qmail-queue.
func TestSendmailInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test; skipped under -short")
	}
	tr := harness.Install(t, harness.WithMe("mx.example.org"))
	sendmail := tr.Bin("sendmail")
	tests := []struct {
		name     string
		prog     string
		setup    func(t *testing.T, home string) []string // returns argv
		stdin    string
		envelope string
		has      []string
	}{
		{name: "mutt", prog: "mutt",
			setup: func(t *testing.T, home string) []string {
				return []string{"mutt", "-n", "-F", "/dev/null", "-e", "set sendmail=\"" + sendmail + " -oem -oi\"", "-s", "mutt subject", "bob@example.com"}
			},
			stdin:    "hello from mutt\n",
			envelope: "Falice@mx.example.org\x00Tbob@example.com\x00\x00",
			has:      []string{"To: bob@example.com\n", "Subject: mutt subject\n", "\n\nhello from mutt\n"}},
		{name: "mailx", prog: "bsd-mailx",
			setup: func(t *testing.T, home string) []string {
				os.WriteFile(filepath.Join(home, ".mailrc"), []byte("set sendmail="+sendmail+"\n"), 0o644)
				return []string{"bsd-mailx", "-s", "mailx subject", "bob@example.com"}
			},
			stdin:    "hello from mailx\n",
			envelope: "Falice@mx.example.org\x00Tbob@example.com\x00\x00",
			has:      []string{"From: alice@mx.example.org\n", "To: bob@example.com\n", "Subject: mailx subject\n", "\nMessage-ID: <"}},
		{name: "git send-email", prog: "git",
			setup: func(t *testing.T, home string) []string {
				if err := exec.Command("git", "send-email", "--help").Run(); err != nil {
					t.Skip("git send-email is not installed (Debian package git-email)")
				}
				// Debian's git-email only recommends the Mail::Address it
				// loads to send (--help runs without it).
				if err := exec.Command("perl", "-MMail::Address", "-e", "1").Run(); err != nil {
					t.Skip("git send-email cannot send without Mail::Address (Debian package libmailtools-perl)")
				}
				repo := filepath.Join(home, "repo")
				os.Mkdir(repo, 0o755)
				os.WriteFile(filepath.Join(repo, "f"), []byte("x\n"), 0o644)
				for _, args := range [][]string{{"init", "-q", "."}, {"add", "f"}, {"commit", "-q", "-m", "test patch"}, {"format-patch", "-q", "-1", "-o", home + "/p"}} {
					c := exec.Command("git", args...)
					c.Dir = repo
					c.Env = gitEnv(home)
					if out, err := c.CombinedOutput(); err != nil {
						t.Fatalf("git %v: %v\n%s", args, err, out)
					}
				}
				return []string{"git", "send-email", "--smtp-server=" + sendmail, "--to=bob@example.com",
					"--from=A <a@example.org>", "--confirm=never", "--quiet", home + "/p/0001-test-patch.patch"}
			},
			envelope: "Falice@mx.example.org\x00Tbob@example.com\x00Ta@example.org\x00\x00",
			has:      []string{"From: A <a@example.org>\n", "To: bob@example.com\n", "Subject: [PATCH] test patch\n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := exec.LookPath(tc.prog); err != nil {
				t.Skipf("%s is not installed", tc.prog)
			}
			home := harness.TempRoot(t)
			argv := tc.setup(t, home)
			c := newCapture(t)
			env := append(gitEnv(home), "QMAILQUEUE="+c.prog)
			path, _ := exec.LookPath(argv[0])
			_, errs, code := runProg(t, path, env, tc.stdin, argv[1:]...)
			if code != 0 {
				t.Fatalf("%s: exit %d: %s", tc.name, code, errs)
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
		})
	}
}

func gitEnv(home string) []string {
	return []string{"HOME=" + home, "USER=alice", "LOGNAME=alice", "PATH=/usr/bin:/bin",
		"GIT_AUTHOR_NAME=A", "GIT_AUTHOR_EMAIL=a@example.org", "GIT_COMMITTER_NAME=A", "GIT_COMMITTER_EMAIL=a@example.org"}
}
