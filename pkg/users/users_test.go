package users

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hqmail/hqmail/pkg/cdb"
)

func TestCompileFormatErrors(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"empty file", ""},
		{"no dot line", "=a:a:1:1:/h:::\n"},
		{"last line without newline", "=a:a:1:1:/h:::"},
		{"blank line", "=a:a:1:1:/h:::\n\n.\n"},
		{"NUL", "=a:a\x00:1:1:/h:::\n.\n"},
		{"no colon", "=abc\n.\n"},
		{"leading colon", ":a:1:1:/h:::\n.\n"},
		{"too few fields", "=a:a:1:1:/h::\n.\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Compile([]byte(tc.in)); !errors.Is(err, ErrFormat) {
				t.Errorf("got %v, want ErrFormat", err)
			}
		})
	}
}

// TestCompileIDs: a uid or gid that is not bare decimal digits below
// 2^32-1 is refused with the line and the field named (qmail-lspawn
// would read "1001x" as 1001 and "+1001" as root); leading zeros and
// ids past 2^31 are fine.
func TestCompileIDs(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"=a:a:1001 :1:/h:::\n.\n", `bad format in users/assign: line 1: uid "1001 " is not a decimal number below 4294967295`},
		{"=a:a:1:1:/h:::\n=b:b:1:+7:/h:::\n.\n", `bad format in users/assign: line 2: gid "+7" is not a decimal number below 4294967295`},
		{"=a:a::1:/h:::\n.\n", `bad format in users/assign: line 1: uid "" is not a decimal number below 4294967295`},
		{"=a:a:4294967295:1:/h:::\n.\n", `bad format in users/assign: line 1: uid "4294967295" is not a decimal number below 4294967295`},
		{"=a:a:0010:3000000000:/h:::\n.\n", ""},
	} {
		_, err := Compile([]byte(tc.in))
		if tc.want == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.in, err)
			}
			continue
		}
		if !errors.Is(err, ErrFormat) || err.Error() != tc.want {
			t.Errorf("%q: got %v, want %s", tc.in, err, tc.want)
		}
	}
}

// TestCompileEndLine: any line starting with a dot ends the file, as in
// qmail-newu, whatever follows the dot and with or without a newline; the
// lines after it are not read.
func TestCompileEndLine(t *testing.T) {
	for _, end := range []string{".\n", ".", ".\r\n", ". \n", ".\nnot a line\n"} {
		recs, err := Compile([]byte("=a:a:1:1:/h:::\n" + end))
		if err != nil || len(recs) != 2 || string(recs[0].Key) != "!a\x00" {
			t.Errorf("end %q: %v, %q", end, err, recs)
		}
	}
}

func lookup(t *testing.T, recs []cdb.Record) *cdb.Reader {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cdb")
	if err := cdb.WriteFile(p, 0o644, recs); err != nil {
		t.Fatal(err)
	}
	f, err := cdb.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f.Reader
}

func TestCompile(t *testing.T) {
	in := "=Joe:joe:1001:100:/home/joe:::\n" +
		"+joe-:joe:1001:100:/home/joe:-::\n" +
		"+Lists.:list:1002:100:/var/lists:-:x-:ignored:after\n" +
		"=joe:other:1:1:/x:::\n" + // duplicate: first wins
		"+:alias:7:8:/q/alias:-::\n" +
		".\n" +
		"garbage after the dot line is ignored\n"
	recs, err := Compile([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	db := lookup(t, recs)
	for _, tc := range []struct {
		key, want string
		found     bool
	}{
		{"!joe\x00", "joe\x001001\x00100\x00/home/joe\x00\x00", true},
		{"!joe-", "joe\x001001\x00100\x00/home/joe\x00-\x00", true},
		{"!lists.", "list\x001002\x00100\x00/var/lists\x00-\x00x-", true},
		{"!", "alias\x007\x008\x00/q/alias\x00-\x00", true},
		{"", "-.", true},
		{"!Joe\x00", "", false},
		{"!nobody\x00", "", false},
	} {
		got, found, err := db.Get([]byte(tc.key))
		if err != nil || found != tc.found || (found && string(got) != tc.want) {
			t.Errorf("Get(%q) = %q, %v, %v; want %q, %v", tc.key, got, found, err, tc.want, tc.found)
		}
	}
}

// TestCompileBOM: a byte order mark before the first line (reg14 QA: a
// Notepad-saved "+:alias..." became the key "!\xbb\xbf+", and the
// catch-all was gone) is no part of it.
func TestCompileBOM(t *testing.T) {
	recs, err := Compile([]byte("\xef\xbb\xbf+:alias:1:1:/tmp:-::\n.\n"))
	if err != nil {
		t.Fatal(err)
	}
	db := lookup(t, recs)
	if got, found, err := db.Get([]byte("!")); err != nil || !found || string(got) != "alias\x001\x001\x00/tmp\x00-\x00" {
		t.Errorf("catch-all after a BOM: %q, %v, %v", got, found, err)
	}
}

func TestBuild(t *testing.T) {
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "users"), 0o755)
	if err := Build(root); err == nil {
		t.Error("Build without assign succeeded")
	}
	os.WriteFile(filepath.Join(root, "users", "assign"), []byte(".\n"), 0o644)
	if err := Build(root); err != nil {
		t.Fatal(err)
	}
	f, err := cdb.Open(filepath.Join(root, "users", "cdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if d, ok, _ := f.Get(nil); !ok || !bytes.Equal(d, nil) && len(d) != 0 {
		t.Errorf(`empty assign: key "" = %q, %v`, d, ok)
	}
	os.WriteFile(filepath.Join(root, "users", "assign"), []byte("bad\n.\n"), 0o644)
	if err := Build(root); !errors.Is(err, ErrFormat) {
		t.Errorf("bad assign: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "users", "cdb.tmp")); err == nil {
		t.Error("cdb.tmp left behind")
	}
}
