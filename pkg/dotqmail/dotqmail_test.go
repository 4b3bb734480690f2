package dotqmail

import (
	"bytes"
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	type got struct {
		Kind   Kind
		Offset int
		Arg    string
		Target string
	}
	tests := []struct {
		name string
		in   string
		want []got
	}{
		{"empty", "", nil},
		{"maildir", "./Maildir/\n", []got{{Maildir, 0, "./Maildir/", "./Maildir/"}}},
		{"mbox", "./Mailbox\n", []got{{Mbox, 0, "./Mailbox", "./Mailbox"}}},
		{"absolute", "/var/mail/a\n/home/a/Maildir/\n", []got{{Mbox, 0, "/var/mail/a", "/var/mail/a"}, {Maildir, 12, "/home/a/Maildir/", "/home/a/Maildir/"}}},
		{"dot alone", ".\n", []got{{Mbox, 0, ".", "."}}},
		{"slash alone", "/\n", []got{{Maildir, 0, "/", "/"}}},
		{"program", "|cat -v\n", []got{{Program, 0, "cat -v", "cat -v"}}},
		{"empty program", "|\n", []got{{Program, 0, "", ""}}},
		{"forward amp", "&bob@example.com\n", []got{{Forward, 0, "bob@example.com", "bob@example.com"}}},
		{"forward plain", "bob@example.com\n", []got{{Forward, 0, "bob@example.com", "bob@example.com"}}},
		{"forward amp only", "&\n", []got{{Forward, 0, "", ""}}},
		{"comment", "# hi\n#\n", []got{{Comment, 0, "# hi", "# hi"}, {Comment, 5, "#", "#"}}},
		{"plus", "+list\n+other\n", []got{{Plus, 0, "list", "list"}, {Plus, 6, "other", "other"}}},
		{"trailing blanks", "./Maildir/ \t \n|echo hi  \n", []got{{Maildir, 0, "./Maildir/", "./Maildir/"}, {Program, 14, "echo hi", "echo hi"}}},
		{"cr kept", "./Maildir/\r\n", []got{{Mbox, 0, "./Maildir/\r", "./Maildir/\r"}}},
		{"blank lines", "\n  \n\t\n", []got{{Blank, 0, "", ""}, {Blank, 1, "", ""}, {Blank, 4, "", ""}}},
		{"nul first", "\x00abc\n", []got{{Blank, 0, "\x00abc", ""}}},
		{"nul inside", "./Mail\x00box/\n|echo\x00rm\n", []got{{Maildir, 0, "./Mail\x00box/", "./Mail"}, {Program, 12, "echo\x00rm", "echo"}}},
		{"no final newline", "./Maildir/", []got{{Maildir, 0, "./Maildir/", "./Maildir/"}}},
		{"leading blank is forward", " bob\n", []got{{Forward, 0, " bob", " bob"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var g []got
			for _, l := range Parse([]byte(tt.in)) {
				g = append(g, got{l.Kind, l.Offset, string(l.Arg()), l.Target()})
			}
			if !reflect.DeepEqual(g, tt.want) {
				t.Errorf("Parse(%q)\n got %v\nwant %v", tt.in, g, tt.want)
			}
		})
	}
}

func TestIsList(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"+list", true},
		{"+list  ", true},
		{"+list\x00x", true},
		{"+lists", false},
		{"+", false},
		{"list", false},
		{"+LIST", false},
	}
	for _, tt := range tests {
		l := Parse([]byte(tt.in + "\n"))[0]
		if l.IsList() != tt.want {
			t.Errorf("%q: IsList = %v, want %v", tt.in, l.IsList(), tt.want)
		}
	}
}

func TestSafeExt(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"LIST", "list"},
		{"a.b", "a:b"},
		{"../../etc", "::/::/etc"},
		{"Foo-Bar.Baz", "foo-bar:baz"},
		{"\xc3\x84", "\xc3\x84"},
	}
	for _, tt := range tests {
		if got := SafeExt(tt.in); got != tt.want {
			t.Errorf("SafeExt(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCandidates(t *testing.T) {
	type c = Candidate
	tests := []struct {
		dash, ext string
		want      []c
	}{
		{"", "", []c{{".qmail", "", false}, {".qmaildefault", "", true}}},
		{"-", "", []c{{".qmail-", "", false}, {".qmail-default", "", true}}},
		{"-", "a", []c{{".qmail-a", "", false}, {".qmail-default", "a", true}}},
		{"-", "a-", []c{{".qmail-a-", "", false}, {".qmail-a-default", "", true}, {".qmail-default", "a-", true}}},
		{"-", "a-b", []c{{".qmail-a-b", "", false}, {".qmail-a-default", "b", true}, {".qmail-default", "a-b", true}}},
		{"-", "a-b-c", []c{{".qmail-a-b-c", "", false}, {".qmail-a-b-default", "c", true}, {".qmail-a-default", "b-c", true}, {".qmail-default", "a-b-c", true}}},
		{"-", "Foo-BAR", []c{{".qmail-foo-bar", "", false}, {".qmail-foo-default", "BAR", true}, {".qmail-default", "Foo-BAR", true}}},
		{"-", "x.y", []c{{".qmail-x:y", "", false}, {".qmail-default", "x.y", true}}},
		{"-", "list-default", []c{{".qmail-list-default", "default", true}, {".qmail-list-default", "default", true}, {".qmail-default", "list-default", true}}},
		{"-", "Default", []c{{".qmail-default", "Default", true}, {".qmail-default", "Default", true}}},
	}
	for _, tt := range tests {
		got := Candidates(tt.dash, tt.ext)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Candidates(%q, %q)\n got %v\nwant %v", tt.dash, tt.ext, got, tt.want)
		}
	}
}

func TestOwnerName(t *testing.T) {
	if got := OwnerName("-", "List.X", "-owner"); got != ".qmail-list:x-owner" {
		t.Errorf("OwnerName = %q", got)
	}
	if got := OwnerName("", "", "-owner-default"); got != ".qmail-owner-default" {
		t.Errorf("OwnerName = %q", got)
	}
}

// FuzzParse checks the invariants of line classification on any input:
// lines cover the input in order, never contain '\n' or trailing blanks,
// and the kind follows from the first and last byte.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "\n", "./Maildir/\n", "|cat\n&a@b\n#x\n+list\nbob\n", "/x \t\n\x00\n", "a\nb"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		lines := Parse(in)
		prev := -1
		for _, l := range lines {
			if l.Offset <= prev || l.Offset >= len(in) && len(in) > 0 {
				t.Fatalf("bad offset %d after %d (len %d)", l.Offset, prev, len(in))
			}
			prev = l.Offset
			if !bytes.HasPrefix(in[l.Offset:], l.Text) {
				t.Fatalf("line text %q not at offset %d", l.Text, l.Offset)
			}
			if bytes.IndexByte(l.Text, '\n') >= 0 {
				t.Fatalf("line contains newline: %q", l.Text)
			}
			if n := len(l.Text); n > 0 && (l.Text[n-1] == ' ' || l.Text[n-1] == '\t') {
				t.Fatalf("trailing blank kept: %q", l.Text)
			}
			if k := Classify(l.Text); k != l.Kind {
				t.Fatalf("kind %v, Classify says %v", l.Kind, k)
			}
			tg := l.Target()
			if bytes.IndexByte([]byte(tg), 0) >= 0 || !bytes.HasPrefix(l.Arg(), []byte(tg)) {
				t.Fatalf("target %q not a NUL-free prefix of %q", tg, l.Arg())
			}
			if l.Kind == Maildir && l.Text[len(l.Text)-1] != '/' {
				t.Fatalf("maildir line without final slash: %q", l.Text)
			}
		}
		if n := bytes.Count(in, []byte{'\n'}); len(lines) != n && len(lines) != n+1 {
			t.Fatalf("%d lines for %d newlines", len(lines), n)
		}
	})
}
