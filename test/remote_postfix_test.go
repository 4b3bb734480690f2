package test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hqmail/hqmail/test/dnstest"
	"github.com/hqmail/hqmail/test/harness"
)

// TestRemotePostfixInterop delivers 100 messages with qmail-remote to a
// private Postfix instance (Debian's package) that is the MX of pf.test on
// a loopback address, and compares what Postfix's virtual agent stored with
// what was sent: envelope sender (Return-Path), recipient (Delivered-To) and
// the message bytes.
func TestRemotePostfixInterop(t *testing.T) {
	const postfix = "/usr/sbin/postfix"
	if _, err := os.Stat(postfix); err != nil {
		t.Skip("postfix is not installed (/usr/sbin/postfix); apt-get install postfix to run this test")
	}
	needRoot(t)
	pfUser, err := user.Lookup("postfix")
	if err != nil {
		t.Skip("no postfix user: ", err)
	}
	pfUID, _ := strconv.Atoi(pfUser.Uid)

	dir := harness.TempRoot(t)
	etc, spool, data, mail := filepath.Join(dir, "etc"), filepath.Join(dir, "spool"), filepath.Join(dir, "data"), filepath.Join(dir, "mail")
	for _, d := range []string{etc, spool, data, mail} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chown(data, pfUID, -1)
	os.Chmod(mail, 0o777)

	// A free loopback address for port 25.
	ln := listen(t, "", 25)
	ip := hostOf(ln)
	ln.Close()

	mainCF := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s
data_directory = %[2]s
mail_owner = postfix
setgid_group = postdrop
myhostname = pf-sink.test
mydestination =
inet_interfaces = all
inet_protocols = ipv4
smtpd_peername_lookup = no
virtual_mailbox_domains = pf.test
virtual_mailbox_base = %[3]s
virtual_mailbox_maps = static:box/
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_mailbox_limit = 0
message_size_limit = 0
maillog_file = %[4]s/maillog
maillog_file_prefixes = %[4]s
alias_maps =
alias_database =
local_recipient_maps =
biff = no
`, spool, data, mail, dir)
	masterCF := ip + `:25 inet n - n - - smtpd
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
`
	os.WriteFile(filepath.Join(etc, "main.cf"), []byte(mainCF), 0o644)
	os.WriteFile(filepath.Join(etc, "master.cf"), []byte(masterCF), 0o644)

	pf := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, postfix, append([]string{"-c", etc}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := pf("start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "maillog"))
		t.Fatalf("postfix start: %v\n%s\n%s", err, out, log)
	}
	t.Cleanup(func() {
		if out, err := pf("stop"); err != nil {
			t.Logf("postfix stop: %v %s", err, out)
			pf("abort")
		}
	})
	if !harness.Eventually(20*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", ip+":25", time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		t.Fatal("postfix does not listen on " + ip + ":25")
	}

	dns := dnstest.Start(t)
	dns.Add("pf.test. MX 10 mx.pf.test.", "mx.pf.test. A "+ip)
	tr := newRTree(t)
	tr.UseDNS(dns)

	const n = 100
	msgs := make([]string, n)
	for i := range msgs {
		msgs[i] = fmt.Sprintf("Message-ID: <%d@qmail.test>\nDate: Thu, 26 Nov 2026 04:00:00 +0000\n"+
			"From: s%d@x.test\nTo: u%d@pf.test\nSubject: interop %d\n\n"+
			".leading dot\n..two dots\n.\nbody line %d with CRLF\r\n8bit: \xc3\xa9\ntrailing\n", i, i, i, i, i)
	}
	var wg sync.WaitGroup
	errs := make(chan string, n)
	next := make(chan int)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				got := tr.Remote(msgs[i], "pf.test", fmt.Sprintf("s%d@x.test", i), fmt.Sprintf("u%d@pf.test", i))
				if len(got) != 2 || got[0] != "r" || !strings.HasPrefix(got[1], "K"+ip+" accepted message.\nRemote host said: 250 2.0.0 Ok: queued as ") {
					errs <- fmt.Sprintf("message %d: %q", i, got)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if t.Failed() {
		return
	}

	newDir := filepath.Join(mail, "box", "new")
	harness.WaitForGlob(t, 60*time.Second, filepath.Join(newDir, "*"), n)
	seen := map[int]bool{}
	ents, _ := os.ReadDir(newDir)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(newDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var i int
		k := bytes.Index(b, []byte("\nSubject: interop "))
		if k < 0 {
			t.Fatalf("%s: no subject", e.Name())
		}
		fmt.Sscanf(string(b[k+len("\nSubject: interop "):]), "%d", &i)
		want := strings.ReplaceAll(msgs[i], "\r\n", "\n")
		if !bytes.HasSuffix(b, []byte("\n"+want)) {
			t.Errorf("message %d body differs:\n%s", i, b)
		}
		if !bytes.HasPrefix(b, []byte(fmt.Sprintf("Return-Path: <s%d@x.test>\nX-Original-To: u%d@pf.test\nDelivered-To: u%d@pf.test\n", i, i, i))) {
			t.Errorf("message %d envelope differs:\n%s", i, b[:min(len(b), 200)])
		}
		seen[i] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct messages stored, want %d", len(seen), n)
	}
}
