package sendmail

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"

	"github.com/hqmail/hqmail/internal/testutil"
)

func TestParse(t *testing.T) {
	s := func(v string) *string { return &v }
	tests := []struct {
		prog    string
		args    []string
		mode    int
		header  bool
		sender  *string
		name    *string
		recips  []string
		errPart string
	}{
		{args: []string{"bob"}, recips: []string{"bob"}},
		{args: []string{"-t"}, header: true},
		{args: []string{"-ti"}, header: true},
		{args: []string{"-t", "-i", "-oi", "-oem", "-oep", "-odi", "-odb", "-odq", "bob"}, header: true, recips: []string{"bob"}},
		{args: []string{"-o", "i", "-e", "m", "-p", "smtp", "bob"}, recips: []string{"bob"}},
		{args: []string{"-fjoe@x", "bob"}, sender: s("joe@x"), recips: []string{"bob"}},
		{args: []string{"-f", "joe@x", "bob"}, sender: s("joe@x"), recips: []string{"bob"}},
		{args: []string{"-r", "joe@x", "bob"}, sender: s("joe@x"), recips: []string{"bob"}},
		{args: []string{"-rjoe@x", "bob"}, sender: s("joe@x"), recips: []string{"bob"}},
		{args: []string{"-FCronDaemon", "-i", "-B8BITMIME", "-oem", "user"}, name: s("CronDaemon"), recips: []string{"user"}},
		{args: []string{"-F", "Full Name", "bob"}, name: s("Full Name"), recips: []string{"bob"}},
		{args: []string{"-N", "success,failure", "-R", "hdrs", "-V", "envid", "bob"}, recips: []string{"bob"}},
		{args: []string{"-Nnever", "-Rfull", "-Vx", "-B", "7BIT", "bob"}, recips: []string{"bob"}},
		{args: []string{"-L", "tag", "-v", "-G", "-U", "-C", "/etc/mail/sendmail.cf", "bob"}, recips: []string{"bob"}},
		{args: []string{"-vGUi", "-x", "-m", "-E", "-Jfoo", "bob"}, recips: []string{"bob"}},
		{args: []string{"-h", "17", "-Ofoo=bar", "bob"}, recips: []string{"bob"}},
		{args: []string{"-bm", "bob"}, mode: ModeDeliver, recips: []string{"bob"}},
		{args: []string{"-bs"}, mode: ModeSMTP},
		{args: []string{"-b", "s"}, mode: ModeSMTP},
		{args: []string{"-bp"}, mode: ModeQueueList},
		{args: []string{"-bmx", "bob"}, mode: ModeDeliver, recips: []string{"bob"}}, // the first letter counts
		{args: []string{"-bpq"}, mode: ModeQueueList},
		{args: []string{"-bi"}, mode: ModeNewAliases},
		{args: []string{"-I"}, mode: ModeNewAliases},
		{args: []string{"-Ac", "-Am", "-A", "c", "bob"}, recips: []string{"bob"}},
		{args: []string{"-q"}, mode: ModeFlush},
		{args: []string{"-q30m"}, mode: ModeFlush},
		{args: []string{"-qRexample.com"}, mode: ModeFlush},
		{args: []string{"-qSfoo"}, mode: ModeFlush},
		{prog: "mailq", mode: ModeQueueList},
		{prog: "mailq", args: []string{"-v"}, mode: ModeQueueList},
		{prog: "newaliases", mode: ModeNewAliases},
		{args: []string{"--", "-bob"}, recips: []string{"-bob"}},
		{args: []string{"bob", "-t"}, recips: []string{"bob", "-t"}},
		{args: []string{"-bd"}, errPart: "unsupported mode -bd"},
		{args: []string{"-bt"}, errPart: "unsupported mode -bt"},
		{args: []string{"-k"}, errPart: "illegal option -- k"},
		{args: []string{"-ti", "-Z"}, errPart: "illegal option -- Z"},
		// -bs and -bp act at once, as in qmail's sendmail: what follows
		// is not read.
		{args: []string{"-bs", "-Z", "bob"}, mode: ModeSMTP},
		{args: []string{"-bp", "-Z"}, mode: ModeQueueList},
		{args: []string{"-t", "-bs", "-f"}, mode: ModeSMTP, header: true},
		{args: []string{"-f"}, errPart: "option requires an argument -- f"},
		{args: []string{"-F"}, errPart: "option requires an argument -- F"},
		{args: []string{"-f", "a@b\nBcc: victim@x", "bob"}, errPart: "header injection"},
		{args: []string{"-F", "Name\r\nBcc: victim@x", "bob"}, errPart: "header injection"},
		{args: []string{"-Fa\x00b", "bob"}, errPart: "header injection"},
		// -oA's file may be the next word; -o's other values stay attached.
		{args: []string{"-bi", "-oA", "/etc/x", "-oi"}, mode: ModeNewAliases},
		{args: []string{"-oi", "-oem", "bob"}, recips: []string{"bob"}},
		{args: []string{"-bi", "-oA"}, errPart: "-oA needs the aliases file"},
		{args: []string{"-bi", "-oA", ""}, errPart: "-oA needs the aliases file"},
		{args: []string{"-oA", "-bi"}, errPart: "-oA needs the aliases file"},
	}
	for _, tc := range tests {
		prog := tc.prog
		if prog == "" {
			prog = "sendmail"
		}
		t.Run(prog+" "+strings.Join(tc.args, " "), func(t *testing.T) {
			c, err := Parse(prog, tc.args)
			if tc.errPart != "" {
				var ue *UsageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.errPart) {
					t.Fatalf("err %v, want usage error with %q", err, tc.errPart)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Mode != tc.mode || c.Header != tc.header {
				t.Errorf("mode %d header %v, want %d %v", c.Mode, c.Header, tc.mode, tc.header)
			}
			eq := func(a, b *string) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
			if !eq(c.Sender, tc.sender) || !eq(c.Name, tc.name) {
				t.Errorf("sender %v name %v, want %v %v", c.Sender, c.Name, tc.sender, tc.name)
			}
			if strings.Join(c.Recipients, "|") != strings.Join(tc.recips, "|") {
				t.Errorf("recipients %q, want %q", c.Recipients, tc.recips)
			}
		})
	}
}

// fakeTree makes a root with controls and a capture qmail-queue.
func fakeTree(t *testing.T) (root, capdir string, env []string) {
	root = t.TempDir()
	capdir = filepath.Join(root, "cap")
	// bin/qmail-queue and queue/ make root an installed qmail tree to
	// sendmail; $QMAILQUEUE is run instead of that qmail-queue.
	for _, d := range []string{"control", "bin", "cap", "queue"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "control", "me"), []byte("mx.example.org\n"), 0o644)
	os.WriteFile(filepath.Join(root, "bin", "qmail-queue"), []byte("#!/bin/sh\nexit 81\n"), 0o755)
	qq := filepath.Join(root, "qq")
	os.WriteFile(qq, []byte("#!/bin/sh\n/bin/cat > '"+capdir+"/message'\n/bin/cat <&1 > '"+capdir+"/envelope'\nexit ${QQEXIT:-0}\n"), 0o755)
	return root, capdir, []string{"USER=alice", "QMAILQUEUE=" + qq}
}

func TestMainInject(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		extraEnv []string
		in       string
		code     int
		envelope string
		msgHas   []string
		msgLacks []string
		errHas   string
	}{
		{name: "t with bcc", args: []string{"sendmail", "-t", "-i"},
			in:       "To: bob@example.com\nCc: carol\nBcc: dave@example.net, erin\nSubject: s\n\nbody\n",
			envelope: "Falice@mx.example.org\x00Tbob@example.com\x00Tcarol@mx.example.org\x00Terin@mx.example.org\x00Tdave@example.net\x00\x00",
			msgHas:   []string{"To: bob@example.com\n", "Cc: carol@mx.example.org\n"}, msgLacks: []string{"Bcc", "dave", "erin"}},
		{name: "cron", args: []string{"sendmail", "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"},
			in:       "Subject: Cron <root@h> ls\n\nout\n",
			envelope: "Falice@mx.example.org\x00Troot@mx.example.org\x00\x00",
			msgHas:   []string{"From: \"CronDaemon\" <alice@mx.example.org>\n", "Subject: Cron <root@h> ls\n"}},
		{name: "f sets sender and From", args: []string{"sendmail", "-F", "Gone", "-f", "<list-bounces@lists.example.org>", "bob@example.com"},
			extraEnv: []string{"NAME=Alice", "MAILHOST=old.example"},
			in:       "Subject: s\n\nb\n",
			envelope: "Flist-bounces@lists.example.org\x00Tbob@example.com\x00\x00",
			msgHas:   []string{"From: list-bounces@lists.example.org\n"}, msgLacks: []string{"Gone", "Alice", "old.example"}},
		// A sender field that does not parse is kept as written, where
		// qmail-inject refuses the message ("unable to parse this line").
		{name: "unparsable From kept", args: []string{"sendmail", "-oi", "bob@example.com"},
			in:       "From: Cron Daemon (root\nReply-To: a@b>\nSubject: s\n\nb\n",
			envelope: "Falice@mx.example.org\x00Tbob@example.com\x00\x00",
			msgHas:   []string{"From: Cron Daemon (root\n", "Reply-To: a@b>\n"}},
		// A Return-Path handed over with stored mail (mutt's bounce,
		// formail -s, procmail's forward) is removed and is not the
		// envelope sender: that is the caller, as with sendmail and
		// Postfix (qmail-inject would take it).
		{name: "Return-Path ignored", args: []string{"sendmail", "-oi", "fwd@example.com"},
			in:       "Return-Path: <orig@elsewhere.example>\nFrom: orig@elsewhere.example\nSubject: fwd\n\nb\n",
			envelope: "Falice@mx.example.org\x00Tfwd@example.com\x00\x00",
			msgHas:   []string{"From: orig@elsewhere.example\n"}, msgLacks: []string{"Return-Path"}},
		// UTF-8 in a domain is left bare (RFC 6532): a quoted domain is
		// no domain. A local part's and a display name's words stay
		// quoted, as qmail writes them; bytes that are no UTF-8 stay
		// quoted everywhere.
		{name: "UTF-8 addresses", args: []string{"sendmail", "-t"},
			in:       "From: Admin <admin@b\xc3\xbccher.example>\nTo: j\xc3\xb6rg@example.test, J\xc3\xb6rg M\xc3\xbcller <jm@b\xc3\xbccher.example>\nCc: x\xf6y@example.test\nSubject: s\n\nb\n",
			envelope: "Falice@mx.example.org\x00Tjm@b\xc3\xbccher.example\x00Tj\xc3\xb6rg@example.test\x00Tx\xf6y@example.test\x00\x00",
			msgHas: []string{"From: Admin <admin@b\xc3\xbccher.example>\n",
				"To: \"j\xc3\xb6rg\"@example.test, \"J\xc3\xb6rg\" \"M\xc3\xbcller\" <jm@b\xc3\xbccher.example>\n",
				"Cc: \"x\xf6y\"@example.test\n"}},
		{name: "UTF-8 sender", args: []string{"sendmail", "-f", "j\xc3\xb6rg@b\xc3\xbccher.example", "bob@example.com"},
			in:       "Subject: s\n\nb\n",
			envelope: "Fj\xc3\xb6rg@b\xc3\xbccher.example\x00Tbob@example.com\x00\x00",
			msgHas:   []string{"From: \"j\xc3\xb6rg\"@b\xc3\xbccher.example\n"}},
		// -f MAILER-DAEMON is the null sender, as in Postfix; with a
		// domain it is an address like any other.
		{name: "f MAILER-DAEMON", args: []string{"sendmail", "-f", "mailer-daemon", "bob@example.com"},
			in:       "Subject: s\n\nb\n",
			envelope: "F\x00Tbob@example.com\x00\x00",
			msgHas:   []string{"From: mailer-daemon@mx.example.org\n"}},
		{name: "f MAILER-DAEMON@host", args: []string{"sendmail", "-f", "MAILER-DAEMON@x.example", "bob@example.com"},
			in:       "Subject: s\n\nb\n",
			envelope: "FMAILER-DAEMON@x.example\x00Tbob@example.com\x00\x00"},
		// -XV: VERP in qmail's form, -f's sender too.
		{name: "XV with f", args: []string{"sendmail", "-XV", "-f", "owner-list@lists.example.org", "bob@example.com"},
			in:       "Subject: s\n\nb\n",
			envelope: "Fowner-list-@lists.example.org-@[]\x00Tbob@example.com\x00\x00"},
		{name: "XV delimiters, no f", args: []string{"sendmail", "-XV+=", "bob@example.com"},
			in:       "Subject: s\n\nb\n",
			envelope: "Falice-@mx.example.org-@[]\x00Tbob@example.com\x00\x00"},
		{name: "XV null sender", args: []string{"sendmail", "-XV", "-f", "<>", "bob@example.com"},
			in:       "Subject: s\n\nb\n",
			envelope: "F\x00Tbob@example.com\x00\x00"},
		{name: "X log file", args: []string{"sendmail", "-X", "Vlog", "bob@example.com"},
			in:       "Subject: s\n\nb\n",
			envelope: "Falice@mx.example.org\x00Tbob@example.com\x00\x00"},
		{name: "cron MAILTO list", args: []string{"sendmail", "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root, bob@example.com,,carol"},
			in:       "Subject: s\n\nb\n",
			envelope: "Falice@mx.example.org\x00Troot@mx.example.org\x00Tbob@example.com\x00Tcarol@mx.example.org\x00\x00"},
		{name: "comma in a comment", args: []string{"sendmail", "bob@example.com (Bob, the builder), carol"},
			in:       "Subject: s\n\nb\n",
			envelope: "Falice@mx.example.org\x00Tbob@example.com\x00Tcarol@mx.example.org\x00\x00"},
		{name: "name-addr forms", args: []string{"sendmail", "-f", "Joe Q <joe@example.org>", `"Smith, Bob" <bob@example.com>`, `"a,b"@example.net`},
			in:       "Subject: s\n\nb\n",
			envelope: "Fjoe@example.org\x00Tbob@example.com\x00Ta,b@example.net\x00\x00",
			msgHas:   []string{"From: joe@example.org\n"}},
		// A quoted local part is the mailbox inside the quotes (git
		// send-email and s-nail pass "joe smith"@x; the quotes were
		// queued as part of it, another mailbox), in -f too.
		{name: "quoted local parts", args: []string{"sendmail", "-f", `"jo bo"@y.example`, `"joe smith"@x.example`, `Joe <"j.s."@x.example>`, `"a<b"@x.example`},
			in:       "Subject: s\n\nb\n",
			envelope: "Fjo bo@y.example\x00Tjoe smith@x.example\x00Tj.s.@x.example\x00Ta<b@x.example\x00\x00",
			msgHas:   []string{"From: \"jo bo\"@y.example\n"}},
		// Groups, as sendmail and Postfix read them: the members.
		{name: "groups", args: []string{"sendmail", "team: g1@x.example, g2@x.example;", "undisclosed-recipients:;", "c@x.example (c@home)"},
			in:       "Subject: s\n\nb\n",
			envelope: "Falice@mx.example.org\x00Tg1@x.example\x00Tg2@x.example\x00Tc@x.example\x00\x00"},
		{name: "only an empty group", args: []string{"sendmail", "undisclosed-recipients:;"}, in: "x\n", code: ExDataErr, errHas: "no recipients found"},
		// An empty local part ("$ADMIN@localhost" with ADMIN unset, cron's
		// MAILTO=@localhost) is refused: qmail-lspawn takes it as
		// delivered and the message was lost with exit 0.
		{name: "no local part", args: []string{"sendmail", "@localhost"}, in: "x\n", code: ExDataErr,
			errHas: `sendmail: fatal: unable to parse address "@localhost": it has no local part`},
		{name: "no local part in a list", args: []string{"sendmail", "bob, Admin <@localhost>"}, in: "x\n", code: ExDataErr,
			errHas: `unable to parse address "Admin <@localhost>" in the argument "bob, Admin <@localhost>": it has no local part`},
		{name: "empty quoted local part", args: []string{"sendmail", "bob", `""@localhost`}, in: "x\n", code: ExDataErr, errHas: "it has no local part"},
		{name: "only a comment before the @", args: []string{"sendmail", "(admin)@localhost"}, in: "x\n", code: ExDataErr, errHas: "it has no local part"},
		{name: "a lone @", args: []string{"sendmail", "@"}, in: "x\n", code: ExDataErr, errHas: "it has no local part"},
		// A route or an @ quoted in the local part is one.
		{name: "local part with an @", args: []string{"sendmail", `"@"@x.example`, "<@a.example:b@c.example>"},
			in:       "Subject: s\n\nb\n",
			envelope: "Falice@mx.example.org\x00T@@x.example\x00T@a.example:b@c.example\x00\x00"},
		// -f with an empty local part stays as it was: the message is
		// queued (only its bounces have no mailbox).
		{name: "f without a local part", args: []string{"sendmail", "-f", "@y.example", "bob@example.com"},
			in:       "Subject: s\n\nb\n",
			envelope: "F@y.example\x00Tbob@example.com\x00\x00"},
		{name: "folded name-addr", args: []string{"sendmail", "-f", "j@y.example\n", "Joe <f5@x.example>\n (work)"},
			in:       "Subject: s\n\nb\n",
			envelope: "Fj@y.example\x00Tf5@x.example\x00\x00"},
		{name: "f list", args: []string{"sendmail", "-f", "a@y.example, b@y.example", "k@x.example"}, in: "x\n",
			code: ExDataErr, errHas: "it holds 2 addresses"},
		// -f is one element of a list, read as a recipient's is.
		{name: "f with a separator", args: []string{"sendmail", "-f", "a@y.example;", "k@x.example"},
			in:       "Subject: s\n\nb\n",
			envelope: "Fa@y.example\x00Tk@x.example\x00\x00"},
		{name: "f group", args: []string{"sendmail", "-f", "team: a@y.example;", "k@x.example"},
			in:       "Subject: s\n\nb\n",
			envelope: "Fa@y.example\x00Tk@x.example\x00\x00"},
		{name: "f empty group", args: []string{"sendmail", "-f", "undisclosed-recipients:;", "k@x.example"},
			in:       "Subject: s\n\nb\n",
			envelope: "F\x00Tk@x.example\x00\x00"},
		{name: "outlook list", args: []string{"sendmail", "a@x.example; b@y.example", "joe (c)@x.example"},
			in:       "Subject: s\n\nb\n",
			envelope: "Falice@mx.example.org\x00Ta@x.example\x00Tb@y.example\x00Tjoe@x.example\x00\x00"},
		{name: "name-addr with comments", args: []string{"sendmail", "-f", "Joe <joe@example.org> (list)", "Bob <bob@example.com> (work) (b\\) c)", "k@example.net (K)"},
			in:       "Subject: s\n\nb\n",
			envelope: "Fjoe@example.org\x00Tbob@example.com\x00Tk@example.net\x00\x00"},
		{name: "php CRLF", args: []string{"sendmail", "-t", "-i"},
			in:       "To: bob@example.com\r\nSubject: php\r\nX-Mailer: PHP\r\n\r\nline 1\r\nbare\rcr\r\n",
			envelope: "Falice@mx.example.org\x00Tbob@example.com\x00\x00",
			msgHas:   []string{"Subject: php\nX-Mailer: PHP\n\nline 1\nbare\rcr\n"}, msgLacks: []string{"php\r", "\n\r\n"}},
		{name: "f with white space", args: []string{"sendmail", "-f", " joe@example.org ", "bob@example.com"},
			in:       "Subject: s\n\nb\n",
			envelope: "Fjoe@example.org\x00Tbob@example.com\x00\x00",
			msgHas:   []string{"From: joe@example.org\n"}},
		{name: "no recipients", args: []string{"sendmail"}, in: "x\n", code: ExUsage, errHas: "recipient addresses must be given"},
		{name: "only blanks and commas", args: []string{"sendmail", " , "}, in: "x\n", code: ExDataErr, errHas: "no recipients found"},
		{name: "t finds none", args: []string{"sendmail", "-t"}, in: "Subject: x\n\n", code: ExDataErr, errHas: "no recipients found"},
		{name: "bad arg", args: []string{"sendmail", "bob@x(y"}, in: "x\n", code: ExDataErr, errHas: "unable to parse address"},
		{name: "name-addr then words", args: []string{"sendmail", "bob", "Joe <j@x.org> trailing"}, in: "x\n", code: ExDataErr,
			errHas: `sendmail: fatal: unable to parse address "Joe <j@x.org> trailing": text after the closing '>'`},
		{name: "two name-addrs", args: []string{"sendmail", "Joe <j@x.org> <k@y.org>"}, in: "x\n", code: ExDataErr,
			errHas: `unable to parse address "Joe <j@x.org> <k@y.org>": a second <address> follows the first: separate addresses with commas`},
		{name: "bad element of a list", args: []string{"sendmail", "bob, <j@x.org"}, in: "x\n", code: ExDataErr,
			errHas: `unable to parse address "<j@x.org" in the argument "bob, <j@x.org": '<' without a closing '>'`},
		{name: "double close", args: []string{"sendmail", "Joe <j@x.org>>"}, in: "x\n", code: ExDataErr, errHas: `"Joe <j@x.org>>"`},
		{name: "f with words after", args: []string{"sendmail", "-f", "Joe <j@x.org> junk", "bob"}, in: "x\n", code: ExDataErr,
			errHas: `sendmail: fatal: unable to parse the -f address "Joe <j@x.org> junk": text after the closing '>'`},
		{name: "null sender with comment", args: []string{"sendmail", "-f", "<> (bounce)", "bob@example.com"},
			in:       "Subject: s\n\nb\n",
			envelope: "F\x00Tbob@example.com\x00\x00"},
		{name: "null sender", args: []string{"sendmail", "-f", "<>", "bob@example.com"},
			in:       "Subject: s\n\nb\n",
			envelope: "F\x00Tbob@example.com\x00\x00"},
		{name: "odd local parts", args: []string{"sendmail", "a b@example.com", `x"y@example.com`, "<j@x.org> (J)"},
			in:       "Subject: s\n\nb\n",
			envelope: "Falice@mx.example.org\x00Ta b@example.com\x00Tx\"y@example.com\x00Tj@x.org\x00\x00"},
		// fetchmail's multidrop %T: a message's recipients in one
		// argument, separated by spaces. They were one address,
		// "box@mail.test carol-list@mail.test dave"@mail.test, which
		// bounced to the sender after fetchmail had deleted the mail.
		{name: "recipients separated by spaces", args: []string{"sendmail", "-oem", "-f", "alice@remote.example",
			"box@mail.test carol-list@mail.test  dave@mail.test", `"a b"@x.org (c) k@y.org`, "box@mail.test\tdave", "joe@x.org (Joe Smith)"},
			in: "Subject: s\n\nb\n",
			envelope: "Falice@remote.example\x00Tbox@mail.test\x00Tcarol-list@mail.test\x00Tdave@mail.test\x00" +
				"Ta b@x.org\x00Tk@y.org\x00Tbox@mail.test\x00Tdave@mx.example.org\x00Tjoe@x.org\x00\x00"},
		// A word that is all quoted string or angle brackets is kept: the
		// first splitting dropped it, and a name-addr's address with it
		// (QA reg24). A name-addr is read whole, its words a phrase, as
		// Postfix reads it.
		{name: "split keeps quoted words; a name-addr stays whole", args: []string{"sendmail",
			`a@b.test c@d.test "x y"`, "j@x.test Joe <k@y.test>", "a@b.test c@d.test <e@f.test>"},
			in: "Subject: s\n\nb\n",
			envelope: "Falice@mx.example.org\x00Ta@b.test\x00Tc@d.test\x00Tx y@mx.example.org\x00" +
				"Tk@y.test\x00Te@f.test\x00\x00"},
		// A quoted word with an '@', or a quoted name before an address,
		// is a word of its own too (QA reg25: '"a@b" c@d' was the one
		// address a@bc@d).
		{name: "split at a quoted word", args: []string{"sendmail", `"a@b.test" c@d.test`, `"Smith, John" john@x.test`, `joe (j@x) k@y.test`},
			in: "Subject: s\n\nb\n",
			envelope: "Falice@mx.example.org\x00Ta@b.test\x00Tc@d.test\x00TSmith, John@mx.example.org\x00Tjohn@x.test\x00" +
				"Tjoe k@y.test\x00\x00"},
		{name: "lone CR at the end", args: []string{"sendmail", "bob@example.com"},
			in: "Subject: s\r\n\r\nlast\r", envelope: "Falice@mx.example.org\x00Tbob@example.com\x00\x00",
			msgHas: []string{"\n\nlast\n"}, msgLacks: []string{"\r"}},
		{name: "qq perm", args: []string{"sendmail", "bob"}, extraEnv: []string{"QQEXIT=31"}, in: "x\n", code: ExUnavailable, errHas: "permanently rejected"},
		{name: "qq temp", args: []string{"sendmail", "bob"}, extraEnv: []string{"QQEXIT=71"}, in: "x\n", code: ExTempFail, errHas: "temporarily rejected"},
		{name: "unknown flag", args: []string{"sendmail", "-Y", "bob"}, in: "x\n", code: ExUsage, errHas: "illegal option -- Y"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root, capdir, env := fakeTree(t)
			env = append(env, tc.extraEnv...)
			var out, errb bytes.Buffer
			sys := Sys{Chdir: func(string) error { return nil }, Exec: func(string, []string, []string) error { return errors.New("no exec in tests") }}
			code := Main(tc.args, root, env, strings.NewReader(tc.in), &out, &errb, sys)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.code, errb.String())
			}
			if tc.errHas != "" && !strings.Contains(errb.String(), tc.errHas) {
				t.Errorf("stderr %q lacks %q", errb.String(), tc.errHas)
			}
			if tc.envelope == "" {
				return
			}
			envl, _ := os.ReadFile(filepath.Join(capdir, "envelope"))
			msg, _ := os.ReadFile(filepath.Join(capdir, "message"))
			if string(envl) != tc.envelope {
				t.Errorf("envelope %q, want %q", envl, tc.envelope)
			}
			checkMessage(t, msg, tc.msgHas, tc.msgLacks)
		})
	}
}

// checkMessage fails t unless msg contains each of has and none of lacks.
func checkMessage(t *testing.T, msg []byte, has, lacks []string) {
	t.Helper()
	for _, h := range has {
		if !bytes.Contains(msg, []byte(h)) {
			t.Errorf("message lacks %q:\n%s", h, msg)
		}
	}
	for _, h := range lacks {
		if bytes.Contains(msg, []byte(h)) {
			t.Errorf("message contains %q:\n%.300s", h, msg)
		}
	}
}

// TestMFTFileRelative: a relative QMAILMFTFILE names a file in the
// caller's directory, as qmail-inject reads it, although sendmail works in
// the qmail home.
func TestMFTFileRelative(t *testing.T) {
	root, capdir, env := fakeTree(t)
	caller := t.TempDir()
	os.WriteFile(filepath.Join(caller, "mft"), []byte("list@l.example\n"), 0o644)
	os.WriteFile(filepath.Join(root, "mft"), []byte("other@l.example\n"), 0o644) // the home's own must not be read
	t.Chdir(caller)
	sys := Sys{Chdir: os.Chdir, Exec: func(string, []string, []string) error { return errors.New("no exec in tests") }}
	var errb bytes.Buffer
	env = append(env, "QMAILMFTFILE=mft")
	code := Main([]string{"sendmail", "-t"}, root, env, strings.NewReader("To: list@L.example\n\nb\n"), &bytes.Buffer{}, &errb, sys)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	msg, _ := os.ReadFile(filepath.Join(capdir, "message"))
	if !bytes.Contains(msg, []byte("Mail-Followup-To: list@L.example\n")) {
		t.Errorf("no Mail-Followup-To from the caller's mft:\n%s", msg)
	}
}

func TestMainExecModes(t *testing.T) {
	tests := []struct {
		args    []string
		prog    string
		env     map[string]string
		noFile  bool
		code    int
		errHas  string
		presetP bool
		argv    []string // the arguments the program gets
	}{
		{args: []string{"sendmail", "-bp"}, prog: "qmail-qread"},
		{args: []string{"/usr/bin/mailq"}, prog: "qmail-qread"},
		{args: []string{"sendmail", "-bi"}, prog: "newaliases"},
		{args: []string{"/usr/bin/newaliases", "-n", "-f", "/etc/other"}, prog: "newaliases", argv: []string{"-n", "-f", "/etc/other"}},
		{args: []string{"sendmail", "-bi", "-oA/etc/mail/aliases"}, prog: "newaliases", argv: []string{"-oA/etc/mail/aliases"}},
		{args: []string{"sendmail", "-I", "-oi", "-oAhash:/etc/x"}, prog: "newaliases", argv: []string{"-oAhash:/etc/x"}},
		{args: []string{"sendmail", "-bi", "-oA", "/etc/x", "-oem"}, prog: "newaliases", argv: []string{"-oA/etc/x"}},
		{args: []string{"sendmail", "-bi", "-o", "A", "/etc/x"}, prog: "newaliases", argv: []string{"-oA/etc/x"}},
		// Relative names stay relative: newaliases runs in the caller's
		// directory, not the qmail home.
		{args: []string{"sendmail", "-bi", "-oAaliases.new"}, prog: "newaliases", argv: []string{"-oAaliases.new"}},
		{args: []string{"newaliases", "-f", "aliases.new"}, prog: "newaliases", argv: []string{"-f", "aliases.new"}},
		{args: []string{"newaliases"}, noFile: true, code: 0, errHas: "no newaliases"},
		{args: []string{"sendmail", "-bs"}, prog: "qmail-smtpd", env: map[string]string{"RELAYCLIENT": "", "DATABYTES": "0", "PROTO": "TCP",
			"TCPLOCALIP": "127.0.0.1", "TCPREMOTEIP": "127.0.0.1", "TCPREMOTEINFO": "sendmail-bs", "TCPREMOTEHOST": "localhost", "TCPLOCALHOST": "localhost"}},
		{args: []string{"sendmail", "-bs"}, prog: "qmail-smtpd", presetP: true, env: map[string]string{"PROTO": "SMTP"}},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			root, _, env := fakeTree(t)
			if tc.presetP {
				env = append(env, "PROTO=SMTP")
			}
			if !tc.noFile {
				os.WriteFile(filepath.Join(root, "bin", "newaliases"), []byte("#!/bin/sh\n"), 0o755)
			}
			var gotPath string
			var gotArgv, gotEnv []string
			dir := ""
			sys := Sys{Chdir: func(d string) error { dir = d; return nil },
				Exec: func(p string, argv, env []string) error {
					gotPath, gotArgv, gotEnv = p, argv, env
					return syscall.ENOENT
				}}
			var errb bytes.Buffer
			code := Main(tc.args, root, env, strings.NewReader(""), &bytes.Buffer{}, &errb, sys)
			wantDir := root
			if tc.prog == "newaliases" || tc.noFile {
				wantDir = "" // newaliases is run from the caller's directory
			}
			if dir != wantDir {
				t.Errorf("chdir %q, want %q", dir, wantDir)
			}
			if tc.noFile {
				if code != tc.code || !strings.Contains(errb.String(), tc.errHas) || gotPath != "" {
					t.Errorf("code %d stderr %q exec %q", code, errb.String(), gotPath)
				}
				return
			}
			if gotPath != filepath.Join(root, "bin", tc.prog) {
				t.Fatalf("exec %q, want %s", gotPath, tc.prog)
			}
			if want := append([]string{tc.prog}, tc.argv...); !slices.Equal(gotArgv, want) {
				t.Errorf("argv %q, want %q", gotArgv, want)
			}
			if code != ExUnavailable || !strings.Contains(errb.String(), "unable to run") {
				t.Errorf("failed exec: code %d stderr %q", code, errb.String())
			}
			e := Env(gotEnv)
			for k, v := range tc.env {
				if got, ok := e.Get(k); !ok || got != v {
					t.Errorf("%s=%q (set %v), want %q", k, got, ok, v)
				}
			}
			if tc.presetP {
				if _, ok := e.Get("RELAYCLIENT"); ok {
					t.Errorf("RELAYCLIENT set although PROTO was")
				}
			}
		})
	}
}

// TestNoTree: a hard link or copy of sendmail outside QMAILHOME/bin takes
// a directory that is no qmail tree (no bin/qmail-queue) as its root.
// Every mode says so, queueing too (it said only "unable to exec qq").
func TestNoTree(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  []string
		code int
	}{
		{args: []string{"sendmail", "bob"}, code: ExTempFail},
		{args: []string{"sendmail", "-t"}, code: ExTempFail},
		{args: []string{"sendmail", "-bp"}, code: ExUnavailable},
		{args: []string{"sendmail", "-bs"}, code: ExUnavailable},
		{args: []string{"sendmail", "-bi"}, code: ExUnavailable},
		{args: []string{"/usr/bin/newaliases"}, code: ExUnavailable},
	} {
		root := t.TempDir()
		var errb bytes.Buffer
		sys := Sys{Chdir: func(string) error { return nil },
			Exec: func(string, []string, []string) error { return syscall.ENOENT }}
		code := Main(tc.args, root, []string{"USER=alice"}, strings.NewReader("To: bob\n\nx\n"), &bytes.Buffer{}, &errb, sys)
		want := "sendmail: fatal: " + root + " is no qmail tree (there is no " + filepath.Join(root, "bin", "qmail-queue") + "): "
		if code != tc.code || !strings.HasPrefix(errb.String(), want) || !strings.Contains(errb.String(), "symbolic links (ln -s)") ||
			strings.Count(errb.String(), "\n") != 1 {
			t.Errorf("%q: exit %d, stderr %q", tc.args, code, errb.String())
		}
	}
}

// TestNotInstalled: bin/sendmail of a source checkout after make has
// bin/qmail-queue but no queue/; queueing said only qmail-queue's "qq
// trouble creating files in queue (#4.3.0)". It now says that the tree
// is not installed and where one is, without running qmail-queue. A
// $QMAILQUEUE (a qmail-queue of one's own) is run without the check, as
// before; an installed tree (queue/ there) passes it.
func TestNotInstalled(t *testing.T) {
	checkout := func(t *testing.T) (root, ran string) {
		root = t.TempDir()
		ran = filepath.Join(root, "ran")
		os.MkdirAll(filepath.Join(root, "bin"), 0o755)
		os.WriteFile(filepath.Join(root, "bin", "qmail-queue"), []byte("#!/bin/sh\n: > '"+ran+"'\nexit 53\n"), 0o755)
		return root, ran
	}
	sys := Sys{Chdir: func(string) error { return nil }, Exec: func(string, []string, []string) error { return syscall.ENOENT }}
	for _, args := range [][]string{{"sendmail", "bob"}, {"sendmail", "-t"}, {"/src/hqmail/bin/sendmail", "-i", "bob"}} {
		root, ran := checkout(t)
		var errb bytes.Buffer
		code := Main(args, root, []string{"USER=alice"}, strings.NewReader("To: bob\n\nx\n"), &bytes.Buffer{}, &errb, sys)
		want := "sendmail: fatal: " + root + " is no installed qmail tree (there is no " + filepath.Join(root, "queue") + "): "
		if code != ExTempFail || !strings.HasPrefix(errb.String(), want) || !strings.Contains(errb.String(), "run/bin/sendmail") ||
			!strings.Contains(errb.String(), "qmail-install") || strings.Count(errb.String(), "\n") != 1 {
			t.Errorf("%q: exit %d, stderr %q", args, code, errb.String())
		}
		if _, err := os.Stat(ran); err == nil {
			t.Errorf("%q: qmail-queue was run", args)
		}
	}

	// $QMAILQUEUE set: no check, the message goes to that program.
	root, _ := checkout(t)
	_, capdir, env := fakeTree(t)
	var errb bytes.Buffer
	if code := Main([]string{"sendmail", "bob@example.com"}, root, env, strings.NewReader("Subject: s\n\nb\n"), &bytes.Buffer{}, &errb, sys); code != 0 || errb.Len() != 0 {
		t.Errorf("QMAILQUEUE: exit %d, stderr %q", code, errb.String())
	}
	if envl, _ := os.ReadFile(filepath.Join(capdir, "envelope")); !strings.Contains(string(envl), "Tbob@example.com\x00") {
		t.Errorf("QMAILQUEUE: envelope %q", envl)
	}

	// Installed (queue/ there, even a symbolic link to a spool
	// elsewhere, even one not mounted now): the tree's qmail-queue is
	// run, and what it says is what sendmail says.
	for _, queue := range []string{"directory", "link", "dangling link"} {
		root, ran := checkout(t)
		q := filepath.Join(root, "queue")
		switch queue {
		case "directory":
			os.Mkdir(q, 0o755)
		case "link":
			os.Symlink(t.TempDir(), q)
		default:
			os.Symlink(filepath.Join(root, "spool", "queue"), q)
		}
		errb.Reset()
		code := Main([]string{"sendmail", "bob"}, root, []string{"USER=alice"}, strings.NewReader("x\n"), &bytes.Buffer{}, &errb, sys)
		if _, err := os.Stat(ran); err != nil || code != ExTempFail || strings.Contains(errb.String(), "tree") {
			t.Errorf("queue a %s: ran %v, exit %d, stderr %q", queue, err, code, errb.String())
		}
	}
}

// TestControlReadError: a control file sendmail cannot read is named,
// with the reason; qmail-inject's "read error" said neither, and looked
// like a fault of the input.
func TestControlReadError(t *testing.T) {
	type tcase struct {
		name string
		make func(file string)
		why  string
	}
	cases := []tcase{{"directory", func(f string) { os.Mkdir(f, 0o755) }, "read %s: is a directory"}}
	if os.Geteuid() != 0 {
		// The QA report's case (chmod 600 by root); root reads it anyway.
		cases = append(cases, tcase{"not readable", func(f string) { os.WriteFile(f, []byte("example.org\n"), 0o000) }, "open %s: permission denied"})
	}
	for _, tc := range cases {
		root, capdir, env := fakeTree(t)
		file := filepath.Join(root, "control", "defaultdomain")
		tc.make(file)
		var errb bytes.Buffer
		sys := Sys{Chdir: func(string) error { return nil }, Exec: func(string, []string, []string) error { return errors.New("no exec") }}
		code := Main([]string{"sendmail", "root"}, root, env, strings.NewReader("x\n"), &bytes.Buffer{}, &errb, sys)
		want := "sendmail: fatal: unable to read controls: " + fmt.Sprintf(tc.why, file) + "\n"
		if code != ExTempFail || errb.String() != want {
			t.Errorf("%s: exit %d, stderr %q, want %q", tc.name, code, errb.String(), want)
		}
		if _, err := os.Stat(filepath.Join(capdir, "envelope")); err == nil {
			t.Errorf("%s: queued", tc.name)
		}
	}
}

// TestMessageReadError: a message that cannot be read is said to be the
// message, with the reason; sendmail said "read error" alone, as
// qmail-inject does for a control file, for a directory, a write-only
// descriptor, a reset socket or a terminal that hung up on descriptor 0.
// Exit 75, nothing queued.
func TestMessageReadError(t *testing.T) {
	dir := t.TempDir()
	wo := filepath.Join(dir, "wo")
	if err := os.WriteFile(wo, []byte("Subject: s\n\nb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reset := &os.PathError{Op: "read", Path: "/dev/stdin", Err: syscall.ECONNRESET}
	cases := []struct {
		name string
		open func() (io.Reader, error)
		want string
	}{
		{"directory", func() (io.Reader, error) { return os.Open(dir) }, "is a directory"},
		{"write-only descriptor", func() (io.Reader, error) { return os.OpenFile(wo, os.O_WRONLY, 0) },
			"bad file descriptor (not open for reading)"},
		{"reset in the body", func() (io.Reader, error) {
			return io.MultiReader(strings.NewReader("Subject: s\n\nfirst\n"), iotest.ErrReader(reset)), nil
		}, "connection reset by peer"},
	}
	for _, tc := range cases {
		root, capdir, env := fakeTree(t)
		in, err := tc.open()
		if err != nil {
			t.Fatal(err)
		}
		var errb bytes.Buffer
		sys := Sys{Chdir: func(string) error { return nil }, Exec: func(string, []string, []string) error { return errors.New("no exec") }}
		code := Main([]string{"sendmail", "root"}, root, env, in, &bytes.Buffer{}, &errb, sys)
		if c, ok := in.(io.Closer); ok {
			c.Close()
		}
		want := "sendmail: fatal: unable to read the message: " + tc.want + "\n"
		if code != ExTempFail || errb.String() != want {
			t.Errorf("%s: exit %d, stderr %q, want %d and %q", tc.name, code, errb.String(), ExTempFail, want)
		}
		if b, _ := os.ReadFile(filepath.Join(capdir, "envelope")); len(b) != 0 {
			t.Errorf("%s: queued, envelope %q", tc.name, b)
		}
	}
}

// TestQueueStartFailure: a qmail-queue that cannot be started is named
// with the reason (qmail-inject's "unable to exec qq" alone said nothing
// of which program or why); exit 75, as for any temporary failure.
func TestQueueStartFailure(t *testing.T) {
	root, _, env := fakeTree(t)
	qq := filepath.Join(root, "qq")
	if err := os.Chmod(qq, 0o644); err != nil { // no x bit: even root cannot exec it
		t.Fatal(err)
	}
	var errb bytes.Buffer
	sys := Sys{Chdir: func(string) error { return nil }, Exec: func(string, []string, []string) error { return errors.New("no exec") }}
	code := Main([]string{"sendmail", "root"}, root, env, strings.NewReader("x\n"), &bytes.Buffer{}, &errb, sys)
	want := "sendmail: fatal: unable to exec qq (#4.3.0): unable to start " + qq + ": permission denied\n"
	if code != ExTempFail || errb.String() != want {
		t.Errorf("exit %d, stderr %q, want %d and %q", code, errb.String(), ExTempFail, want)
	}
}

// TestChdirFails: the directory sendmail cannot enter is named. A missing
// /var/qmail, the home of a sendmail outside any directory named bin (a
// copy or bind mount on a host without a tree there), gets the hint a copy
// in some bin/ gets (TestNoTree) after qmail's text; it got qmail's text
// alone, which sent the reader looking for a tree never meant.
func TestChdirFails(t *testing.T) {
	const hint = ". A sendmail outside any directory named bin takes /var/qmail as its home: " +
		"sendmail finds its tree from its own path, QMAILHOME/bin/sendmail or a symbolic link to it; " +
		"a hard link, a copy or a bind mount elsewhere cannot find it. Link sendmail and its names to QMAILHOME/bin " +
		"with symbolic links (ln -s), not hard links or copies\n"
	for _, tc := range []struct {
		root string
		err  syscall.Errno
		want string
	}{
		{"/var/qmail", syscall.ENOENT, "sendmail: fatal: unable to switch to qmail home directory /var/qmail: no such file or directory" + hint},
		// Not missing, or not the fallback: qmail's text alone.
		{"/var/qmail", syscall.EACCES, "sendmail: fatal: unable to switch to qmail home directory /var/qmail: permission denied\n"},
		{"/opt/mail", syscall.ENOENT, "sendmail: fatal: unable to switch to qmail home directory /opt/mail: no such file or directory\n"},
	} {
		for _, args := range [][]string{{"sendmail", "bob"}, {"sendmail", "-bp"}} {
			var errb bytes.Buffer
			sys := Sys{Chdir: func(d string) error { return &fs.PathError{Op: "chdir", Path: d, Err: tc.err} },
				Exec: func(string, []string, []string) error { return errors.New("no exec") }}
			code := Main(args, tc.root, nil, strings.NewReader("x\n"), &bytes.Buffer{}, &errb, sys)
			if code != ExTempFail || errb.String() != tc.want {
				t.Errorf("%s %v %q: exit %d, stderr %q, want %q", tc.root, tc.err, args, code, errb.String(), tc.want)
			}
		}
	}
}

// TestNewaliasesUnreachable: newaliases, run from the caller's directory,
// names a home it cannot look into instead of calling it no tree.
func TestNewaliasesUnreachable(t *testing.T) {
	root := filepath.Join(t.TempDir(), "file")
	os.WriteFile(root, nil, 0o644) // a file: root/bin/newaliases is "not a directory"
	for _, args := range [][]string{{"newaliases"}, {"sendmail", "-bi"}} {
		var errb bytes.Buffer
		sys := Sys{Chdir: func(d string) error { t.Errorf("chdir %q", d); return nil },
			Exec: func(string, []string, []string) error { return errors.New("no exec") }}
		code := Main(args, root, nil, strings.NewReader(""), &bytes.Buffer{}, &errb, sys)
		want := "sendmail: fatal: unable to look for " + root + "/bin/newaliases: not a directory\n"
		if code != ExTempFail || errb.String() != want {
			t.Errorf("%q: exit %d, stderr %q, want %d and %q", args, code, errb.String(), ExTempFail, want)
		}
	}
}

func init() { testutil.ActAsLocker() }

func TestFlush(t *testing.T) {
	root := t.TempDir()
	lockdir := filepath.Join(root, "queue", "lock")
	os.MkdirAll(lockdir, 0o755)
	var errb bytes.Buffer
	if code := Flush(root, &errb); code != ExTempFail || !strings.Contains(errb.String(), "not running") {
		t.Fatalf("no sendmutex: code %d %q", code, errb.String())
	}

	// A bystander whose pid a planted sendmutex names: never signalled,
	// whoever holds the lock.
	bystander := exec.Command("/bin/sleep", "60")
	if err := bystander.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bystander.Process.Kill(); bystander.Wait() })
	mutex := filepath.Join(lockdir, "sendmutex")
	os.WriteFile(mutex, []byte(strconv.Itoa(bystander.Process.Pid)+"\n"), 0o644)

	errb.Reset()
	if code := Flush(root, &errb); code != ExTempFail || !strings.Contains(errb.String(), "not running") {
		t.Fatalf("unlocked sendmutex: code %d %q", code, errb.String())
	}

	// The file locked by someone else (qmailq, who owns queue/lock, in
	// the QA report): the named pid is not the holder, no signal.
	f, err := os.Open(mutex)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if code := Flush(root, &errb); code != ExTempFail || !strings.Contains(errb.String(), "not signalling anyone") {
		t.Fatalf("sendmutex locked by another process than it names: code %d %q", code, errb.String())
	}
	f.Close()
	if err := bystander.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("the bystander was signalled: %v", err)
	}

	// A FIFO there: refused at once, not waited on.
	os.Remove(mutex)
	if err := syscall.Mkfifo(mutex, 0o644); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if code := Flush(root, &errb); code != ExTempFail {
		t.Fatalf("FIFO sendmutex: code %d %q", code, errb.String())
	}
	os.Remove(mutex)

	// qmail-send (a stand-in holding the lock and named in the file):
	// signalled.
	os.WriteFile(mutex, nil, 0o644)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := testutil.StartLocker(t, exe, mutex)
	errb.Reset()
	if code := Flush(root, &errb); code != 0 {
		t.Fatalf("locked sendmutex: code %d %q", code, errb.String())
	}
	if err := child.Wait(); child.ProcessState == nil || child.ProcessState.ExitCode() != 42 {
		t.Errorf("stand-in: %v, want exit 42 (SIGALRM received)", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("-t\x00-i\x00bob")
	f.Add("-FCron\x00-oem\x00-B8BITMIME\x00user")
	f.Add("-f\x00\x00-q30m")
	f.Add("-bs\x00--\x00-x")
	f.Fuzz(func(t *testing.T, s string) {
		args := strings.Split(s, "\x00")
		c, err := Parse("sendmail", args)
		if err != nil {
			return
		}
		for _, v := range []*string{c.Sender, c.Name} {
			if v != nil && strings.ContainsAny(*v, "\r\n\x00") {
				t.Fatalf("accepted %q", *v)
			}
		}
		if len(c.Recipients) > len(args) {
			t.Fatalf("more recipients than arguments")
		}
	})
}

// FuzzSplitRecipients: splitting never panics, never makes up bytes, and
// gives no empty or blank-edged recipient, and none
// with an angle bracket (a bracket left over from a name-addr would be
// queued as part of the address) unless it came out of a quoted string.
func FuzzSplitRecipients(f *testing.F) {
	for _, s := range []string{"a, b", `"x,y"@z, <p,q@r>`, "a (b, c), d", `"\"`, "((", ",,,",
		"Joe <j@x.org> trailing", "<j@x.org", "Joe <j@x.org>>", "J <j@x> <k@y>", `"J <j@x>`, "<> (c)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		total := 0
		rs, err := SplitRecipients([]string{arg})
		if err != nil {
			if rs != nil || !strings.Contains(err.Error(), strconv.Quote(strings.TrimSpace(arg))) && !strings.Contains(err.Error(), strconv.Quote(arg)) {
				t.Fatalf("%q: recipients %q with error %v (which must name the argument)", arg, rs, err)
			}
			return
		}
		for _, r := range rs {
			if r == "" {
				t.Fatalf("empty recipient from %q", arg)
			}
			if trim(r) != r && !strings.Contains(arg, `"`) { // " "@x is a mailbox
				t.Fatalf("recipient %q of %q has blanks at its edges", r, arg)
			}
			if lt, gt, err := brackets(r); !strings.Contains(arg, `"`) && (lt >= 0 || gt >= 0 || err != nil) {
				t.Fatalf("recipient %q of %q has angle brackets (%d %d %v)", r, arg, lt, gt, err)
			}
			total += len(r)
		}
		if total > len(arg) {
			t.Fatalf("%q split into more bytes than it has", arg)
		}
	})
}

// TestAddrSpec: the rule of sendmail(8) ADDRESSES. A name-addr must be
// whole (one <...>, then only comments); a bracketed address followed by
// anything else was queued with the rest glued on ("Joe <j@x.org>trailing"),
// or silently lost an address ("J <j@x> <k@y>" queued only k@y).
func TestAddrSpec(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "bob", want: "bob"},
		{in: " joe@example.org ", want: "joe@example.org"},
		// Only ASCII white space goes, as in qmail and Postfix.
		{in: "\u3000ideo@example.org\u00a0", want: "\u3000ideo@example.org\u00a0"},
		{in: "Joe <j@x.org>", want: "j@x.org"},
		{in: "<j@x.org>", want: "j@x.org"},
		{in: "< j@x.org >", want: "j@x.org"},
		{in: "Joe <j@x.org> (work)", want: "j@x.org"},
		{in: "Joe <j@x.org>(a)\t(b \\) (c))", want: "j@x.org"},
		{in: "<j@x.org> (c)", want: "j@x.org"},
		{in: `"Smith, Bob" <bob@example.com>`, want: "bob@example.com"},
		{in: `"a <b>" <c@x>`, want: "c@x"},
		{in: `Joe (a <comment>) <j@x>`, want: "j@x"},
		{in: `<"a>b"@x>`, want: `a>b@x`},
		{in: "<>", want: ""},
		{in: "<> (c)", want: ""},
		{in: "", want: ""},
		// Not a name-addr: the address itself, its quotes and comments
		// read as sendmail and Postfix read them ("joe smith"@x is the
		// mailbox joe smith; the quotes went into the envelope).
		{in: `"a,b"@example.net`, want: `a,b@example.net`},
		{in: `"joe smith"@x.example`, want: `joe smith@x.example`},
		{in: `Joe <"j.s."@x.example>`, want: `j.s.@x.example`},
		{in: `"a\"b"@x`, want: `a"b@x`},
		{in: "k@example.net (K)", want: "k@example.net"},
		{in: "e3@x.example (joe@home)", want: "e3@x.example"},
		{in: "joe (c)@x.org", want: "joe@x.org"},
		{in: `"a b" @x.org`, want: "a b@x.org"},
		{in: `"a b" (c) @x.org`, want: "a b@x.org"},
		{in: `"joe" . "s"@x.org`, want: "joe.s@x.org"},
		{in: `a b (c)@x`, want: "a b@x"},
		// White space beside @ or . is no part of it either, quote or not.
		{in: "joe @x.example", want: "joe@x.example"},
		{in: " joe @ x.example ", want: "joe@x.example"},
		{in: "joe . smith@x.example", want: "joe.smith@x.example"},
		{in: "joe\t@x.example", want: "joe@x.example"},
		{in: "joe : x@example.org", want: "joe:x@example.org"},
		{in: "joe !x@example.org", want: "joe!x@example.org"},
		{in: "Joe <j@x.example>\v(work)", want: "j@x.example"},
		{in: `"a<b"@x`, want: `a<b@x`},
		{in: "bob@x (see <url>)", want: "bob@x"},
		{in: "Joe <f5@x.example>\n (work)", want: "f5@x.example"},
		// Unbalanced: qmail-inject's rule, as qmail.
		{in: `a"b@x`, want: `a"b@x`},
		{in: "bob(c@x", want: "bob(c@x"},
		// Errors.
		{in: "Joe <j@x.org> trailing", err: "text after the closing '>'"},
		{in: "Joe <j@x.org> ;", err: "text after the closing '>'"},
		{in: `Joe <j@x.org> "q"`, err: "text after the closing '>'"},
		{in: "Joe <j@x.org> <k@y.org>", err: "a second <address>"},
		{in: "Joe <j@x.org>>", err: "'>' without an opening '<'"},
		{in: "Joe <j@x.org> (c) x", err: "text after the closing '>'"},
		{in: "<j@x.org", err: "'<' without a closing '>'"},
		{in: "Joe <j@x.org", err: "'<' without a closing '>'"},
		{in: "j@x.org>", err: "'>' without an opening '<'"},
		{in: "a>b@x", err: "'>' without an opening '<'"},
		{in: "<a<b@x>>", err: "'<' inside <...>"},
		{in: "Joe <j@x.org> (work", err: "'(' without a closing ')'"},
		{in: `"Joe <j@x.org>`, err: `'"' without a closing '"'`},
		{in: `<"j@x.org>`, err: `'"' without a closing '"'`},
	} {
		got, err := AddrSpec(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("AddrSpec(%q) = %q, %v; want error %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("AddrSpec(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestDaemonSender: a caller without USER, LOGNAME or MAILUSER (a systemd
// service) sends as the real uid's user, not qmail-inject's "anonymous";
// any of them set wins.
func TestDaemonSender(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{nil, "Fdaemonuser@mx.example.org\x00"},
		{[]string{"LOGNAME=bob"}, "Fbob@mx.example.org\x00"},
		{[]string{"MAILUSER=carol"}, "Fcarol@mx.example.org\x00"},
		// Set but empty counts as unset (it gave "F@host").
		{[]string{"USER="}, "Fdaemonuser@mx.example.org\x00"},
		{[]string{"USER=", "LOGNAME=bob"}, "Fbob@mx.example.org\x00"},
	} {
		root, capdir, env := fakeTree(t)
		env = append(env[1:], tc.env...) // without USER=alice
		var out, errb bytes.Buffer
		sys := Sys{Chdir: func(string) error { return nil }, Exec: func(string, []string, []string) error { return errors.New("no exec") },
			UserName: func() string { return "daemonuser" }}
		if code := Main([]string{"sendmail", "-t"}, root, env, strings.NewReader("To: root\nSubject: mdadm\n\nx\n"), &out, &errb, sys); code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.env, code, errb.String())
		}
		envl, _ := os.ReadFile(filepath.Join(capdir, "envelope"))
		if !strings.HasPrefix(string(envl), tc.want) {
			t.Errorf("%v: envelope %q, want it to start %q", tc.env, envl, tc.want)
		}
	}
}

// TestCRLFReader: CR LF becomes LF wherever the reads split the input; a
// CR without LF stays, but for one that is the last byte of the input
// (it ended the last line; "last\r" was queued as "last\r\n").
func TestCRLFReader(t *testing.T) {
	split := map[string]func(io.Reader) io.Reader{
		"whole": func(r io.Reader) io.Reader { return r },
		"bytes": iotest.OneByteReader,
		"half":  iotest.HalfReader,
	}
	for in, want := range map[string]string{
		"a\r\nb\r\n":   "a\nb\n",
		"\r\n\r\n":     "\n\n",
		"a\rb\r":       "a\rb\n", // a CR at the very end ends the line
		"a\r\r\nb":     "a\r\nb",
		"\r":           "\n",
		"last\r":       "last\n",
		"x\r\n\ry\r\r": "x\n\ry\r\n",
		"a\rb":         "a\rb",
	} {
		for name, f := range split {
			b, err := io.ReadAll(newCRLFReader(f(strings.NewReader(in))))
			if err != nil || string(b) != want {
				t.Errorf("%s %q: %q %v, want %q", name, in, b, err, want)
			}
		}
	}
}

// TestHelp: sendmail --help prints every option on standard output and
// exits 0 (it was an illegal option); an option error points to it.
func TestHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"sendmail", "--help"}, t.TempDir(), nil, strings.NewReader(""), &out, &errb, Sys{}); code != 0 || errb.Len() != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	for _, opt := range []string{"-t ", "-f sender", "-F name", "-XV", "-bm", "-bs", "-bp", "-bi", "-q", "-oi", "sendmail(8)"} {
		if !strings.Contains(out.String(), opt) {
			t.Errorf("help lacks %q:\n%s", opt, out.String())
		}
	}
	out.Reset()
	if code := Main([]string{"sendmail", "-Y"}, t.TempDir(), nil, strings.NewReader(""), &out, &errb, Sys{}); code != ExUsage ||
		!strings.HasSuffix(errb.String(), "sendmail --help lists every option\n") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}
