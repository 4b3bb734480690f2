package aliases

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/cdb"
)

var update = flag.Bool("update", false, "rewrite golden files")

var kindNames = map[Kind]string{Address: "address", Program: "program", File: "file", Maildir: "maildir", Include: "include", Local: "local"}

func render(as []Alias, errs []error) string {
	var b strings.Builder
	for _, a := range as {
		var parts []string
		for _, t := range a.Targets {
			k, arg := Classify(t)
			parts = append(parts, fmt.Sprintf("%s %q", kindNames[k], arg))
		}
		fmt.Fprintf(&b, "%s line %d: %s\n", a.Name, a.Line, strings.Join(parts, " | "))
	}
	for _, e := range errs {
		fmt.Fprintf(&b, "error: %v\n", e)
	}
	return b.String()
}

func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.aliases")
	if len(files) == 0 {
		t.Fatal("no golden cases")
	}
	for _, in := range files {
		t.Run(filepath.Base(in), func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			got := render(Parse(bytes.NewReader(data), filepath.Base(in)))
			golden := strings.TrimSuffix(in, ".aliases") + ".golden"
			if *update {
				os.WriteFile(golden, []byte(got), 0644)
			}
			want, _ := os.ReadFile(golden)
			if got != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestCompileAndLookup(t *testing.T) {
	as, errs := Parse(strings.NewReader("Root: alice\nstaff: a, \"|prog x\"\n"), "x")
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	db := openRecords(t, Records(as, "x"))
	for _, tc := range []struct {
		name  string
		found bool
		want  []string
	}{
		{"ROOT", true, []string{"alice"}},
		{"staff", true, []string{"a", "|prog x"}},
		{"nobody", false, nil},
		{"", false, nil}, // the source file's record is no alias
	} {
		got, ok, err := Lookup(db.Reader, tc.name)
		if err != nil || ok != tc.found || strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("Lookup(%q) = %q, %v, %v", tc.name, got, ok, err)
		}
	}
}

func TestNewaliasesRefusesErrors(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0755)
	src := filepath.Join(root, "aliases")
	os.WriteFile(src, []byte("good: a\nbad\n"), 0644)
	var out, errb bytes.Buffer
	if code := NewaliasesMain(root, []string{"-f", src}, &out, &errb); code != 100 {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	if !strings.Contains(errb.String(), src+":2: missing ':'") {
		t.Errorf("stderr lacks file:line: %s", errb.String())
	}
	if _, err := os.Stat(filepath.Join(root, DBFile)); err == nil {
		t.Error("database written despite errors")
	}
	os.WriteFile(src, []byte("good: a\n"), 0644)
	if code := NewaliasesMain(root, []string{"-f", src}, &out, &errb); code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	if _, err := os.Stat(filepath.Join(root, DBFile)); err != nil {
		t.Error(err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"a: b\n", "x: \"|p, q\", /f, /d/, :include:/i, \\u\n  , c\n", "#c\n\n: \n", "\"q\": <a@b>",
		"d: Bob <bob@x>, j@x (Joe, Admin), \"joe smith\"@x, (c) \"a\\\"b\" <\"c d\"@[1.2.3.4]>\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		as, _ := Parse(strings.NewReader(s), "fuzz")
		for _, a := range as {
			if a.Name == "" || len(a.Targets) == 0 {
				t.Fatalf("accepted empty alias %+v", a)
			}
			for _, tg := range a.Targets {
				if CheckTarget(tg) != "" {
					t.Fatalf("accepted bad target %q", tg)
				}
				if k, arg := Classify(tg); k == Address && strings.ContainsAny(Envelope(arg), "\x00\r\n") {
					t.Fatalf("target %q gives the envelope %q", tg, Envelope(arg))
				}
			}
		}
	})
}

// TestNewaliasesUsage: a bad option or a stray argument is a usage error
// (100) and compiles nothing.
func TestNewaliasesUsage(t *testing.T) {
	root := t.TempDir()
	for _, args := range [][]string{{"-x"}, {"/etc/other"}} {
		var out, errb strings.Builder
		if code := NewaliasesMain(root, args, &out, &errb); code != 100 || !strings.Contains(errb.String(), "usage: newaliases") {
			t.Errorf("%q: exit %d, stderr %q", args, code, errb.String())
		}
	}
	if _, err := os.Stat(filepath.Join(root, DBFile)); !os.IsNotExist(err) {
		t.Errorf("database written: %v", err)
	}
}

// TestNewaliasesVerbose: -v, which Postfix's newaliases takes and package
// scripts pass, is accepted and compiles as without it.
func TestNewaliasesVerbose(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(root, "aliases")
	if err := os.WriteFile(src, []byte("postmaster: root\n"), 0644); err != nil {
		t.Fatal(err)
	}
	var out, errb strings.Builder
	if code := NewaliasesMain(root, []string{"-v", "-f", src}, &out, &errb); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if !strings.Contains(out.String(), "1 aliases compiled") {
		t.Errorf("stdout %q", out.String())
	}
	if _, err := os.Stat(filepath.Join(root, DBFile)); err != nil {
		t.Errorf("database not written: %v", err)
	}
}

// TestNewaliasesSendmailOptions: as a link to sendmail, newaliases takes
// sendmail's options as Postfix's does: -oAfile names the file, other -o
// options are ignored.
func TestNewaliasesSendmailOptions(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(root, "aliases")
	if err := os.WriteFile(src, []byte("postmaster: root\nabuse: root\n"), 0644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"-oA" + src}, {"-oi", "-oA", src, "-oem"}, {"-oAhash:" + src}} {
		var out, errb strings.Builder
		if code := NewaliasesMain(root, args, &out, &errb); code != 0 || !strings.Contains(out.String(), "2 aliases compiled") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out.String(), errb.String())
		}
	}
	// -oA without a file is a usage error, not the default file: nothing
	// after it (Go's flag package complained of an undefined -oA, and the
	// usage did not list it), an empty word, an option, or a map type
	// alone (-oAhash: compiled /etc/aliases).
	if err := os.Remove(filepath.Join(root, DBFile)); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"-oA"}, {"-oA", ""}, {"-oA", "-n"}, {"-oAhash:"}, {"-oA", "hash:"}, {"-oAcdb:"}} {
		var out, errb strings.Builder
		code := NewaliasesMain(root, args, &out, &errb)
		e := errb.String()
		if code != 100 || out.Len() != 0 || !strings.HasPrefix(e, "newaliases: fatal: -oA") ||
			!strings.Contains(e, "usage: newaliases") || !strings.Contains(e, "  -oA file") || strings.Contains(e, "not defined") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out.String(), e)
		}
	}
	if _, err := os.Stat(filepath.Join(root, DBFile)); !os.IsNotExist(err) {
		t.Errorf("database written: %v", err)
	}
}

// TestNewaliasesUsageListsOA: the usage text names -oA.
func TestNewaliasesUsageListsOA(t *testing.T) {
	var out, errb strings.Builder
	NewaliasesMain(t.TempDir(), []string{"-x"}, &out, &errb)
	if !strings.Contains(errb.String(), "-oAaliasesfile") || !strings.Contains(errb.String(), "  -oA file") {
		t.Errorf("usage %q does not list -oA", errb.String())
	}
}

// TestNewaliasesWarnings: a repeated name is a warning (the first entry is
// used, as Postfix's postalias does), and an alias shadowed by the file
// qmail-local really reads (dots as colons) is named.
func TestNewaliasesWarnings(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"etc", "alias"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "alias", ".qmail-john:doe"), []byte("./Maildir/\n"), 0o644)
	os.WriteFile(filepath.Join(root, "alias", ".qmail-list-default"), []byte("./Maildir/\n"), 0o644)
	src := filepath.Join(root, "aliases")
	os.WriteFile(src, []byte("dup: a\ndup: b\njohn.doe: c\nlist-x-y: d\nlisty: e\n"), 0o644)
	var out, errb strings.Builder
	if code := NewaliasesMain(root, []string{"-f", src}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	e := errb.String()
	if !strings.Contains(e, `:2: warning: duplicate alias "dup" ignored`) || !strings.Contains(e, ":3: warning: ") ||
		!strings.Contains(e, ".qmail-john:doe exists and takes precedence") ||
		!strings.Contains(e, `.qmail-list-default exists and takes precedence over alias "list-x-y"`) || strings.Contains(e, `"listy"`) {
		t.Errorf("stderr %q", e)
	}
	if !strings.Contains(out.String(), "4 aliases compiled") {
		t.Errorf("stdout %q", out.String())
	}
}

// A NUL, CR or LF inside a target is refused whatever its kind: a NUL
// reaching qmail-queue's envelope would add a recipient ("a\x00Tb") or
// make the queue fail temporarily for ever.
func TestCheckTargetControlBytes(t *testing.T) {
	for _, tg := range []string{
		"friend@example.org\x00Tinjected@evil.example",
		"friend@example.org\x00x",
		"a@b\nc@d",
		"a@b\rc@d",
		"|prog\x00arg",
		"|prog\rarg",
		"/var/mail/x\x00y",
		"/srv/Maildir\n/",
		":include:/etc/list\x00x",
		"\\alice\x00Tbob",
	} {
		msg := CheckTarget(tg)
		if !strings.Contains(msg, "NUL, CR or LF in target") {
			t.Errorf("CheckTarget(%q) = %q, want it refused", tg, msg)
		}
	}
	for _, tg := range []string{"friend@example.org", "|prog a, b", "/var/mail/x", "\\alice", ":include:/etc/list"} {
		if msg := CheckTarget(tg); msg != "" {
			t.Errorf("CheckTarget(%q) = %q, want it accepted", tg, msg)
		}
	}
}

// TestNewaliasesRFC5322Forms: the address forms Postfix's postalias
// takes compile (a display name before <addr>, a comment before or after,
// a quoted local part kept quoted); one bad line still keeps the old
// database, and the fatal line names it.
func TestNewaliasesRFC5322Forms(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(root, "aliases")
	os.WriteFile(src, []byte("bob: Bob <bob@example.com>\njoe: joe@example.com (Joe Admin), (Jane) jane@example.com\nsmith: \"joe smith\"@example.com\n"), 0o644)
	var out, errb strings.Builder
	if code := NewaliasesMain(root, []string{"-f", src}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	db, err := cdb.Open(filepath.Join(root, DBFile))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"bob": "bob@example.com", "joe": "joe@example.com,jane@example.com", "smith": `"joe smith"@example.com`} {
		got, ok, err := Lookup(db.Reader, name)
		if err != nil || !ok || strings.Join(got, ",") != want {
			t.Errorf("%s: %q %v %v, want %q", name, got, ok, err, want)
		}
	}
	db.Close()
	if got := Envelope(`"joe smith"@example.com`); got != "joe smith@example.com" {
		t.Errorf("Envelope = %q", got)
	}

	os.WriteFile(src, []byte("bob: Bob <bob@example.com>\nok: a\nbad: Bob <bob@example.com\nbad2: \"|x\", a b, c d\n"), 0o644)
	errb.Reset()
	if code := NewaliasesMain(root, []string{"-f", src}, &out, &errb); code != 100 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if e := errb.String(); !strings.Contains(e, src+`:3: bad address "Bob <bob@example.com"`) ||
		!strings.Contains(e, "fatal: 3 error(s) in "+src+" (line 3, 4); etc/aliases.cdb not changed") {
		t.Errorf("stderr %q", e)
	}
}

// TestParseBOM: a UTF-8 byte order mark before the first line is no part
// of the first alias's name (reg14 QA: "\ufeffpostmaster" was compiled,
// and postmaster had no alias).
func TestParseBOM(t *testing.T) {
	as, errs := Parse(strings.NewReader("\ufeffpostmaster: root\nabuse: root\n"), "aliases")
	if len(errs) != 0 || len(as) != 2 || as[0].Name != "postmaster" {
		t.Fatalf("%+v %v", as, errs)
	}
}

// openRecords writes recs into a cdb in a temporary directory and opens
// it, closed at the end of the test.
func openRecords(t *testing.T, recs []cdb.Record) *cdb.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "aliases.cdb")
	if err := cdb.WriteFile(path, 0644, recs); err != nil {
		t.Fatal(err)
	}
	db, err := cdb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestQuotedTargetTail: text after the closing quote of a quoted program,
// file, Maildir or include (a comma left out) is an error naming its
// line, as "bob" carol is (QA rtools3: "|/usr/bin/archive" bob@example.com
// compiled to the program "|/usr/bin/archive bob@example.com", and
// "/tmp/file" bob to the file "/tmp/file bob", without a word). A quoted
// target followed by a comma, and the forms without quotes, are read as
// before.
func TestQuotedTargetTail(t *testing.T) {
	for _, tc := range []struct {
		list string
		want string // the targets as render gives them, or "error"
	}{
		{`"|/usr/bin/archive" bob@example.com`, "error"},
		{`"/tmp/file" bob`, "error"},
		{`"/srv/Box/" bob`, "error"},
		{`":include:/etc/list" bob`, "error"},
		{`" |prog" bob`, "error"},
		{`"|prog"bob`, "error"},
		{`"|prog" (comment)`, "error"},
		{`"|prog" ""`, "error"},
		{`"|prog">`, "error"},
		{`<"|prog"> bob`, "error"},
		{`alice, "|/usr/bin/archive" bob, carol`, "error"},
		{`bob "carol"`, "error"},
		{`"bob" carol`, "error"},
		{`bob carol`, "error"},

		{`"|prog arg", bob`, `program "prog arg" | address "bob"`},
		{`"/tmp/f", bob`, `file "/tmp/f" | address "bob"`},
		{`"|prog arg" , bob`, `program "prog arg" | address "bob"`},
		{`"|prog, arg"  `, `program "prog, arg"`},
		{`"|prog \"x\" y"`, `program "prog \"x\" y"`},
		{`"/srv/Box/", "|p"`, `maildir "/srv/Box/" | program "p"`},
		{`<"|/usr/bin/prog">`, `program "/usr/bin/prog"`},
		{`< "|prog" >, bob`, `program "prog" | address "bob"`},
		{`|/usr/bin/archive -x`, `program "/usr/bin/archive -x"`},
		{`|/usr/bin/archive -x, bob`, `program "/usr/bin/archive -x" | address "bob"`},
		{`|prog "a, b"`, `program "prog a, b"`},
		{`/tmp/my file`, `file "/tmp/my file"`},
		{`"joe smith"@example.com, bob`, `address "\"joe smith\"@example.com" | address "bob"`},
	} {
		src := "ok: root\nx: alice,\n  " + tc.list + "\n"
		as, errs := Parse(strings.NewReader(src), "f")
		if tc.want == "error" {
			if len(as) != 1 || len(errs) == 0 {
				t.Errorf("%s: %+v %v, want an error", tc.list, as, errs)
				continue
			}
			for _, e := range errs {
				if !strings.HasPrefix(e.Error(), "f:3: ") {
					t.Errorf("%s: error %q, want one at line 3", tc.list, e)
				}
			}
			if _, bad := ScanTargets(tc.list); len(bad) == 0 {
				t.Errorf("ScanTargets(%s): no error", tc.list)
			}
			continue
		}
		got := render(as, errs)
		want := "ok line 1: address \"root\"\nx line 2: address \"alice\" | " + tc.want + "\n"
		if got != want {
			t.Errorf("%s: got\n%swant\n%s", tc.list, got, want)
		}
	}
	// In a list (a .forward or an :include: file) the bad target is
	// named, and the others are kept.
	good, bad := ScanTargets(`alice, "|/usr/bin/archive" bob@example.com, carol`)
	if len(good) != 2 || good[0].Text != "alice" || good[1].Text != "carol" || len(bad) != 1 || bad[0].Off != 7 ||
		!strings.Contains(bad[0].Msg, `bad target "\"|/usr/bin/archive\" bob@example.com": not one target`) {
		t.Errorf("ScanTargets: %+v %+v", good, bad)
	}
}
