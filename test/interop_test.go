package test

// Interop with the MUAs and daemons that call /usr/sbin/sendmail or speak
// SMTP to the listener (issue: injection and sendmail compatibility): mutt,
// mailx, git send-email, a cron-style sendmail call and fetchmail, each
// through the real programs of an installed tree into a Maildir. Each test
// skips with a message when its client is not installed (.ci/run installs
// them all).

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/test/harness"
)

// interopSystem starts a tree whose local part "box" delivers to the alias
// Maildir.
func interopSystem(t *testing.T) (*harness.Tree, *harness.System) {
	t.Helper()
	tr := schedTree(t, map[string]string{"box": "./Maildir/\n"})
	sys := tr.Start(t, "./Maildir/")
	return tr, sys
}

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (.ci/run installs it)", name)
	}
	return p
}

// clientEnv is a clean environment for a client program.
func clientEnv(home string, extra ...string) []string {
	return append([]string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin", "HOME=" + home, "USER=alice", "LOGNAME=alice", "LANG=C.UTF-8"}, extra...)
}

// oneMessage waits for exactly one message in the alias Maildir and checks
// the lines qmail leaves on every local delivery.
func oneMessage(t *testing.T, tr *harness.Tree, wantReturnPath string) string {
	t.Helper()
	msgs := harness.WaitMaildir(t, 30*time.Second, tr.AliasMaildir(), 1)
	if len(msgs) != 1 {
		t.Fatalf("%d messages in the Maildir, want 1", len(msgs))
	}
	m := string(msgs[0])
	prefix := "Return-Path: <" + wantReturnPath + ">\nDelivered-To: box@testhost.example\nReceived: (qmail "
	if !strings.HasPrefix(m, prefix) {
		t.Fatalf("message does not start with qmail's delivery lines %q:\n%s", prefix, m)
	}
	return m
}

func mustContain(t *testing.T, m string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(m, s) {
			t.Errorf("message lacks %q:\n%s", s, m)
		}
	}
}

func TestInteropMutt(t *testing.T) {
	mutt := needTool(t, "mutt")
	tr, _ := interopSystem(t)
	home := t.TempDir()
	rc := filepath.Join(home, "muttrc")
	os.WriteFile(rc, []byte(fmt.Sprintf(`set sendmail="%s -oem -oi"
set from="Alice <alice@example.com>"
set use_from=yes
set envelope_from=yes
set record=""
set copy=no
set hostname=example.com
`, tr.Bin("sendmail"))), 0o600)
	cmd := exec.Command(mutt, "-n", "-F", rc, "-s", "mutt test", "--", "box@testhost.example")
	cmd.Env = clientEnv(home)
	cmd.Dir = home
	cmd.Stdin = strings.NewReader("Hello from mutt.\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mutt: %v\n%s", err, out)
	}
	m := oneMessage(t, tr, "alice@example.com")
	mustContain(t, m, "\nSubject: mutt test\n", "\nFrom: Alice <alice@example.com>\n", "\nTo: box@testhost.example\n", "\nHello from mutt.\n")
}

func TestInteropMailx(t *testing.T) {
	mailx := needTool(t, "bsd-mailx")
	tr, _ := interopSystem(t)
	home := t.TempDir()
	rc := filepath.Join(home, "mailrc")
	os.WriteFile(rc, []byte("set sendmail="+tr.Bin("sendmail")+"\n"), 0o600)
	cmd := exec.Command(mailx, "-s", "mailx test", "box@testhost.example")
	cmd.Env = clientEnv(home, "MAILRC="+rc)
	cmd.Stdin = strings.NewReader("Hello from mailx.\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mailx: %v\n%s", err, out)
	}
	// mailx runs sendmail -i -t as alice: qmail-inject builds the sender
	// from USER and defaulthost (control/me).
	m := oneMessage(t, tr, "alice@testhost.example")
	mustContain(t, m, "\nSubject: mailx test\n", "\nFrom: alice@testhost.example\n", "\nHello from mailx.\n", "\nMessage-ID: <")
}

func TestInteropGitSendEmail(t *testing.T) {
	git := needTool(t, "git")
	if out, _ := exec.Command(git, "send-email", "-h").CombinedOutput(); strings.Contains(string(out), "is not a git command") {
		t.Skip("git send-email is not installed (package git-email)")
	}
	tr, _ := interopSystem(t)
	home := t.TempDir()
	repo := filepath.Join(home, "repo")
	env := clientEnv(home, "GIT_AUTHOR_NAME=Alice", "GIT_AUTHOR_EMAIL=alice@example.com",
		"GIT_COMMITTER_NAME=Alice", "GIT_COMMITTER_EMAIL=alice@example.com", "GIT_CONFIG_NOSYSTEM=1")
	run := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command(git, args...)
		cmd.Dir = dir
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	os.MkdirAll(repo, 0o755)
	run(repo, "init", "-q")
	os.WriteFile(filepath.Join(repo, "hello.txt"), []byte("hello\n"), 0o644)
	run(repo, "add", "hello.txt")
	run(repo, "commit", "-q", "-m", "Add hello")
	patch := strings.TrimSpace(run(repo, "format-patch", "-1", "-o", home))
	run(repo, "send-email", "--to=box@testhost.example", "--from=Alice <alice@example.com>",
		"--smtp-server="+tr.Bin("sendmail"), "--confirm=never", "--suppress-cc=all", "--quiet", patch)
	// git send-email gives no -f: the envelope sender is the user at
	// defaulthost, as qmail-inject makes it.
	m := oneMessage(t, tr, "alice@testhost.example")
	mustContain(t, m, "\nSubject: [PATCH] Add hello\n", "\nFrom: Alice <alice@example.com>\n", "\n+hello\n")
}

func TestInteropCronStyle(t *testing.T) {
	tr, _ := interopSystem(t)
	cmd := exec.Command(tr.Bin("sendmail"), "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "box@testhost.example")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "USER=root", "LOGNAME=root", "HOME=/"}
	cmd.Stdin = strings.NewReader("Subject: Cron <root@testhost> /usr/local/bin/backup\nContent-Type: text/plain; charset=UTF-8\n\nbackup done: 3 files, naïve café\n.\nnot the end\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sendmail: %v\n%s", err, out)
	}
	m := oneMessage(t, tr, "root@testhost.example")
	mustContain(t, m, "\nFrom: \"CronDaemon\" <root@testhost.example>\n", "\nSubject: Cron <root@testhost> /usr/local/bin/backup\n",
		"\nbackup done: 3 files, naïve café\n.\nnot the end\n")
}

// startSMTPD runs ROOT/bin/qmail-smtpd -listen on a loopback port the
// kernel picks (as qmaild when the tests run as root) and returns the
// address it says it listens on.
func startSMTPD(t *testing.T, tr *harness.Tree) string {
	t.Helper()
	cmd := tr.Command("qmail-smtpd", "-listen", "127.0.0.1:0")
	if os.Geteuid() == 0 {
		ids := tr.IDs()
		cmd.SysProcAttr = credential(ids.Qmaild.UID, ids.Nofiles)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() { // drained until the process ends
			if _, rest, ok := strings.Cut(sc.Text(), "listening on "); ok {
				if a, _, ok := strings.Cut(rest, ","); ok {
					select {
					case addrc <- a:
					default:
					}
				}
			}
		}
	}()
	select {
	case a := <-addrc:
		return a
	case <-time.After(30 * time.Second):
		t.Fatal("qmail-smtpd -listen 127.0.0.1:0 did not say where it listens")
	}
	return ""
}

// pop3 serves one message to one client, as fetchmail expects.
func pop3(t *testing.T, msg string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				w := bufio.NewWriter(c)
				r := bufio.NewReader(c)
				say := func(s string) { w.WriteString(s + "\r\n"); w.Flush() }
				body := strings.ReplaceAll(msg, "\n", "\r\n")
				deleted := false
				say("+OK test pop3 ready")
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					f := strings.Fields(strings.TrimSpace(line))
					if len(f) == 0 {
						continue
					}
					switch strings.ToUpper(f[0]) {
					case "CAPA":
						say("+OK\r\nUSER\r\nUIDL\r\n.")
					case "USER", "PASS", "NOOP", "RSET":
						say("+OK")
					case "STAT":
						if deleted {
							say("+OK 0 0")
						} else {
							say(fmt.Sprintf("+OK 1 %d", len(body)))
						}
					case "LIST":
						if len(f) > 1 {
							say(fmt.Sprintf("+OK 1 %d", len(body)))
						} else {
							say(fmt.Sprintf("+OK\r\n1 %d\r\n.", len(body)))
						}
					case "UIDL":
						if len(f) > 1 {
							say("+OK 1 uid-1")
						} else {
							say("+OK\r\n1 uid-1\r\n.")
						}
					case "TOP", "RETR":
						say("+OK\r\n" + body + ".")
					case "DELE":
						deleted = true
						say("+OK")
					case "QUIT":
						say("+OK bye")
						return
					default:
						say("-ERR unknown")
					}
				}
			}(c)
		}
	}()
	return l.Addr().String()
}

func TestInteropFetchmail(t *testing.T) {
	fetchmail := needTool(t, "fetchmail")
	tr, _ := interopSystem(t)
	smtp := startSMTPD(t, tr)
	popAddr := pop3(t, "From: Carol <carol@remote.example>\nTo: box@testhost.example\nSubject: fetched\nMessage-ID: <f1@remote.example>\n\nFetched by fetchmail.\n")
	home := t.TempDir()
	os.Chmod(home, 0o700)
	host, port, _ := net.SplitHostPort(popAddr)
	shost, sport, _ := net.SplitHostPort(smtp)
	rc := filepath.Join(home, ".fetchmailrc")
	os.WriteFile(rc, []byte(fmt.Sprintf("poll %s service %s protocol pop3 auth password\n  user \"carol\" password \"secret\" is box here\n  smtphost %s/%s smtpname box@testhost.example\n  fetchall no keep sslproto '' no rewrite\n", host, port, shost, sport)), 0o600)
	cmd := exec.Command(fetchmail, "-f", rc, "--nosyslog", "--nodetach", "-v")
	cmd.Env = clientEnv(home)
	out, err := cmd.CombinedOutput()
	// fetchmail exits 0 when it delivered mail.
	if err != nil {
		t.Fatalf("fetchmail: %v\n%s", err, out)
	}
	m := oneMessage(t, tr, "carol@remote.example")
	mustContain(t, m, "\nSubject: fetched\n", "\nFetched by fetchmail.\n", " by testhost.example with SMTP; ")
}
