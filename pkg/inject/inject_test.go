package inject

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func testRewriter() *Rewriter { return NewRewriter("mx.example.org", "example.org", "example.org") }

// rewriteField runs one header field through the lexer, the address-list
// rewriter and the unparser, as qmail-inject does for To: and friends.
func rewriteField(t *testing.T, field string) (string, []string, bool) {
	t.Helper()
	rw := testRewriter()
	toks, ok := Tokenize(field)
	if !ok {
		return field, nil, false
	}
	var got []string
	out, ok := AddrList(toks, func(a []Token) []Token {
		a = rw.Rewrite(a)
		got = append(got, Unquote(a))
		return a
	})
	if !ok {
		return field, nil, false
	}
	return Unparse(out, LineLen), got, true
}

func TestRewriteField(t *testing.T) {
	tests := []struct {
		in, out string
		recips  []string // in the order qmail reports them (last to first)
		bad     bool
	}{
		{in: "To: bob", out: "To: bob@mx.example.org\n", recips: []string{"bob@mx.example.org"}},
		{in: "To:bob,carol@x", out: "To: bob@mx.example.org, carol@x.example.org\n", recips: []string{"carol@x.example.org", "bob@mx.example.org"}},
		{in: "To: bob carol", out: "To: bob@mx.example.org, carol@mx.example.org\n", recips: []string{"carol@mx.example.org", "bob@mx.example.org"}},
		{in: "To: <>", out: "To: <>\n", recips: []string{""}},
		{in: "To: <@a.example,@b.example:joe@c.example>", out: "To: <joe@c.example>\n", recips: []string{"joe@c.example"}},
		{in: "To: joe@box.", out: "To: joe@box.example.org\n", recips: []string{"joe@box.example.org"}},
		{in: "To: joe@", out: "To: joe@mx.example.org\n", recips: []string{"joe@mx.example.org"}},
		{in: "To: joe@work+", out: "To: joe@work.example.org\n", recips: []string{"joe@work.example.org"}},
		{in: "To: joe@[]", out: "To: joe@[]\n", recips: []string{"joe@[]"}},
		{in: "To: (c) joe", out: "To: joe@mx.example.org (c)\n", recips: []string{"joe@mx.example.org"}},
		{in: "To: Joe Bloggs <joe>", out: "To: Joe Bloggs <joe@mx.example.org>\n", recips: []string{"joe@mx.example.org"}},
		{in: "To: list:;", out: "To: list: ;\n"},
		{in: "To: \"j s\"@x.y", out: "To: \"j s\"@x.y\n", recips: []string{"j s@x.y"}},
		{in: "To:", out: "To:\n"},
		// qmail's parser takes a '<' without its '>' for a byte of the
		// address (recorded case 062); a '>' without its '<', a ':'
		// with no ';' after it and two ';' with no ':' fail, and the
		// field name never becomes part of an address.
		{in: "To: <bob", out: "To: <bob@mx.example.org\n"},
		{in: "To: bob>", bad: true},
		// 8-bit words quoted as qmail quotes them, in a domain too
		// (sendmail writes a domain's UTF-8 words bare instead).
		{in: "To: j\xc3\xb6rg@b\xc3\xbccher.example", out: "To: \"j\xc3\xb6rg\"@\"b\xc3\xbccher\".example\n"},
		{in: "To: a@x.y, bob@example.com>", bad: true},
		{in: "To: Team: bob", bad: true},
		{in: "To: @x:carol", bad: true},
		{in: "To: a;b;", bad: true},
		{in: "To: bob; carol", out: "To: bob@mx.example.org;, carol@mx.example.org\n"},
		{in: "To: Team: bob;", out: "To: Team: bob@mx.example.org;\n"},
		{in: "To: \"bob", bad: true},
		{in: "To: (bob", bad: true},
		{in: "To: ) bob", bad: true},
		{in: "To: a@b.c, d@e.f, g@h.i, j@k.l, m@n.o, p@q.r, s@t.u, v@w.x, y@z.a, bb@cc.dd, ee@ff.gg",
			out: "To: a@b.c, d@e.f, g@h.i, j@k.l, m@n.o, p@q.r, s@t.u, v@w.x, y@z.a, bb@cc.dd,\n  ee@ff.gg\n"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			out, recips, ok := rewriteField(t, tc.in)
			if ok == tc.bad {
				t.Fatalf("ok=%v, want %v (out %q)", ok, !tc.bad, out)
			}
			if tc.bad {
				return
			}
			if out != tc.out {
				t.Errorf("got %q, want %q", out, tc.out)
			}
			if tc.recips != nil && strings.Join(recips, "|") != strings.Join(tc.recips, "|") {
				t.Errorf("recipients %q, want %q", recips, tc.recips)
			}
		})
	}
}

func TestTokenize(t *testing.T) {
	tests := []struct {
		in   string
		want []Token
	}{
		{"a.b@c", []Token{{Kind: Atom, S: "a"}, {Kind: Dot, S: ""}, {Kind: Atom, S: "b"}, {Kind: At, S: ""}, {Kind: Atom, S: "c"}}},
		{`"x\"y"`, []Token{{Kind: Quote, S: `x"y`}}},
		{"(a (b) c)", []Token{{Kind: Comment, S: "a b c"}}},
		{"[1.2.3.4]", []Token{{Kind: Literal, S: "1.2.3.4"}}},
		{"j\xfcrgen", []Token{{Kind: Quote, S: "j\xfcrgen"}}},
		{`a\ b`, []Token{{Kind: Atom, S: "a b"}}},
		{"a)b", []Token{{Kind: Quote, S: "a)b"}}},
		// UTF-8: quoted (as qmail does), marked for Rewrite to write
		// it bare in a domain; other 8-bit bytes stay quoted.
		{"j\xc3\xbcrgen", []Token{{Kind: Quote, S: "j\xc3\xbcrgen", UTF8: true}}},
		{"b\xc3\xbccher)", []Token{{Kind: Quote, S: "b\xc3\xbccher)"}}},
	}
	for _, tc := range tests {
		got, ok := Tokenize(tc.in)
		if !ok {
			t.Errorf("%q: parse failed", tc.in)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("%q: got %v, want %v", tc.in, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%q: token %d = %v, want %v", tc.in, i, got[i], tc.want[i])
			}
		}
	}
}

// wholeFields is a readHeader sink that wants every field whole.
type wholeFields [][]byte

func (w *wholeFields) begin([]byte) bool { return true }
func (w *wholeFields) cont([]byte)       { panic("cont on a field wanted whole") }
func (w *wholeFields) field(f []byte)    { *w = append(*w, bytes.Clone(f)) }

// splitHeader is readHeader on a whole message, with the body read out.
func splitHeader(msg []byte) (fields [][]byte, body []byte) {
	var all wholeFields
	br, err := readHeader(bufio.NewReader(bytes.NewReader(msg)), &all)
	fields = all
	if err != nil {
		panic(err) // a bytes.Reader does not fail
	}
	body, err = io.ReadAll(br)
	if err != nil {
		panic(err)
	}
	return fields, body
}

func TestSplitHeader(t *testing.T) {
	tests := []struct {
		in     string
		fields []string
		body   string
	}{
		{"", nil, ""},
		{"\nbody", nil, "\nbody\n"},
		{"A: 1\n B\nC: 2\n\nx\n", []string{"A: 1\n B\n", "C: 2\n"}, "\nx\n"},
		{"From x y\nA: 1", []string{"MBOX-Line: From x y\n", "A: 1\n"}, ""},
		{"A: 1\nnot a field\nrest\n", []string{"A: 1\n"}, "\nnot a field\nrest\n"},
		{"A: 1\r\n\r\nbody\r\n", []string{"A: 1\r\n"}, "\n\r\nbody\r\n"},
		{" lead: x\n", nil, "\n lead: x\n"},
		{"Name : v\n", []string{"Name : v\n"}, ""},
	}
	for _, tc := range tests {
		f, b := splitHeader([]byte(tc.in))
		var fs []string
		for _, x := range f {
			fs = append(fs, string(x))
		}
		if strings.Join(fs, "|") != strings.Join(tc.fields, "|") || string(b) != tc.body {
			t.Errorf("%q: fields %q body %q, want %q %q", tc.in, fs, b, tc.fields, tc.body)
		}
	}
}

func TestMainOptions(t *testing.T) {
	tests := []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"qmail-inject", "-x"}, 100, "qmail-inject: illegal option -- x\n"},
		{[]string{"/some/bin/qmail-inject", "-nf"}, 100, "qmail-inject: option requires an argument -- f\n"},
		{[]string{"qmail-inject", "-f", "a@b(c"}, 100, "qmail-inject: fatal: unable to parse address: a@b(c\n"},
		{[]string{"qmail-inject", "-n", "--", "-x"}, 0, ""},
		// Any argument starting with "--" ends the options and is
		// skipped, as qmail's getopt does (it used to be an illegal
		// option '-').
		{[]string{"qmail-inject", "-n", "--foo", "-x"}, 0, ""},
		{[]string{"qmail-inject", "--help"}, 0, ""}, // the usage on stdout
		{[]string{"qmail-inject", "-nfjoe", "bob"}, 0, ""},
	}
	root := t.TempDir()
	for _, tc := range tests {
		var out, errb bytes.Buffer
		code := Main(tc.args, root, []string{"USER=u"}, strings.NewReader("Subject: x\n"), &out, &errb)
		if code != tc.code || errb.String() != tc.stderr {
			t.Errorf("%q: code %d stderr %q, want %d %q", tc.args, code, errb.String(), tc.code, tc.stderr)
		}
	}
}

func TestPrintJob(t *testing.T) {
	var out, errb bytes.Buffer
	j := &Job{Root: t.TempDir(), Env: []string{"USER=u", "QMAILNAME=U (x) \"y\"", "QMAILINJECT=c"},
		Options: Options{Print: true, Args: []string{"bob"}},
		Stdin:   strings.NewReader("Subject: s\n\nbody"), Stdout: &out, Stderr: &errb,
		Now: time.Unix(0, 0), Pid: 42}
	if code := j.Run(); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	want := "Return-Path: <u@defaulthost.defaultdomain>\n" +
		"Date: 1 Jan 1970 00:00:00 -0000\n" +
		"Message-ID: <19700101000000.42.qmail@idhost>\n" +
		"From: u@defaulthost.defaultdomain (U \\(x\\) \\\"y\\\")\n" +
		"Cc: recipient list not shown: ;\n" +
		"Subject: s\n\nbody\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func FuzzRewrite(f *testing.F) {
	for _, s := range []string{"To: bob", "From: \"a b\" <c@d> (e)", "To: g: a, b;, <@r:x@y>", "Cc: (", "To: a.b.@c+"} {
		f.Add(s)
	}
	rw := testRewriter()
	f.Fuzz(func(t *testing.T, s string) {
		toks, ok := Tokenize(s)
		if !ok {
			return
		}
		out, ok := AddrList(toks, rw.Rewrite)
		if !ok {
			return
		}
		u := Unparse(out, LineLen)
		if !strings.HasSuffix(u, "\n") {
			t.Fatalf("unparse %q does not end in a newline", u)
		}
		// What qmail writes, it can read again.
		if _, ok := Tokenize(u); !ok {
			t.Fatalf("unparse %q of %q does not tokenize", u, s)
		}
	})
}

func FuzzSplitHeader(f *testing.F) {
	for _, s := range []string{"A: b\n\nc", "From x\n d\n", "x", "\r\n", "To: a\n\tb\nnope\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fields, body := splitHeader(b)
		n := 0
		for _, x := range fields {
			if len(x) == 0 || x[len(x)-1] != '\n' {
				t.Fatalf("field %q lacks its newline", x)
			}
			n += len(x)
		}
		if len(body) > 0 && body[len(body)-1] != '\n' {
			t.Fatalf("body %q lacks its final newline", body)
		}
		if n+len(body) < len(b) {
			t.Fatalf("lost bytes: %d+%d < %d", n, len(body), len(b))
		}
	})
}

func TestPrintCases(t *testing.T) {
	dir := t.TempDir()
	lists := dir + "/lists"
	if err := os.WriteFile(lists, []byte("# lists\nList@Lists.Example.org\nliste@b\xc3\xbccher.example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  []string
		args []string
		in   string
		want string // the output after the Return-Path, Date and Message-ID lines
		rp   string // the Return-Path line
	}{
		{name: "mft added, last field first",
			env:  []string{"QMAILMFTFILE=" + lists},
			in:   "From: a@example.org\nTo: list@lists.example.org, \"b c\"@example.net\nCc: d\n\nx\n",
			want: "Mail-Followup-To: d@defaulthost.defaultdomain,\n  list@lists.example.org,\n  \"b c\"@example.net\nFrom: a@example.org\nTo: list@lists.example.org, \"b c\"@example.net\nCc: d@defaulthost.defaultdomain\n\nx\n"},
		// A list named by its IDN in either form; a UTF-8 local part
		// quoted as in To and Cc (and as qmail writes it).
		{name: "mft with UTF-8",
			env:  []string{"QMAILMFTFILE=" + lists},
			in:   "From: a@example.org\nTo: Liste <liste@xn--bcher-kva.example>\nCc: Jos\xc3\xa9 <jos\xc3\xa9@example.test>, \"b c\"@example.net\n\nx\n",
			want: "Mail-Followup-To: \"jos\xc3\xa9\"@example.test,\n  \"b c\"@example.net,\n  liste@xn--bcher-kva.example\nFrom: a@example.org\nTo: Liste <liste@xn--bcher-kva.example>\nCc: \"Jos\xc3\xa9\" <\"jos\xc3\xa9\"@example.test>, \"b c\"@example.net\n\nx\n"},
		{name: "no mft without a list address",
			env:  []string{"QMAILMFTFILE=" + lists},
			in:   "From: a@example.org\nTo: other@lists.example.org\n\nx\n",
			want: "From: a@example.org\nTo: other@lists.example.org\n\nx\n"},
		{name: "existing mft kept",
			env:  []string{"QMAILMFTFILE=" + lists},
			in:   "From: a@example.org\nTo: list@lists.example.org\nMail-Followup-To: me@x.y\n\nx\n",
			want: "From: a@example.org\nTo: list@lists.example.org\nMail-Followup-To: me@x.y\n\nx\n"},
		{name: "a domain literal as MAILHOST stays one in From",
			env:  []string{"QMAILUSER=bob", "QMAILHOST=[192.0.2.1]"},
			in:   "To: b@example.org\n\nx\n",
			want: "From: bob@[192.0.2.1]\nTo: b@example.org\n\nx\n",
			rp:   "Return-Path: <bob@[192.0.2.1]>\n"},
		{name: "unparsable recipient fields unchanged",
			in:   "From: a@example.org\nTo: (bob\nCc: x>\nBcc: \"y\n\nx\n",
			want: "From: a@example.org\nTo: (bob\nCc: x>\n\nx\n"},
		{name: "an unparsable From deleted by QMAILINJECT f",
			env:  []string{"QMAILINJECT=f"},
			in:   "From: \"open <a@b>\nTo: b@example.org\n\nx\n",
			want: "From: u@defaulthost.defaultdomain\nTo: b@example.org\n\nx\n"},
		{name: "return-path with r",
			env:  []string{"QMAILINJECT=r"},
			in:   "Return-Path: <bounce@example.org>\nFrom: a@example.org\nTo: b@example.org\n\n",
			want: "From: a@example.org\nTo: b@example.org\n\n",
			rp:   "Return-Path: <\"bounce@example.org-\"@[]>\n"},
		{name: "f overrides return-path",
			args: []string{"-f", "joe"},
			in:   "Return-Path: <bounce@example.org>\nFrom: a@example.org\nTo: b@example.org\n",
			want: "From: a@example.org\nTo: b@example.org\n",
			rp:   "Return-Path: <joe@defaulthost.defaultdomain>\n"},
		{name: "f empty is the null sender",
			args: []string{"-f", ""},
			in:   "From: a@example.org\nTo: b@example.org\n",
			want: "From: a@example.org\nTo: b@example.org\n",
			rp:   "Return-Path: <>\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			argv := append([]string{"qmail-inject", "-n"}, tc.args...)
			code := Main(argv, t.TempDir(), append([]string{"USER=u"}, tc.env...), strings.NewReader(tc.in), &out, &errb)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			lines := strings.SplitAfterN(out.String(), "\n", 4)
			if len(lines) < 4 {
				t.Fatalf("short output %q", out.String())
			}
			if tc.rp != "" && lines[0] != tc.rp {
				t.Errorf("got %q, want %q", lines[0], tc.rp)
			}
			if lines[3] != tc.want {
				t.Errorf("got\n%s\nwant\n%s", lines[3], tc.want)
			}
		})
	}
}

// captureQueue makes a tree whose $QMAILQUEUE stores the message and the
// envelope in dir and, once it has read the message's first byte, makes
// dir/started.
func captureQueue(t *testing.T) (root, dir string, env []string) {
	root = t.TempDir()
	dir = filepath.Join(root, "cap")
	os.MkdirAll(dir, 0o755)
	qq := filepath.Join(root, "qq")
	os.WriteFile(qq, []byte("#!/bin/sh\nd='"+dir+"'\n"+
		"/bin/dd bs=1 count=1 of=\"$d/message\" 2>/dev/null\n: > \"$d/started\"\n"+
		"/bin/cat >> \"$d/message\"\n/bin/cat <&1 > \"$d/envelope\"\n"), 0o755)
	return root, dir, []string{"USER=u", "QMAILQUEUE=" + qq}
}

// stdin hands out its parts one Read at a time; before each later part
// it runs wait, whose error it returns instead of the part.
type stdin struct {
	parts []string
	wait  func() error
	n     int
}

func (s *stdin) Read(p []byte) (int, error) {
	if s.n >= len(s.parts) {
		return 0, io.EOF
	}
	if s.n > 0 && s.wait != nil {
		if err := s.wait(); err != nil {
			return 0, err
		}
	}
	n := copy(p, s.parts[s.n])
	s.n++
	return n, nil
}

// The body goes to qmail-queue as it is read: the queue has the message's
// start while the input has not ended, so that a message is never held
// whole in memory (qmail-inject streams it too).
func TestBodyStreams(t *testing.T) {
	root, dir, env := captureQueue(t)
	in := &stdin{parts: []string{"Subject: big\n\nfirst part\n", "second part\n"}, wait: func() error {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := os.Stat(filepath.Join(dir, "started")); err == nil {
				return nil
			}
			time.Sleep(10 * time.Millisecond)
		}
		return errors.New("the queue had nothing before the input ended")
	}}
	var errb bytes.Buffer
	j := &Job{Root: root, Env: env, Options: Options{Args: []string{"bob@example.org"}},
		Stdin: in, Stderr: &errb, Now: time.Unix(0, 0), Pid: 42}
	if code := j.Run(); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	msg, _ := os.ReadFile(filepath.Join(dir, "message"))
	if !strings.HasSuffix(string(msg), "Subject: big\n\nfirst part\nsecond part\n") {
		t.Errorf("queued message:\n%s", msg)
	}
}

// A message whose input fails part way is not queued: qmail-queue gets no
// envelope, and qmail-inject says it could not read the message.
func TestReadErrorQueuesNothing(t *testing.T) {
	root, dir, env := captureQueue(t)
	in := &stdin{parts: []string{"Subject: s\n\nfirst\n", "never"}, wait: func() error { return errors.New("EIO") }}
	var errb bytes.Buffer
	j := &Job{Root: root, Env: env, Options: Options{Args: []string{"bob@example.org"}},
		Stdin: in, Stderr: &errb, Now: time.Unix(0, 0), Pid: 42}
	if code := j.Run(); code != 111 || errb.String() != "qmail-inject: fatal: read error: EIO\n" {
		t.Errorf("exit %d, %q", code, errb.String())
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "envelope")); len(b) != 0 {
		t.Errorf("envelope %q, want none", b)
	}
}

// TestInputErrorReason: a message that cannot be read is "read error"
// with the reason, in qmail's words (Text) and in Go's (Err, for
// sendmail), whether the header or the body fails, with -n or without.
// qmail-inject said "read error" alone, as for a control file, for a
// directory, a write-only descriptor, a reset socket or a terminal that
// hung up on descriptor 0.
func TestInputErrorReason(t *testing.T) {
	dir := t.TempDir()
	wo := filepath.Join(dir, "wo")
	os.WriteFile(wo, []byte("Subject: s\n\nb\n"), 0o644)
	cases := []struct {
		name     string
		open     func() (io.Reader, error)
		text     string
		err      string
		print    bool
		bodyPart bool
	}{
		{name: "directory", open: func() (io.Reader, error) { return os.Open(dir) },
			text: "read error: is a directory", err: "unable to read the message: is a directory"},
		{name: "write-only descriptor", open: func() (io.Reader, error) { return os.OpenFile(wo, os.O_WRONLY, 0) },
			text: "read error: file descriptor not open for reading", err: "unable to read the message: bad file descriptor (not open for reading)"},
		{name: "reset in the body", open: func() (io.Reader, error) {
			return &stdin{parts: []string{"Subject: s\n\nfirst\n", "x"}, wait: func() error {
				return &os.PathError{Op: "read", Path: "/dev/stdin", Err: syscall.ECONNRESET}
			}}, nil
		}, text: "read error: connection reset", err: "unable to read the message: connection reset by peer", bodyPart: true},
		{name: "hangup in the header, -n", open: func() (io.Reader, error) {
			return &stdin{parts: []string{"Subject: s\n", "x"}, wait: func() error {
				return &os.PathError{Op: "read", Path: "/dev/stdin", Err: syscall.EIO}
			}}, nil
		}, text: "read error: input/output error", err: "unable to read the message: input/output error", print: true},
		{name: "hangup in the body, -n", open: func() (io.Reader, error) {
			return &stdin{parts: []string{"Subject: s\n\nfirst\n", "x"}, wait: func() error {
				return &os.PathError{Op: "read", Path: "/dev/stdin", Err: syscall.EIO}
			}}, nil
		}, text: "read error: input/output error", err: "unable to read the message: input/output error", print: true, bodyPart: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root, qdir, env := captureQueue(t)
			in, err := tc.open()
			if err != nil {
				t.Fatal(err)
			}
			if c, ok := in.(io.Closer); ok {
				defer c.Close()
			}
			var errb bytes.Buffer
			j := &Job{Root: root, Env: env, Options: Options{Print: tc.print, Args: []string{"bob@example.org"}},
				Stdin: in, Stdout: io.Discard, Stderr: &errb, Now: time.Unix(0, 0), Pid: 42}
			e := j.Exec()
			if e == nil || e.Code != 111 || e.Queue || e.Text != tc.text {
				t.Fatalf("Exec: %+v, want 111 and %q", e, tc.text)
			}
			if e.Err == nil || e.Err.Error() != tc.err {
				t.Errorf("Err %v, want %q", e.Err, tc.err)
			}
			if b, _ := os.ReadFile(filepath.Join(qdir, "envelope")); len(b) != 0 {
				t.Errorf("envelope %q, want none", b)
			}
		})
	}
}

// An empty argument is no recipient: qmail-inject queues the message for
// the other arguments (here none, so for nobody, as qmail does), sendmail
// refuses a message with no recipients. It used to be an empty recipient,
// which local delivery reported as a success and nobody received.
func TestEmptyArgument(t *testing.T) {
	for _, need := range []bool{false, true} {
		root, dir, env := captureQueue(t)
		var errb bytes.Buffer
		j := &Job{Root: root, Env: env, Options: Options{Args: []string{""}}, NeedRecipients: need,
			Stdin: strings.NewReader("Subject: s\n\nb\n"), Stderr: &errb, Now: time.Unix(0, 0), Pid: 42}
		code := j.Run()
		envelope, _ := os.ReadFile(filepath.Join(dir, "envelope"))
		if need {
			if code != 100 || !strings.Contains(errb.String(), ErrNoRecipients) || len(envelope) != 0 {
				t.Errorf("sendmail '': exit %d, %q, envelope %q", code, errb.String(), envelope)
			}
			continue
		}
		if code != 0 || string(envelope) != "Fu@defaulthost.defaultdomain\x00\x00" {
			t.Errorf("qmail-inject '': exit %d, %q, envelope %q", code, errb.String(), envelope)
		}
	}
}

// TestHeaderAllocation checks what a big header costs: qmail-inject must
// hold the header (the fields it adds come first), but it should hold it
// about once. The header read, the fields kept and the output each used to
// be a copy of their own, and a field of many addresses cost ten times its
// size in tokens (24x in all for this header; about 6x now, nearly all of
// it the To field's tokens: the other fields are copied once, line by
// line, as they are read). The bound is on
// bytes allocated, which does not depend on the machine or the garbage
// collector's timing.
func TestHeaderAllocation(t *testing.T) {
	var in bytes.Buffer
	for i := range 100000 {
		fmt.Fprintf(&in, "X-Field-%d: some value %d\n", i, i)
	}
	in.WriteString("To: ")
	for i := range 20000 {
		fmt.Fprintf(&in, "user%d@example%d.org,\n ", i, i%100)
	}
	in.WriteString("last@example.org\n\nbody\n")
	size := in.Len()
	j := &Job{Root: t.TempDir(), Env: []string{"USER=u"},
		Options: Options{Print: true},
		Stdin:   &in, Stdout: io.Discard, Stderr: io.Discard}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if code := j.Run(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	runtime.ReadMemStats(&after)
	got := after.TotalAlloc - before.TotalAlloc
	t.Logf("header of %d bytes: %d bytes allocated (%.1fx)", size, got, float64(got)/float64(size))
	if limit := uint64(size) * 8; got > limit {
		t.Errorf("a header of %d bytes allocated %d bytes, more than %d", size, got, limit)
	}
}

// A CR, LF or NUL in an environment value qmail-inject writes into the
// header or the envelope sender is refused, as sendmail refuses it in -F
// and -f: a name "Joe\nX-Evil: yes" gave the message a field of its own,
// a user "joe\r\nRCPT TO:<x@evil.example>" an envelope sender with CR LF.
// Only the value used is looked at (USER does not count when QMAILUSER is
// set).
func TestEnvLineEndsRefused(t *testing.T) {
	vars := []string{"QMAILNAME", "MAILNAME", "NAME", "QMAILUSER", "MAILUSER", "USER", "LOGNAME",
		"QMAILHOST", "MAILHOST", "QMAILSUSER", "QMAILSHOST", "QMAILIDHOST"}
	bads := []string{"Joe\nX-Evil: yes", "joe\r\nRCPT TO:<x@evil.example>", "joe\rx", "joe\x00x", "\n"}
	for _, v := range vars {
		for _, bad := range bads {
			for _, print := range []bool{true, false} {
				root, dir, env := captureQueue(t)
				env = append(env[1:], v+"="+bad) // without USER=u, which would hide LOGNAME
				var out, errb bytes.Buffer
				j := &Job{Root: root, Env: env, Options: Options{Print: print, Args: []string{"root@localhost"}},
					Stdin: strings.NewReader("Subject: t\n\nb\n"), Stdout: &out, Stderr: &errb,
					Now: time.Unix(0, 0), Pid: 42}
				code := j.Run()
				want := "qmail-inject: fatal: CR, LF or NUL in $" + v + " (header injection refused)\n"
				if code != 100 || errb.String() != want || out.Len() != 0 {
					t.Errorf("%s=%q print=%v: exit %d stderr %q stdout %q, want 100 %q",
						v, bad, print, code, errb.String(), out.String(), want)
				}
				if _, err := os.Stat(filepath.Join(dir, "envelope")); err == nil {
					t.Errorf("%s=%q: the message was queued", v, bad)
				}
			}
		}
	}

	// sendmail runs the job in process (Exec): the same refusal, as a
	// permanent failure that is not the queue's.
	j := &Job{Root: t.TempDir(), Env: []string{"USER=u", "MAILNAME=Joe\nX-Evil: yes"}, Name: "sendmail",
		Options: Options{Print: true, Args: []string{"bob"}}, Stdin: strings.NewReader("x\n"),
		Stdout: io.Discard, Stderr: io.Discard}
	if e := j.Exec(); e == nil || e.Code != 100 || e.Queue || e.Text != "CR, LF or NUL in $MAILNAME (header injection refused)" {
		t.Errorf("Exec: %+v", e)
	}

	// A value not used (a later one of its group) is not looked at, and
	// other control bytes are left as qmail leaves them.
	for _, env := range [][]string{
		{"QMAILUSER=u", "USER=joe\nX-Evil: yes"},
		{"USER=u", "QMAILNAME=Joe", "NAME=Joe\nX-Evil: yes"},
		{"USER=u", "QMAILHOST=h.example", "MAILHOST=h\n"},
		{"USER=u", "NAME=Joe\tBloggs"},
	} {
		var out, errb bytes.Buffer
		j := &Job{Root: t.TempDir(), Env: env, Options: Options{Print: true, Args: []string{"bob"}},
			Stdin: strings.NewReader("Subject: t\n\nb\n"), Stdout: &out, Stderr: &errb,
			Now: time.Unix(0, 0), Pid: 42}
		if code := j.Run(); code != 0 || strings.Contains(out.String(), "X-Evil") {
			t.Errorf("%q: exit %d %q\n%s", env, code, errb.String(), out.String())
		}
	}
}

// A control file or the QMAILMFTFILE file that cannot be read: qmail-inject
// prints qmail's "read error" and nothing more (qmail-inject(8)), while
// the Error says which file and why, for sendmail to print. Input that
// cannot be read says why in both (TestInputErrorReason).
func TestUnreadableFileDetail(t *testing.T) {
	type tcase struct {
		name  string
		setup func(root string) (env []string, file string)
		want  string // the start of Err's text; "" for no Err
	}
	cases := []tcase{
		{name: "control file is a directory", setup: func(root string) ([]string, string) {
			f := filepath.Join(root, "control", "defaultdomain")
			os.MkdirAll(f, 0o755)
			return nil, f
		}, want: "unable to read controls: "},
		{name: "control/me is a directory", setup: func(root string) ([]string, string) {
			f := filepath.Join(root, "control", "me")
			os.MkdirAll(f, 0o755)
			return nil, f
		}, want: "unable to read controls: "},
		{name: "QMAILMFTFILE is a directory", setup: func(root string) ([]string, string) {
			f := filepath.Join(root, "lists")
			os.MkdirAll(f, 0o755)
			return []string{"QMAILMFTFILE=" + f}, f
		}, want: "unable to read $QMAILMFTFILE: "},
	}
	if os.Geteuid() != 0 {
		// The QA report's case; root reads a mode 0 file all the same.
		cases = append(cases, tcase{name: "control file not readable", setup: func(root string) ([]string, string) {
			f := filepath.Join(root, "control", "defaultdomain")
			os.MkdirAll(filepath.Dir(f), 0o755)
			os.WriteFile(f, []byte("example.org\n"), 0o000)
			return nil, f
		}, want: "unable to read controls: "})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			extra, file := tc.setup(root)
			env := append([]string{"USER=u"}, extra...)
			j := &Job{Root: root, Env: env, Options: Options{Print: true, Args: []string{"bob"}},
				Stdin: strings.NewReader("Subject: s\n\nb\n"), Stdout: io.Discard, Stderr: io.Discard}
			e := j.Exec()
			if e == nil || e.Code != 111 || e.Text != "read error" || e.Queue {
				t.Fatalf("Exec: %+v", e)
			}
			if e.Err == nil || !strings.HasPrefix(e.Err.Error(), tc.want) || !strings.Contains(e.Err.Error(), file+": ") {
				t.Errorf("Err %v, want %q naming %s", e.Err, tc.want, file)
			}

			// qmail-inject's own text is qmail's, unchanged.
			var errb bytes.Buffer
			code := Main([]string{"qmail-inject", "-n", "bob"}, root, env, strings.NewReader("Subject: s\n\nb\n"), io.Discard, &errb)
			if code != 111 || errb.String() != "qmail-inject: fatal: read error\n" {
				t.Errorf("qmail-inject: exit %d, stderr %q", code, errb.String())
			}
		})
	}
}

// TestUnparsableSenderField: a sender-type field (From, Sender, Reply-To,
// Return-Path, ...) that qmail's parser cannot read ends qmail-inject:
// "unable to parse this line:" and the field, exit 100, nothing queued
// or printed (spec: a parse error in a sender-type field is fatal). It
// used to be kept as written, taken from recorded case 062, whose
// "<alice@example.org" is no parse error at all.
func TestUnparsableSenderField(t *testing.T) {
	for _, field := range []string{
		"From: \"open <a@b>\n",
		"Reply-To: (a\n",
		"Sender: a@b>\n",
		"Return-Path: x: <a@b>\n",
		"Resent-From: a,\n  b>\n",
	} {
		var out, errb bytes.Buffer
		code := Main([]string{"qmail-inject", "-n"}, t.TempDir(), []string{"USER=u"},
			strings.NewReader("To: b@example.org\n"+field+"Subject: s\n\nx\n"), &out, &errb)
		want := "qmail-inject: fatal: unable to parse this line:\n" + field
		if code != 100 || errb.String() != want || out.Len() != 0 {
			t.Errorf("%q: exit %d, stderr %q, stdout %q; want 100, %q, nothing", field, code, errb.String(), out.String(), want)
		}
	}
}
