package smtpd

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/cdb"
	"github.com/hqmail/hqmail/pkg/qq"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestDialogue checks a whole transaction, reply by reply, and what is
// handed to qmail-queue.
func TestDialogue(t *testing.T) {
	q := useMemQueue(t)
	root := testRoot(t, map[string]string{"databytes": "10000\n"})
	s := startServer(t, root, loopPeer, nil)
	c := dial(t, s)
	if got := c.last(); got != "220 mx.example.org ESMTP" {
		t.Errorf("greeting %q", got)
	}
	c.send("EHLO client.example\r\n")
	ehlo := c.reply()
	want := []string{"250-mx.example.org", "250-PIPELINING", "250-8BITMIME", "250 SIZE 10000"}
	if strings.Join(ehlo, "|") != strings.Join(want, "|") {
		t.Errorf("EHLO:\n got %q\nwant %q", ehlo, want)
	}
	c.expectPrefix("MAIL FROM:<joe@sender.example>", "250 ")
	c.expect("RCPT TO:<someone@elsewhere.example>", "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)")
	c.expectPrefix("RCPT TO:<User@Example.ORG>", "250 ")
	c.expectPrefix("RCPT TO:<a@sub.example.net>", "250 ")
	c.expect("RCPT TO:<a@example.net>", "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)")
	c.expectPrefix("DATA", "354 ")
	c.send(textprotoDot("Subject: hi\n\n.leading dot\nbody\r\n"))
	if got := c.last(); got != "250 ok 1795665003 qp 4242" {
		t.Errorf("after DATA: %q", got)
	}
	c.expectPrefix("QUIT", "221 ")
	msgs := q.all()
	if len(msgs) != 1 {
		t.Fatalf("queued %d messages, want 1", len(msgs))
	}
	wantMsg := "Received: from localhost (HELO client.example) (127.0.0.1)\n" +
		"  by mx.example.org with SMTP; 26 Nov 2026 03:50:03 -0000\n" +
		"Subject: hi\n\n.leading dot\nbody\n"
	if msgs[0].Msg != wantMsg {
		t.Errorf("message:\n%q\nwant\n%q", msgs[0].Msg, wantMsg)
	}
	if got := fmtEnv(msgs[0].Env); got != "Fjoe@sender.example TUser@Example.ORG Ta@sub.example.net" {
		t.Errorf("envelope %s", got)
	}
	if oks := s.sessionsDone(t, 1); !oks[0] {
		t.Errorf("session after QUIT reported failure")
	}
}

// TestReplies checks qmail's reply texts that this implementation controls.
func TestReplies(t *testing.T) {
	useMemQueue(t)
	root := testRoot(t, map[string]string{
		"badmailfrom": "spammer@bad.example\n@Worse.Example\n@bücher.example\nspam@xn--mnchen-3ya.example\n",
	})
	s := startServer(t, root, loopPeer, nil)
	long := strings.Repeat("a", 890) + "@example.org"
	tests := []struct {
		name  string
		cmds  []string
		reply string // of the last command
	}{
		{"badmailfrom at rcpt", []string{"MAIL FROM:<spammer@bad.example>", "RCPT TO:<u@example.org>"},
			"553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)"},
		{"badmailfrom domain any case", []string{"MAIL FROM:<X@worse.EXAMPLE>", "RCPT TO:<u@example.org>"},
			"553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)"},
		{"badmailfrom not a suffix match", []string{"MAIL FROM:<x@sub.worse.example>", "RCPT TO:<u@example.org>"},
			"250 ok"},
		// Either spelling of an IDN is the listed domain.
		{"badmailfrom IDN domain, A-labels", []string{"MAIL FROM:<x@xn--bcher-kva.example>", "RCPT TO:<u@example.org>"},
			"553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)"},
		{"badmailfrom IDN domain, upper case", []string{"MAIL FROM:<x@BÜCHER.example>", "RCPT TO:<u@example.org>"},
			"553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)"},
		{"badmailfrom IDN address, U-labels", []string{"MAIL FROM:<Spam@münchen.example>", "RCPT TO:<u@example.org>"},
			"553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)"},
		{"badmailfrom IDN address, other user", []string{"MAIL FROM:<ham@münchen.example>", "RCPT TO:<u@example.org>"},
			"250 ok"},
		{"NUL ends the verb", []string{"NOOP\x00 x"}, "250 ok"},
		{"address of 900 bytes", []string{"MAIL FROM:<>", "RCPT TO:<" + long + ">"}, "555 syntax error (#5.5.4)"},
		{"sender of 900 bytes", []string{"MAIL FROM:<" + long + ">"}, "555 syntax error (#5.5.4)"},
		{"NUL in address", []string{"MAIL FROM:<>", "RCPT TO:<u@example.org\x00Tv@evil.example>"}, "555 syntax error (#5.5.4)"},
		{"null sender", []string{"MAIL FROM:<>"}, "250 ok"},
		{"rcpt first", []string{"RCPT TO:<u@example.org>"}, "503 MAIL first (#5.5.1)"},
		{"data first", []string{"DATA"}, "503 MAIL first (#5.5.1)"},
		{"data before rcpt", []string{"MAIL FROM:<>", "DATA"}, "503 RCPT first (#5.5.1)"},
		{"data after refused rcpt", []string{"MAIL FROM:<>", "RCPT TO:<x@far.example>", "DATA"}, "503 RCPT first (#5.5.1)"},
		{"rset ends the transaction", []string{"MAIL FROM:<>", "RCPT TO:<u@example.org>", "RSET", "RCPT TO:<u@example.org>"}, "503 MAIL first (#5.5.1)"},
		{"helo ends the transaction", []string{"MAIL FROM:<>", "HELO again", "RCPT TO:<u@example.org>"}, "503 MAIL first (#5.5.1)"},
		{"second mail clears the recipients", []string{"MAIL FROM:<>", "RCPT TO:<u@example.org>", "MAIL FROM:<b@c.example>", "DATA"}, "503 RCPT first (#5.5.1)"},
		{"bad mail keeps the transaction", []string{"MAIL FROM:<>", "RCPT TO:<u@example.org>", "MAIL FROM:<" + long + ">", "RCPT TO:<v@example.org>"}, "250 ok"},
		{"postmaster without domain", []string{"MAIL FROM:<>", "RCPT TO:<postmaster>"}, "250 ok"},
		{"rfc 821 style without brackets", []string{"MAIL FROM: a@b.example", "RCPT TO: u@example.org"}, "250 ok"},
		{"unknown parameters ignored", []string{"MAIL FROM:<a@b.example> BODY=8BITMIME FOO=bar", "RCPT TO:<u@example.org> NOTIFY=NEVER"}, "250 ok"},
		{"rset", []string{"MAIL FROM:<>", "RSET"}, "250 flushed"},
		{"noop", []string{"NOOP"}, "250 ok"},
		{"vrfy", []string{"VRFY root"}, "252 send some mail, i'll try my best"},
		{"mail SIZE fine without databytes", []string{"MAIL FROM:<a@b.example> SIZE=99999999"}, "250 ok"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, s)
			c.last()
			c.expectPrefix("HELO client.example", "250 ")
			var got string
			for _, cmd := range tc.cmds {
				got = c.cmd(cmd)
			}
			if got != tc.reply {
				t.Errorf("got %q, want %q", got, tc.reply)
			}
		})
	}
}

// TestReceived checks the Received line against a golden file.
func TestReceived(t *testing.T) {
	info := "ident"
	empty := ""
	at := time.Date(1995, 9, 26, 4, 46, 54, 0, time.UTC)
	cases := []struct {
		peer Peer
		helo string
	}{
		{Peer{RemoteIP: "192.0.2.1", RemoteHost: "client.example", LocalHost: "mx.example.org"}, "client.example"},
		{Peer{RemoteIP: "192.0.2.1", RemoteHost: "client.example", LocalHost: "mx.example.org"}, "CLIENT.Example"},
		{Peer{RemoteIP: "192.0.2.1", RemoteHost: "unknown", LocalHost: "mx.example.org"}, "other.example"},
		{Peer{RemoteIP: "192.0.2.1", RemoteHost: "unknown", LocalHost: "mx.example.org", RemoteInfo: &info}, "h"},
		{Peer{RemoteIP: "192.0.2.1", RemoteHost: "unknown", LocalHost: "unknown", RemoteInfo: &empty}, "h"},
		{Peer{RemoteIP: "::1", RemoteHost: "evil\nX-Injected: yes", LocalHost: "mx.example.org"}, "a b(c)<d>\"e\";\r\n\x00\xff%+/=:-[]_"},
	}
	var out strings.Builder
	for _, c := range cases {
		out.WriteString(Received(c.peer, c.helo, at))
	}
	golden := filepath.Join("testdata", "received.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Errorf("Received lines:\n%s\nwant:\n%s", out.String(), want)
	}
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if !regexp.MustCompile(`^(Received: from |  by )[A-Za-z0-9.@%+/=:\-\[\]?() ;]*$`).MatchString(line) {
			t.Errorf("unsafe byte in %q", line)
		}
	}
}

// TestReceivedHELOCase: "(HELO name)" is left out when the name equals
// the remote host name with A-Z and a-z taken as equal, and only then:
// as in qmail, no other character folds onto an ASCII letter (KELVIN SIGN
// U+212A onto k, LONG S U+017F onto s, as Unicode case folding has it).
func TestReceivedHELOCase(t *testing.T) {
	at := time.Date(1995, 9, 26, 4, 46, 54, 0, time.UTC)
	for _, tc := range []struct {
		host, helo string
		shown      bool
	}{
		{"unknown", "unknown", false},
		{"unknown", "UnKnOwN", false},
		{"unknown", "un\u212Anown", true},
		{"smtp.example", "\u017Fmtp.example", true},
		{"unknown", "unknown.", true},
	} {
		r := Received(Peer{RemoteIP: "192.0.2.1", RemoteHost: tc.host, LocalHost: "mx.example.org"}, tc.helo, at)
		if got := strings.Contains(r, "(HELO "); got != tc.shown {
			t.Errorf("host %q, HELO %q: (HELO) shown %v, want %v: %q", tc.host, tc.helo, got, tc.shown, r)
		}
	}
}

// TestRelayClient: with RELAYCLIENT every recipient is taken and the
// value is appended; rcpthosts is not consulted.
func TestRelayClient(t *testing.T) {
	q := useMemQueue(t)
	root := testRoot(t, nil)
	suffix := "-relay"
	peer := loopPeer
	peer.Relay = &suffix
	s := startServer(t, root, peer, nil)
	c := dial(t, s)
	c.last()
	c.expectPrefix("HELO x", "250 ")
	c.expectPrefix("MAIL FROM:<a@b.example>", "250 ")
	c.expectPrefix("RCPT TO:<someone@far.example>", "250 ")
	c.expectPrefix("DATA", "354 ")
	c.send(textprotoDot("x\n"))
	c.expectPrefix("", "250 ok ")
	c.expectPrefix("QUIT", "221 ")
	msgs := q.all()
	if len(msgs) != 1 || fmtEnv(msgs[0].Env) != "Fa@b.example Tsomeone@far.example-relay" {
		t.Fatalf("queued %+v", msgs)
	}
}

// TestNoRcpthosts: without control/rcpthosts every recipient is accepted.
func TestNoRcpthosts(t *testing.T) {
	useMemQueue(t)
	root := testRoot(t, map[string]string{"rcpthosts": "\x00absent"})
	s := startServer(t, root, loopPeer, nil)
	c := dial(t, s)
	c.last()
	c.expectPrefix("HELO x", "250 ")
	c.expectPrefix("MAIL FROM:<>", "250 ")
	c.expectPrefix("RCPT TO:<anyone@anywhere.example>", "250 ")
}

// TestMoreRcpthosts: keys of morercpthosts.cdb count as rcpthosts.
func TestMoreRcpthosts(t *testing.T) {
	useMemQueue(t)
	root := testRoot(t, nil)
	err := cdb.WriteFile(filepath.Join(root, "control", "morercpthosts.cdb"), 0o644,
		[]cdb.Record{{Key: []byte("more.example")}, {Key: []byte(".sub.example")}})
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, root, loopPeer, nil)
	c := dial(t, s)
	c.last()
	c.expectPrefix("HELO x", "250 ")
	c.expectPrefix("MAIL FROM:<>", "250 ")
	c.expectPrefix("RCPT TO:<u@MORE.example>", "250 ")
	c.expectPrefix("RCPT TO:<u@a.b.sub.example>", "250 ")
	c.expectPrefix("RCPT TO:<u@sub.example>", "553 ")
	c.expectPrefix("RCPT TO:<u@xmore.example>", "553 ")
}

// TestTooManyRecipients: 1000 recipients are taken, the next gets 452.
func TestTooManyRecipients(t *testing.T) {
	q := useMemQueue(t)
	root := testRoot(t, nil)
	s := startServer(t, root, loopPeer, nil)
	c := dial(t, s)
	c.last()
	c.expectPrefix("HELO x", "250 ")
	var b strings.Builder
	b.WriteString("MAIL FROM:<a@b.example>\r\n")
	for i := 0; i < DefaultMaxRcpt+1; i++ {
		b.WriteString("RCPT TO:<u" + strconv.Itoa(i) + "@example.org>\r\n")
	}
	c.send(b.String()) // pipelined
	if got := c.last(); !strings.HasPrefix(got, "250 ") {
		t.Fatalf("MAIL: %q", got)
	}
	for i := 0; i < DefaultMaxRcpt; i++ {
		if got := c.last(); !strings.HasPrefix(got, "250 ") {
			t.Fatalf("RCPT %d: %q", i, got)
		}
	}
	if got := c.last(); got != "452 too many recipients (#4.5.3)" {
		t.Errorf("RCPT 1001: %q", got)
	}
	c.expectPrefix("DATA", "354 ")
	c.send(textprotoDot("x\n"))
	c.expectPrefix("", "250 ok ")
	c.expectPrefix("QUIT", "221 ")
	if msgs := q.all(); len(msgs) != 1 || len(msgs[0].Env.Recipients) != DefaultMaxRcpt {
		t.Fatalf("queued %d messages", len(msgs))
	}
}

// TestPipelining sends a whole transaction in one write.
func TestPipelining(t *testing.T) {
	q := useMemQueue(t)
	root := testRoot(t, nil)
	s := startServer(t, root, loopPeer, nil)
	c := dial(t, s)
	c.last()
	c.send("EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<u@example.org>\r\nRCPT TO:<bad@far.example>\r\n" +
		"RCPT TO:<v@example.org>\r\nDATA\r\n")
	c.reply()
	for i, want := range []string{"250 ", "250 ", "553 ", "250 ", "354 "} {
		if got := c.last(); !strings.HasPrefix(got, want) {
			t.Errorf("reply %d: %q, want %q...", i, got, want)
		}
	}
	c.send(textprotoDot("Subject: p\n\nx\n") + "MAIL FROM:<>\r\nRCPT TO:<w@example.org>\r\nDATA\r\n")
	for i, want := range []string{"250 ok ", "250 ", "250 ", "354 "} {
		if got := c.last(); !strings.HasPrefix(got, want) {
			t.Errorf("second batch reply %d: %q, want %q...", i, got, want)
		}
	}
	c.send(textprotoDot("y\n") + "QUIT\r\n")
	c.last()
	c.last()
	msgs := q.all()
	if len(msgs) != 2 || fmtEnv(msgs[0].Env) != "Fa@b.example Tu@example.org Tv@example.org" ||
		fmtEnv(msgs[1].Env) != "F Tw@example.org" {
		t.Fatalf("queued %+v", msgs)
	}
}

// TestQueueResults maps qmail-queue's exits to replies, with the real
// process protocol (this test binary acts as qmail-queue).
func TestQueueResults(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		exit  string
		qq    string
		reply string
	}{
		{"", exe, "250 ok 1795665003 qp "},
		{"31", exe, "554 mail server permanently rejected message (#5.3.0)"},
		{"71", exe, "451 mail server temporarily rejected message (#4.3.0)"},
		{"53", exe, "451 qq write error or disk full (#4.3.0)"},
		{"", "/nonexistent/qmail-queue", "451 qqt failure (#4.3.0)"},
	}
	for _, tc := range tests {
		t.Run(tc.exit+tc.qq, func(t *testing.T) {
			dir := t.TempDir()
			root := testRoot(t, nil)
			s := startServer(t, root, loopPeer, func(c *Config) {
				c.QueueEnv = []string{"QMAILQUEUE=" + tc.qq, "HQ_FAKEQQ_DIR=" + dir, "HQ_FAKEQQ_EXIT=" + tc.exit}
			})
			c := dial(t, s)
			c.last()
			c.expectPrefix("HELO x", "250 ")
			c.expectPrefix("MAIL FROM:<a@b.example>", "250 ")
			c.expectPrefix("RCPT TO:<u@example.org>", "250 ")
			if tc.qq != exe {
				// qmail-queue is started before the 354, as in
				// qmail; the transaction is over.
				c.expect("DATA", tc.reply)
				c.expect("RCPT TO:<u@example.org>", "503 MAIL first (#5.5.1)")
				return
			}
			c.expectPrefix("DATA", "354 ")
			c.send(textprotoDot("Subject: q\n\nbody\n"))
			got := c.last()
			if !strings.HasPrefix(got, tc.reply) || (!strings.HasSuffix(tc.reply, " ") && got != tc.reply) {
				t.Errorf("got %q, want %q", got, tc.reply)
			}
			files, _ := filepath.Glob(filepath.Join(dir, "*.env"))
			if (tc.exit == "" && tc.qq == exe) != (len(files) == 1) {
				t.Errorf("queued files: %v", files)
			}
			if len(files) == 1 {
				env, _ := os.ReadFile(files[0])
				if e, err := qq.ParseEnvelope(env); err != nil || fmtEnv(e) != "Fa@b.example Tu@example.org" {
					t.Errorf("envelope %q", env)
				}
			}
		})
	}
}

// TestControls checks LoadConfig's defaults and failures.
func TestControls(t *testing.T) {
	env := func(kv ...string) func(string) (string, bool) {
		return func(k string) (string, bool) {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1], true
				}
			}
			return "", false
		}
	}
	t.Run("defaults", func(t *testing.T) {
		cfg, _, err := LoadConfig(testRoot(t, map[string]string{"rcpthosts": "\x00absent"}), noEnv)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Greeting != "mx.example.org" || cfg.LocalIPHost != "mx.example.org" || cfg.Timeout != 1200*time.Second ||
			cfg.Databytes != 0 || cfg.RcptHosts != nil || cfg.TLS != nil {
			t.Errorf("defaults: %+v", cfg)
		}
	})
	t.Run("values", func(t *testing.T) {
		cfg, _, err := LoadConfig(testRoot(t, map[string]string{"smtpgreeting": "hello there \n", "timeoutsmtpd": "0\n",
			"databytes": "1000\n", "localiphost": "[literal]\n"}), env("DATABYTES", "77"))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Greeting != "hello there" || cfg.Timeout != time.Second || cfg.Databytes != 77 || cfg.LocalIPHost != "[literal]" {
			t.Errorf("values: %+v", cfg)
		}
	})
	t.Run("localiphost", func(t *testing.T) {
		// Neither it nor me: no replacement; an empty one: "".
		cfg, _, err := LoadConfig(testRoot(t, map[string]string{"smtpgreeting": "hi\n", "me": "\x00absent"}), noEnv)
		if err != nil || !cfg.NoLocalIPHost {
			t.Errorf("without localiphost and me: %+v %v", cfg, err)
		}
		cfg, _, err = LoadConfig(testRoot(t, map[string]string{"localiphost": ""}), noEnv)
		if err != nil || cfg.NoLocalIPHost || cfg.LocalIPHost != "" {
			t.Errorf("empty localiphost: %+v %v", cfg, err)
		}
	})
	t.Run("numbers as qmail reads them", func(t *testing.T) {
		for _, tc := range []struct {
			timeout, databytes string
			wantT              time.Duration
			wantD              int64
		}{
			{"abc\n", "100 # bytes\n", 1200 * time.Second, 100},
			{"-5\n", "x\n", 1200 * time.Second, 0},
			{"30s\n", " 7\n", 30 * time.Second, 0},
		} {
			cfg, _, err := LoadConfig(testRoot(t, map[string]string{"timeoutsmtpd": tc.timeout, "databytes": tc.databytes}), noEnv)
			if err != nil || cfg.Timeout != tc.wantT || cfg.Databytes != tc.wantD {
				t.Errorf("timeoutsmtpd %q databytes %q: %v %d, %v", tc.timeout, tc.databytes, cfg.Timeout, cfg.Databytes, err)
			}
		}
	})
	t.Run("huge timeout", func(t *testing.T) {
		// A time.Duration of that many seconds would overflow to a
		// negative one: every session dropped after its greeting.
		cfg, _, err := LoadConfig(testRoot(t, map[string]string{"timeoutsmtpd": "99999999999999999\n"}), noEnv)
		if err != nil || cfg.Timeout < 24*time.Hour {
			t.Errorf("timeout %v, %v", cfg.Timeout, err)
		}
	})
	t.Run("no greeting", func(t *testing.T) {
		if _, _, err := LoadConfig(testRoot(t, map[string]string{"me": "\x00absent"}), noEnv); err == nil {
			t.Errorf("no smtpgreeting and no me: no error")
		}
	})
	t.Run("unreadable", func(t *testing.T) {
		root := testRoot(t, nil)
		os.Remove(filepath.Join(root, "control", "rcpthosts"))
		os.Mkdir(filepath.Join(root, "control", "rcpthosts"), 0o755) // read fails with EISDIR
		if _, _, err := LoadConfig(root, noEnv); err == nil {
			t.Errorf("unreadable rcpthosts: no error")
		}
	})
	t.Run("morercpthosts.cdb", func(t *testing.T) {
		// With rcpthosts, one that cannot be opened or is no cdb is
		// ErrControls, as qmail's open before the greeting; a missing
		// one is fine, and without rcpthosts it is not read at all.
		root := testRoot(t, nil)
		more := filepath.Join(root, "control", "morercpthosts.cdb")
		if _, _, err := LoadConfig(root, noEnv); err != nil {
			t.Errorf("missing morercpthosts.cdb: %v", err)
		}
		if err := cdb.WriteFile(more, 0o644, nil); err != nil {
			t.Fatal(err)
		}
		if _, _, err := LoadConfig(root, noEnv); err != nil {
			t.Errorf("valid morercpthosts.cdb: %v", err)
		}
		os.WriteFile(more, make([]byte, 100), 0o644) // shorter than a header
		if _, _, err := LoadConfig(root, noEnv); !errors.Is(err, ErrControls) || !strings.HasSuffix(err.Error(), more+": cdb: bad format") {
			t.Errorf("short morercpthosts.cdb: err %v, want ErrControls naming the file, bad format", err)
		}
		os.Remove(more)
		os.Mkdir(more, 0o755)
		if _, _, err := LoadConfig(root, noEnv); !errors.Is(err, ErrControls) || !strings.HasSuffix(err.Error(), more+": is a directory") {
			t.Errorf("morercpthosts.cdb a directory: err %v, want ErrControls naming the file, is a directory", err)
		}
		os.Remove(filepath.Join(root, "control", "rcpthosts"))
		if cfg, _, err := LoadConfig(root, noEnv); err != nil || cfg.RcptHosts != nil {
			t.Errorf("no rcpthosts, morercpthosts.cdb a directory: %v", err)
		}
	})
}

func TestPeerFromEnv(t *testing.T) {
	get := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	p := PeerFromEnv(get(nil))
	if p.RemoteIP != "unknown" || p.RemoteHost != "unknown" || p.LocalHost != "unknown" || p.RemoteInfo != nil || p.Relay != nil {
		t.Errorf("empty env: %+v", p)
	}
	p = PeerFromEnv(get(map[string]string{"TCPLOCALIP": "192.0.2.9", "RELAYCLIENT": "", "TCPREMOTEINFO": "x"}))
	if p.LocalHost != "192.0.2.9" || p.Relay == nil || *p.Relay != "" || p.RemoteInfo == nil {
		t.Errorf("env: %+v", p)
	}
	p = PeerFromEnv(get(map[string]string{"TCPLOCALIP": "192.0.2.9", "TCPLOCALHOST": "mx"}))
	if p.LocalHost != "mx" || !p.LocalNamed {
		t.Errorf("TCPLOCALHOST: %+v", p)
	}
	if env := strings.Join(sessionEnv([]string{}, p), "\n"); !strings.Contains(env, "TCPLOCALHOST=mx") {
		t.Errorf("qmail-queue's environment with TCPLOCALHOST=mx: %q", env)
	}
	// tcpserver found no name for the local address (no PTR record, no
	// -l): the address stands in for it in the Received line, but
	// qmail-queue, which qmail gives the environment as it is, gets no
	// TCPLOCALHOST (QA rlwq: a $QMAILQUEUE filter saw TCPLOCALHOST=IP).
	p = PeerFromEnv(get(map[string]string{"TCPLOCALIP": "192.0.2.9"}))
	if p.LocalHost != "192.0.2.9" || p.LocalNamed {
		t.Errorf("TCPLOCALIP alone: %+v", p)
	}
	if env := strings.Join(sessionEnv([]string{"TCPLOCALIP=192.0.2.9"}, p), "\n"); strings.Contains(env, "TCPLOCALHOST") {
		t.Errorf("qmail-queue's environment without TCPLOCALHOST: %q", env)
	}
}
