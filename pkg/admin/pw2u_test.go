package admin

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// TestPw2uGolden runs qmail-pw2u on testdata/pw2u/passwd with the users/
// files beside it; -H so the homes need not exist here.
func TestPw2uGolden(t *testing.T) {
	passwd, err := os.ReadFile("testdata/pw2u/passwd")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		users bool
	}{
		{"plain-H", []string{"-H"}, false},
		{"users-files-H", []string{"-H"}, true},
		{"root-upper-noext", []string{"-oUHC"}, false}, // -o no longer keeps uid 0
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.users {
				root = "testdata/pw2u"
			}
			var out, errb bytes.Buffer
			code := Pw2uMain(root, tc.args, bytes.NewReader(passwd), &out, &errb)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			golden(t, filepath.Join("testdata", "pw2u-"+tc.name+".golden"), append(out.Bytes(), append([]byte("--- stderr\n"), errb.Bytes()...)...))
		})
	}
}

func TestPw2uRules(t *testing.T) {
	// home belongs to uid u (not 0: uid 0 is always skipped); other, "/",
	// to root, never u.
	home, other := t.TempDir(), "/"
	u := os.Getuid()
	if u == 0 {
		u = 5
		if err := os.Chown(home, u, 6); err != nil {
			t.Fatal(err)
		}
	}
	us := strconv.Itoa(u)
	long := strings.Repeat("n", 32)
	tests := []struct {
		name, in string
		args     []string
		code     int
		out      string
		errPart  string
	}{
		{"home exists", "u:x:" + us + ":6::" + home + ":/bin/sh\n", nil, 0,
			"=u:u:" + us + ":6:" + home + ":::\n+u-:u:" + us + ":6:" + home + ":-::\n.\n", ""},
		// qmail-getpw would not take it: its .qmail would run as u.
		{"home of another uid", "u:x:" + us + ":6::" + other + ":/bin/sh\n", nil, 0, ".\n", "is owned by uid"},
		{"home of another uid, -H", "u:x:" + us + ":6::" + other + ":/bin/sh\n", []string{"-H"}, 0,
			"=u:u:" + us + ":6:" + other + ":::\n+u-:u:" + us + ":6:" + other + ":-::\n.\n", ""},
		{"uid 0 even with -o", "r:x:0:0::/:/bin/sh\n", []string{"-oH"}, 0, ".\n", "skipping r: uid 0"},
		{"uid -1", "m:x:4294967295:6::/h:/s\n", []string{"-H"}, 0, ".\n", "skipping m: uid or gid 4294967295"},
		{"name too long", long + ":x:5:6::/h:/s\n", []string{"-H"}, 0, ".\n", "skipping " + long + ": name of 32 bytes"},
		// Upper case is A-Z, as qmail's test: a Latin-1 name, and one
		// with a capital that is not ASCII, are lower-case names (Go's
		// Unicode lowering made the first U+FFFD and lowered the second).
		{"upper case", "Joe:x:5:6::/h:/s\n", []string{"-H"}, 0, ".\n", "skipping Joe: upper-case letters in the name (use -U)"},
		{"latin-1 name", "\xe9lise:x:5:6::/h:/s\n", []string{"-H"}, 0,
			"=\xe9lise:\xe9lise:5:6:/h:::\n+\xe9lise-:\xe9lise:5:6:/h:-::\n.\n", ""},
		{"non-ASCII capital", "\u00c9lise:x:5:6::/h:/s\n", []string{"-H"}, 0,
			"=\u00c9lise:\u00c9lise:5:6:/h:::\n+\u00c9lise-:\u00c9lise:5:6:/h:-::\n.\n", ""},
		{"alias home", "alias:x:7:8::/var/qmail/alias:/s\n", []string{"-HC"}, 0, "", ""},
		{"home missing", "u:x:5:6::/nonexistent/pw2u/test:/bin/sh\n", nil, 0, ".\n", "home directory /nonexistent/pw2u/test is missing"},
		{"include", "u:x:5:6::/h:/s\nv:x:7:8::/h:/s\n", []string{"-H"}, 0, "", ""},
		{"short line", "u:x:5:6\n", nil, 111, "", "fatal: unable to parse passwd line 1"},
		{"bad uid", "u:x:five:6::/h:/s\n", nil, 111, "", "fatal: unable to parse passwd line 1"},
		{"bad option", "", []string{"-z"}, 100, "", "usage: qmail-pw2u"},
		{"not an option", "", []string{"x"}, 100, "", "usage: qmail-pw2u"},
		{"empty input", "", nil, 0, ".\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.name == "include" {
				os.Mkdir(filepath.Join(root, "users"), 0755)
				os.WriteFile(filepath.Join(root, "users", "include"), []byte("v\n"), 0644)
				tc.out = "=v:v:7:8:/h:::\n+v-:v:7:8:/h:-::\n.\n"
			}
			if tc.name == "alias home" {
				// One alias account serves every tree: its home here is
				// this tree's alias directory, as qmail-getpw says.
				tc.out = "=alias:alias:7:8:" + filepath.Join(root, "alias") + ":::\n.\n"
			}
			var out, errb bytes.Buffer
			code := Pw2uMain(root, tc.args, strings.NewReader(tc.in), &out, &errb)
			if code != tc.code || (tc.code == 0 && out.String() != tc.out) || !strings.Contains(errb.String(), tc.errPart) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, stderr with %q", code, out.String(), errb.String(), tc.code, tc.out, tc.errPart)
			}
		})
	}
}

// FuzzPw2u: any passwd input gives either an error or assign lines that
// end with "." and carry no NUL (qmail-newu rejects those).
func FuzzPw2u(f *testing.F) {
	f.Add([]byte("root:x:0:0:root:/root:/bin/sh\nu:x:5:6::/h:/s\n"))
	f.Add([]byte("a:b\n\n#c\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		o := DefaultPw2uOptions()
		o.CheckHome = false
		var out, warn bytes.Buffer
		if err := Pw2u(bytes.NewReader(in), &out, &warn, o); err != nil {
			return
		}
		s := out.String()
		if !strings.HasSuffix(s, ".\n") || strings.ContainsRune(s, 0) {
			t.Fatalf("output %q", s)
		}
	})
}

// TestPw2uEmptyNames: an empty name in users/mailnames (a trailing colon,
// as users/subusers lines have) is ignored; it made "=:bob" and "+-:bob",
// which qmail-newu compiles into a catch-all of every local part that
// starts with '-'. A mailnames line with no name left, and a subusers line
// with an empty sub, are errors.
func TestPw2uEmptyNames(t *testing.T) {
	const pw = "bob:x:1001:100::/home/bob:/bin/sh\n"
	tests := []struct {
		name, mailnames, subusers string
		code                      int
		out, errPart              string
	}{
		{"trailing colon", "bob:robert:bobby:\n", "", 0,
			"=robert:bob:1001:100:/home/bob:::\n+robert-:bob:1001:100:/home/bob:-::\n" +
				"=bobby:bob:1001:100:/home/bob:::\n+bobby-:bob:1001:100:/home/bob:-::\n.\n", ""},
		{"empty in the middle", "bob::robert\n", "", 0,
			"=robert:bob:1001:100:/home/bob:::\n+robert-:bob:1001:100:/home/bob:-::\n.\n", ""},
		{"trailing blanks", "bob:robert: \t\n", "", 0,
			"=robert:bob:1001:100:/home/bob:::\n+robert-:bob:1001:100:/home/bob:-::\n.\n", ""},
		{"no name left", "bob:\n", "", 111, "", `fatal: bad format in users/mailnames: "bob:" names no local part`},
		{"only empty names", "bob::\n", "", 111, "", `"bob::" names no local part`},
		{"subuser with empty sub", "", ":bob:sales:\n", 111, "", `fatal: bad format in users/subusers: ":bob:sales:" has an empty sub`},
		{"subuser", "", "sales:bob:sales:\n", 0,
			"=bob:bob:1001:100:/home/bob:::\n+bob-:bob:1001:100:/home/bob:-::\n" +
				"=sales:bob:1001:100:/home/bob:-:sales:\n+sales-:bob:1001:100:/home/bob:-:sales-:\n.\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			users := filepath.Join(root, "users")
			if err := os.Mkdir(users, 0755); err != nil {
				t.Fatal(err)
			}
			for name, text := range map[string]string{"mailnames": tc.mailnames, "subusers": tc.subusers} {
				if text == "" {
					continue
				}
				if err := os.WriteFile(filepath.Join(users, name), []byte(text), 0644); err != nil {
					t.Fatal(err)
				}
			}
			var out, errb bytes.Buffer
			code := Pw2uMain(root, []string{"-H"}, strings.NewReader(pw), &out, &errb)
			if code != tc.code || (tc.code == 0 && out.String() != tc.out) || !strings.Contains(errb.String(), tc.errPart) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, stderr with %q", code, out.String(), errb.String(), tc.code, tc.out, tc.errPart)
			}
			for _, l := range strings.Split(out.String(), "\n") {
				if strings.HasPrefix(l, "=:") || strings.HasPrefix(l, "+-:") {
					t.Errorf("catch-all line %q", l)
				}
			}
		})
	}
}
