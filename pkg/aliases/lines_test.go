package aliases

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNewaliasesContinuationLine: an error in a continuation line is
// reported at the line of the bad target, not at the entry's first line
// (the report said line 2 for a bad target on line 4).
func TestNewaliasesContinuationLine(t *testing.T) {
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "etc"), 0o755)
	src := filepath.Join(root, "aliases")
	os.WriteFile(src, []byte("postmaster: root\nmulti: qat2,\n  qat3,\n  john smith,\n  qat1\n"), 0o644)
	var out, errb strings.Builder
	if code := NewaliasesMain(root, []string{"-f", src}, &out, &errb); code != 100 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	e := errb.String()
	if !strings.Contains(e, src+`:4: bad address "john smith"`) || !strings.Contains(e, "(line 4);") || strings.Contains(e, ":2:") {
		t.Errorf("stderr %q", e)
	}
}

// TestNewaliasesUnbalancedAngles: a '<' or '>' without its pair is an
// error with or without a blank beside it, and no target address ever
// holds one. ("zopen: <qat3@localhost" compiled to the address
// "<qat3@localhost", and "zclose: qat3@localhost>" was queued for the
// host "localhost>".)
func TestNewaliasesUnbalancedAngles(t *testing.T) {
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "etc"), 0o755)
	src := filepath.Join(root, "aliases")
	os.WriteFile(src, []byte("zopen: <qat3@localhost\nzclose: qat3@localhost>\nz: < qat2@localhost\nok: <qat1@localhost>\n"), 0o644)
	var out, errb strings.Builder
	if code := NewaliasesMain(root, []string{"-f", src}, &out, &errb); code != 100 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	e := errb.String()
	for _, w := range []string{
		src + `:1: bad address "<qat3@localhost": '<' without '>'`,
		src + `:2: bad address "qat3@localhost>": '>' without '<'`,
		src + `:3: bad address "< qat2@localhost": '<' without '>'`,
		"fatal: 3 error(s) in " + src + " (line 1, 2, 3)",
	} {
		if !strings.Contains(e, w) {
			t.Errorf("stderr lacks %q:\n%s", w, e)
		}
	}
	if _, err := os.Stat(filepath.Join(root, DBFile)); !os.IsNotExist(err) {
		t.Errorf("database written: %v", err)
	}
	// The same targets in a list (a .forward or :include: file).
	for _, list := range []string{"<qat3@localhost", "qat3@localhost>", "a@b, <c@d", "<|/bin/prog", `\alice>`, "/var/mail/x>", `"a>b"@example.com`, "<a@b>junk"} {
		good, bad := ScanTargets(list)
		for _, g := range good {
			if strings.ContainsAny(g.Text, "<>") {
				t.Errorf("ScanTargets(%q) gave the target %q", list, g.Text)
			}
		}
		if len(bad) != 1 {
			t.Errorf("ScanTargets(%q): errors %v, want one", list, bad)
		}
	}
	// Programs keep the shell's redirections.
	if good, bad := ScanTargets(`"|cat > /tmp/x", <|sort </tmp/in>`); len(bad) != 0 || len(good) != 2 || good[1].Text != "|sort </tmp/in" {
		t.Errorf("programs: %v %v", good, bad)
	}
}

// TestScanTargetsOffsets: each target and each error comes with where it
// starts, past the blanks before it; a bad target does not hide the good
// ones after it.
func TestScanTargetsOffsets(t *testing.T) {
	s := "a@b,  john smith , c@d,\"|unterminated"
	good, bad := ScanTargets(s)
	if len(good) != 2 || good[0] != (Target{"a@b", 0}) || good[1] != (Target{"c@d", strings.Index(s, "c@d")}) {
		t.Errorf("good %v", good)
	}
	if len(bad) != 2 || bad[0].Off != strings.Index(s, "john") || bad[1].Off != strings.Index(s, `"|`) || bad[1].Msg != "unterminated quote" {
		t.Errorf("bad %v", bad)
	}
}

// FuzzScanTargets: every target given is one CheckTarget takes, holds
// no angle bracket outside a program, and starts inside the list.
func FuzzScanTargets(f *testing.F) {
	for _, s := range []string{"a@b, <c@d>", "<qat3@localhost", "qat3@localhost>", "Bob <b@x> (c <d>), \"|p > q\"", "\\u, :include:/x, /f/, \"a<b\"@c", "<|p>, <\"|q, r\">"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		good, bad := ScanTargets(s)
		for _, g := range good {
			if msg := CheckTarget(g.Text); msg != "" {
				t.Fatalf("gave bad target %q: %s", g.Text, msg)
			}
			if k, _ := Classify(g.Text); k != Program && strings.ContainsAny(g.Text, "<>") {
				t.Fatalf("gave %q", g.Text)
			}
			if g.Off < 0 || g.Off >= len(s) {
				t.Fatalf("offset %d of %q outside %d bytes", g.Off, g.Text, len(s))
			}
		}
		for _, b := range bad {
			if b.Off < 0 || b.Off > len(s) || b.Msg == "" {
				t.Fatalf("error %+v", b)
			}
		}
	})
}
