package inject

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The ideographic and fullwidth full stops (U+3002, U+FF0E, U+FF61) are
// dots to the rest of hqmail (pkg/idna: DNS, the route tables,
// rcpthosts/locals, the hold flags), so Rewrite counts them as dots too: a
// domain with one is not dotless (no defaultdomain), and one trailing stop
// is dropped as a trailing '.' is. The characters are kept as written.
// Before, x@bücher。test became x@bücher。test.example.org and a trailing
// stop stayed.
func TestRewriteFullStops(t *testing.T) {
	tests := []struct {
		in          string
		plain, bare string // Unquote of Rewrite, without and with BareUTF8Domain
	}{
		{"x@bücher\u3002test", "x@bücher\u3002test", ""},
		{"x@bücher\uFF0Etest", "x@bücher\uFF0Etest", ""},
		{"x@bücher\uFF61test", "x@bücher\uFF61test", ""},
		{"x@a\u3002b", "x@a\u3002b", ""},
		{"x@\"a\u3002b\"", "x@a\u3002b", ""}, // quoted by the user: the envelope reads a。b all the same
		// One trailing stop goes, as one trailing '.' does.
		{"x@bücher.test\u3002", "x@bücher.test", ""},
		{"x@bücher\u3002test\uFF61", "x@bücher\u3002test", ""},
		{"x@bücher\u3002", "x@bücher.example.org", ""},
		{"x@bücher.test\u3002\u3002", "x@bücher.test\u3002", ""},
		{"x@a.b.\u3002", "x@a.b.", ""},
		{"x@\u3002", "x@mx.example.org", ""},
		{"x@box\u3002", "x@box.example.org", ""},
		// The trailing-'@' rule runs after the trailing-dot one, as in qmail.
		{"x@bücher\u3002test@\u3002", "x@bücher\u3002test", ""},
		// The plus rule sees the host without its trailing stop. A word
		// quoted only for its 8-bit bytes is an atom again when the stop
		// was the only one; an atom loses its '+' (sendmail writes the
		// domain's UTF-8 words bare; qmail-inject keeps them quoted).
		{"x@work+\u3002", "x@work.example.org", ""},
		{"x@wörk+\u3002", "x@wörk+.example.org", "x@wörk.example.org"},
		// A stop in the local part, or in a comment, is no dot of the domain.
		{"b\u3002b@box", "b\u3002b@box.example.org", ""},
		{"bob\u3002", "bob\u3002@mx.example.org", ""},
		{"x@box (a\u3002b)", "x@box.example.org", ""}, // a comment of a route-addr
		// ASCII, as qmail: a quoted dot is no Dot token.
		{"x@\"a.b\"", "x@a.b.example.org", ""},
		{"x@box.", "x@box.example.org", ""},
	}
	for _, tc := range tests {
		if tc.bare == "" {
			tc.bare = tc.plain
		}
		for _, bare := range []bool{false, true} {
			want := tc.plain
			if bare {
				want = tc.bare
			}
			toks, ok := Tokenize(tc.in)
			if !ok {
				t.Fatalf("%q does not tokenize", tc.in)
			}
			rw := testRewriter()
			rw.BareUTF8Domain = bare
			if got := Unquote(rw.Rewrite(toks)); got != want {
				t.Errorf("%q (bare %v): got %q, want %q", tc.in, bare, got, want)
			}
		}
	}

	// In a header field (qmail-inject quotes 8-bit words): a word left
	// without 8-bit bytes is written bare again.
	for _, tc := range []struct{ in, out string }{
		{"To: x@box\u3002", "To: x@box.example.org\n"},
		{"To: x@bücher\u3002test, <y@bücher.test\u3002>", "To: x@\"bücher\u3002test\", <y@\"bücher\".test>\n"},
	} {
		if out, _, ok := rewriteField(t, tc.in); !ok || out != tc.out {
			t.Errorf("%q: got %q, want %q", tc.in, out, tc.out)
		}
	}
	// What is written reads back as the same addresses (FuzzUnparseStable).
	plain, bare := testRewriter(), testRewriter()
	bare.BareUTF8Domain = true
	for _, s := range []string{"To: x@box\u3002, <y@b\u3002c\uFF0E>", "To: x@\"a)\u3002\"", "To: x@a\u3002@\u3002", "To: x@ab+\u3002 (c)"} {
		roundTrip(t, plain, s)
		roundTrip(t, bare, s)
	}
	// An escaped special keeps the word quoted when its stop goes. (Not
	// for sendmail: BareDomainUTF8 writes a\,bü bare, stop or none.)
	for _, s := range []string{"To: x@a\\,b\u3002", "To: x@a\\ b\u3002, y@\u3002"} {
		roundTrip(t, plain, s)
	}
	if out, _, ok := rewriteField(t, "To: x@a\\,b\u3002"); !ok || out != "To: x@\"a,b\".example.org\n" {
		t.Errorf("escaped comma: got %q", out)
	}

	// A defaulthost with a stop gets no defaultdomain either.
	rw := NewRewriter("mx\u3002example", "example.org", "example.org")
	toks, _ := Tokenize("bob")
	if got := Unquote(rw.Rewrite(toks)); got != "bob@mx\u3002example" {
		t.Errorf("defaulthost mx。example: got %q", got)
	}
}

// The QA case, through the Job sendmail runs (and qmail-inject's Main):
// with control/defaultdomain test.example, sendmail -f s@z.test
// 'x@bücher。test' queued x@bücher。test.test.example.
func TestJobFullStops(t *testing.T) {
	for _, bare := range []bool{true, false} {
		root, dir, env := captureQueue(t)
		os.MkdirAll(filepath.Join(root, "control"), 0o755)
		if err := os.WriteFile(filepath.Join(root, "control", "defaultdomain"), []byte("test.example\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		var errb bytes.Buffer
		sender := "s@z\uFF0Etest\u3002"
		j := &Job{Root: root, Env: env, Name: "sendmail", BareUTF8Domain: bare,
			Options: Options{Sender: &sender, Args: []string{"x@bücher\u3002test", "y@h\uFF61example\u3002", "z@box"}},
			Stdin:   strings.NewReader("Subject: s\n\nb\n"), Stderr: &errb, Now: time.Unix(0, 0), Pid: 42}
		if e := j.Exec(); e != nil {
			t.Fatalf("bare %v: %+v: %s", bare, e, errb.String())
		}
		envl, err := os.ReadFile(filepath.Join(dir, "envelope"))
		if err != nil {
			t.Fatal(err)
		}
		want := "Fs@z\uFF0Etest\x00Tx@bücher\u3002test\x00Ty@h\uFF61example\x00Tz@box.test.example\x00\x00"
		if string(envl) != want {
			t.Errorf("bare %v: envelope %q, want %q", bare, envl, want)
		}
	}
}
