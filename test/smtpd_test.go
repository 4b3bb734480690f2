package test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/test/harness"
)

// smtpdTree installs a tree for qmail-smtpd tests: me = mx.example.org,
// rcpthosts = example.org.
func smtpdTree(t *testing.T) *harness.Tree {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test; skipped with -short")
	}
	harness.RequireBin(t, "qmail-smtpd")
	tr := harness.Install(t, harness.WithMe("mx.example.org"))
	tr.Control("rcpthosts", "example.org\n")
	return tr
}

// queuedMessages returns the contents of every message in queue/mess.
func queuedMessages(t *testing.T, tr *harness.Tree) []string {
	t.Helper()
	var out []string
	for _, p := range tr.Glob("queue/mess/*/*") {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// smtpdEnv is the environment tcpserver would give qmail-smtpd.
var smtpdEnv = []string{
	"PATH=/usr/bin:/bin", "TCPREMOTEIP=192.0.2.7", "TCPREMOTEHOST=client.example",
	"TCPREMOTEINFO=joe", "TCPLOCALIP=192.0.2.1", "TCPLOCALHOST=mx.example.org", "PROTO=TCP",
}

// TestSmtpdStdio runs qmail-smtpd on pipes (as sendmail -bs does) with a
// pipelined dialogue and the real qmail-queue.
func TestSmtpdStdio(t *testing.T) {
	tr := smtpdTree(t)
	cmd := tr.Command("qmail-smtpd")
	cmd.Env = smtpdEnv
	cmd.Stdin = strings.NewReader("HELO client.example\r\nMAIL FROM:<joe@client.example>\r\n" +
		"RCPT TO:<far@elsewhere.example>\r\nRCPT TO:<user@example.org>\r\nDATA\r\n" +
		"Subject: stdio\r\n\r\nhello\r\n..dot\r\n.\r\nQUIT\r\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("qmail-smtpd: %v\n%s\n%s", err, out, stderr.String())
	}
	if stderr.Len() > 0 { // a clean session logs nothing
		t.Errorf("stderr: %q", stderr.String())
	}
	want := []string{
		`220 mx\.example\.org ESMTP`,
		`250 mx\.example\.org`,
		`250 ok`,
		`553 sorry, that domain isn't in my list of allowed rcpthosts \(#5\.7\.1\)`,
		`250 ok`,
		`354 go ahead`,
		`250 ok \d+ qp \d+`,
		`221 mx\.example\.org`,
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\r\n"), "\r\n")
	if len(lines) != len(want) {
		t.Fatalf("replies:\n%s", out)
	}
	for i, w := range want {
		if !regexp.MustCompile("^" + w + "$").MatchString(lines[i]) {
			t.Errorf("reply %d: %q, want %s", i, lines[i], w)
		}
	}
	msgs := queuedMessages(t, tr)
	if len(msgs) != 1 {
		t.Fatalf("%d messages in the queue, want 1", len(msgs))
	}
	re := regexp.MustCompile(`^Received: \(qmail \d+ invoked by uid \d+\); .*\n` +
		`Received: from client\.example \(joe@192\.0\.2\.7\)\n` +
		`  by mx\.example\.org with SMTP; \d+ [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d -0000\n` +
		`Subject: stdio\n\nhello\n\.dot\n$`)
	if !re.MatchString(msgs[0]) {
		t.Errorf("queued message:\n%s", msgs[0])
	}
}

// TestSmtpdStdioExit: qmail-smtpd exits 0 after QUIT, 1 at EOF, 1 after a bare LF
// (with qmail's 421-class reply) and 1 when the controls are unreadable.
func TestSmtpdStdioExit(t *testing.T) {
	tr := smtpdTree(t)
	run := func(input string) (string, int) {
		cmd := tr.Command("qmail-smtpd")
		cmd.Env = smtpdEnv
		cmd.Stdin = strings.NewReader(input)
		out, err := cmd.Output()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	if out, code := run("QUIT\r\n"); code != 0 || !strings.HasSuffix(out, "221 mx.example.org\r\n") {
		t.Errorf("QUIT: exit %d, %q", code, out)
	}
	// The client goes away without QUIT: qmail-smtpd exits 1, silently.
	if out, code := run("HELO x\r\nNOOP"); code != 1 || out != "220 mx.example.org ESMTP\r\n250 mx.example.org\r\n" {
		t.Errorf("EOF: exit %d, %q", code, out)
	}
	out, code := run("HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<u@example.org>\r\nDATA\r\nSubject: x\n\nbody\n.\n")
	if code != 1 || !strings.HasSuffix(out, "451 See https://cr.yp.to/docs/smtplf.html.\r\n") {
		t.Errorf("bare LF: exit %d, %q", code, out)
	}
	if n := len(queuedMessages(t, tr)); n != 0 {
		t.Errorf("%d queued after bare LF", n)
	}
	tr.RemoveControl("me")
	if out, code := run("QUIT\r\n"); code != 1 || out != "421 unable to read controls (#4.3.0)\r\n" {
		t.Errorf("no controls: exit %d, %q", code, out)
	}
}

// TestSmtpdSocketTimeout: on a socket (tcpserver's case) timeoutsmtpd
// applies and the process exits 1.
func TestSmtpdSocketTimeout(t *testing.T) {
	tr := smtpdTree(t)
	tr.Control("timeoutsmtpd", "1\n")
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	child := os.NewFile(uintptr(fds[0]), "child")
	mine := os.NewFile(uintptr(fds[1]), "mine")
	defer mine.Close()
	cmd := tr.Command("qmail-smtpd")
	cmd.Env = smtpdEnv
	cmd.Stdin, cmd.Stdout = child, child
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child.Close()
	var werr error
	exited := make(chan struct{})
	go func() { werr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	mine.SetReadDeadline(time.Now().Add(30 * time.Second))
	all, _ := io.ReadAll(mine)
	if !strings.HasPrefix(string(all), "220 ") || !strings.HasSuffix(string(all), "\r\n451 timeout (#4.4.2)\r\n") {
		t.Errorf("got %q", all)
	}
	select {
	case <-exited:
		if ee, ok := werr.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Errorf("exit: %v, want 1", werr)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("qmail-smtpd still running after the timeout")
	}
}

// startListener runs `qmail-smtpd -listen 127.0.0.1:0` in the tree and
// returns the address it listens on.
func startListener(t *testing.T, tr *harness.Tree) string {
	t.Helper()
	cmd := tr.Command("qmail-smtpd", "-listen", "127.0.0.1:0")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`listening on (\S+),`)
		found := false
		for sc.Scan() { // drained until the process ends; logged only at start
			if m := re.FindStringSubmatch(sc.Text()); m != nil && !found {
				found = true
				addrc <- m[1]
			}
		}
	}()
	select {
	case a := <-addrc:
		return strings.TrimSuffix(a, ",")
	case <-time.After(30 * time.Second):
		t.Fatal("qmail-smtpd -listen did not report its address")
	}
	return ""
}

// writeCert writes a self-signed certificate and key as one PEM file.
func writeCert(t *testing.T, path string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "mx.example.org"},
		DNSNames: []string{"mx.example.org"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})...)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSmtpdSwaks: swaks, a real SMTP client, against the -listen server
// with the real qmail-queue: plain, pipelining, STARTTLS.
func TestSmtpdSwaks(t *testing.T) {
	swaks, err := exec.LookPath("swaks")
	if err != nil {
		t.Skip("swaks not installed (apt-get install swaks)")
	}
	tr := smtpdTree(t)
	writeCert(t, tr.Path("control", "servercert.pem"))
	tr.Control("relayclients", "192.0.2.0/24\n") // loopback may not relay
	addr := startListener(t, tr)
	host, port, _ := net.SplitHostPort(addr)
	cases := []struct {
		name string
		args []string
		want string // in swaks' transcript
	}{
		{"plain", nil, "<-  250 ok "},
		{"pipelining", []string{"--pipeline"}, "<-  250 ok "},
		{"starttls", []string{"--tls"}, "<~  250 ok "},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--server", host, "--port", port, "--helo", "swaks.example",
				"--from", "sender@swaks.example", "--to", "user@example.org",
				"--header", "Subject: swaks " + tc.name, "--timeout", "30"}, tc.args...)
			cmd := exec.Command(swaks, args...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("swaks %v: %v\n%s", tc.args, err, out)
			}
			for _, w := range []string{tc.want, "<-  220 mx.example.org ESMTP\n", "250-mx.example.org\n", "250-PIPELINING\n",
				"354 go ahead\n", "221 mx.example.org\n"} {
				if !strings.Contains(string(out), w) {
					t.Errorf("swaks transcript lacks %q:\n%s", w, out)
				}
			}
			if n := len(queuedMessages(t, tr)); n != i+1 {
				t.Errorf("%d messages queued, want %d", n, i+1)
			}
		})
	}
	// A relay attempt from loopback (not in relayclients) is refused.
	cmd := exec.Command(swaks, "--server", host, "--port", port, "--to", "victim@foreign.example", "--timeout", "30")
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)") {
		t.Errorf("relay attempt not refused:\n%s", out)
	}
	for _, m := range queuedMessages(t, tr) {
		if !strings.Contains(m, "Received: from unknown (HELO swaks.example) (127.0.0.1)\n  by mx.example.org with SMTP; ") {
			t.Errorf("queued message lacks qmail-smtpd's Received line:\n%s", m)
		}
	}
}

// TestSmtpdInetdSocket: started like inetd or systemd (a TCP socket on fd
// 0/1, no TCP* variables), qmail-smtpd takes the addresses from the socket.
func TestSmtpdInetdSocket(t *testing.T) {
	tr := smtpdTree(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	f, err := sc.(*net.TCPConn).File()
	sc.Close()
	if err != nil {
		t.Fatal(err)
	}
	cmd := tr.Command("qmail-smtpd")
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	cmd.Stdin, cmd.Stdout = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	client.SetDeadline(time.Now().Add(30 * time.Second))
	io.WriteString(client, "HELO c.example\r\nMAIL FROM:<a@c.example>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n"+
		"Subject: inetd\r\n\r\nx\r\n.\r\nQUIT\r\n")
	out, _ := io.ReadAll(client)
	if !strings.Contains(string(out), "\r\n250 ok ") {
		t.Fatalf("replies: %q", out)
	}
	msgs := queuedMessages(t, tr)
	if len(msgs) != 1 || !strings.Contains(msgs[0], "Received: from unknown (HELO c.example) (127.0.0.1)\n  by 127.0.0.1 with SMTP; ") {
		t.Fatalf("queued: %q", msgs)
	}
}

// TestSmtpdRelayFlag: a single session started with -r (a systemd socket
// unit, inetd) lets the clients of control/relayclients relay, as -listen
// does; without -r only the environment's RELAYCLIENT counts, as under
// tcpserver.
func TestSmtpdRelayFlag(t *testing.T) {
	tr := smtpdTree(t)
	for _, tc := range []struct {
		name  string
		args  []string
		ip    string
		env   string // extra variable
		rules string // "" = no control/relayclients
		want  string
	}{
		{"no -r, loopback", nil, "127.0.0.1", "", "", "553 "},
		{"-r, loopback by default", []string{"-r"}, "127.0.0.1", "", "", "250 "},
		{"-r, ::1 by default", []string{"-r"}, "::1", "", "", "250 "},
		{"-r, other client", []string{"-r"}, "192.0.2.7", "", "", "553 "},
		{"-r, listed prefix", []string{"-r"}, "192.0.2.7", "", "192.0.2.0/24\n", "250 "},
		{"-r, loopback not listed", []string{"-r"}, "127.0.0.1", "", "192.0.2.0/24\n", "553 "},
		{"-r, environment wins", []string{"-r"}, "198.51.100.1", "RELAYCLIENT=", "192.0.2.0/24\n", "250 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr.RemoveControl("relayclients")
			if tc.rules != "" {
				tr.Control("relayclients", tc.rules)
			}
			cmd := tr.Command("qmail-smtpd", tc.args...)
			cmd.Env = []string{"PATH=/usr/bin:/bin", "TCPREMOTEIP=" + tc.ip, "TCPLOCALHOST=mx.example.org"}
			if tc.env != "" {
				cmd.Env = append(cmd.Env, tc.env)
			}
			cmd.Stdin = strings.NewReader("HELO c\r\nMAIL FROM:<a@c.example>\r\nRCPT TO:<far@elsewhere.example>\r\nQUIT\r\n")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("qmail-smtpd: %v\n%s", err, out)
			}
			lines := strings.Split(string(out), "\r\n")
			if len(lines) < 4 || !strings.HasPrefix(lines[3], tc.want) {
				t.Errorf("replies %q, want RCPT answered %q", out, tc.want)
			}
		})
	}
	// -r is for one session; with -listen control/relayclients applies anyway.
	cmd := tr.Command("qmail-smtpd", "-r", "-listen", "127.0.0.1:0")
	if out, err := cmd.CombinedOutput(); cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 100 {
		t.Errorf("-r -listen: %v %s, want usage (100)", err, out)
	}
}

// TestSmtpdAsQmaild: as root, run qmail-smtpd as qmaild/nofiles (its
// production uid): it needs no privilege, and qmail-queue (set-uid qmailq)
// still queues what it accepts.
func TestSmtpdAsQmaild(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run qmail-smtpd as qmaild")
	}
	tr := smtpdTree(t)
	ids := tr.IDs()
	cmd := tr.Command("qmail-smtpd")
	cmd.Env = smtpdEnv
	cmd.SysProcAttr = credential(ids.Qmaild.UID, ids.Nofiles)
	cmd.Stdin = strings.NewReader("HELO client.example\r\nMAIL FROM:<joe@client.example>\r\n" +
		"RCPT TO:<user@example.org>\r\nDATA\r\nSubject: qmaild\r\n\r\nhi\r\n.\r\nQUIT\r\n")
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), "\r\n250 ok ") {
		t.Fatalf("qmail-smtpd as qmaild: %v\n%s", err, out)
	}
	if n := len(queuedMessages(t, tr)); n != 1 {
		t.Errorf("%d queued, want 1", n)
	}
}
