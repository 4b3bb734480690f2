package forward

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hqmail/hqmail/pkg/aliases"
	"github.com/hqmail/hqmail/pkg/cdb"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qq"
)

// writeAliases compiles an aliases text into root's database.
func writeAliases(t *testing.T, root, text string) {
	t.Helper()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	as, errs := aliases.Parse(strings.NewReader(text), "a")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if err := cdb.WriteFile(filepath.Join(root, aliases.DBFile), 0o644, aliases.Records(as, "a")); err != nil {
		t.Fatal(err)
	}
}

// trustedOwner gives path to root when the test runs as root (the case
// of the report: a root-owned list), else leaves it the test user's,
// who is the delivering user: either way its owner is trusted.
func trustedOwner(t *testing.T, path string) {
	t.Helper()
	if os.Geteuid() == 0 {
		if err := os.Chown(path, 0, 4242); err != nil {
			t.Fatal(err)
		}
	}
}

// TestIncludeGroupWritable: an :include: file its group can write gives
// its addresses but not its programs and files, though it belongs to
// root or the delivering user; so does every file it includes. (A
// root-owned list that a group could write ran its "|command" lines as
// alias for any member of the group.)
func TestIncludeGroupWritable(t *testing.T) {
	root := t.TempDir()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	pwned := filepath.Join(dir, "pwned.txt")
	inc := filepath.Join(dir, "staff.txt")
	os.WriteFile(inc, []byte("carol@example.net\n|id > "+pwned+"\n"+dir+"/mbox\n"), 0o644)
	trustedOwner(t, inc)
	if err := os.Chmod(inc, 0o664); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(inc)
	gid := int(statGID(t, st))
	writeAliases(t, root, "staff: alice, :include:"+inc+"\n")
	q := capture(t)
	localEnv(t, "alias", "staff", "staff")
	var out bytes.Buffer
	if code := FastforwardMain(root, nil, msgFile(t, "x\n"), &out); code != 99 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	for _, p := range []string{pwned, dir + "/mbox"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s was written (%v): a program or file of a group-writable :include: ran", p, err)
		}
	}
	env, _ := os.ReadFile(filepath.Join(q, "envelope"))
	if got, _ := qq.ParseEnvelope(env); got == nil || strings.Join(got.Recipients, ",") != "alice,carol@example.net" {
		t.Fatalf("envelope %q: the addresses of the file should still be forwarded", env)
	}
	want := fmt.Sprintf("fastforward: warning: %q skipped: program and file targets in :include: %s are ignored: it is writable by its group (gid %d) (#5.7.1)\n", "|id > "+pwned, inc, gid)
	if !strings.Contains(out.String(), want) {
		t.Errorf("output %q\nwant %q", out.String(), want)
	}

	// A file below it in the chain, not group-writable itself, is not
	// trusted either.
	inner := filepath.Join(dir, "inner")
	os.WriteFile(inner, []byte("|prog\nbob\n"), 0o644)
	trustedOwner(t, inner)
	os.WriteFile(inc, []byte(":include:"+inner+"\n"), 0o644)
	os.Chmod(inc, 0o664)
	p, err := Expand([]string{":include:" + inc}, &Env{})
	if err != nil || len(p.Programs) != 0 || strings.Join(p.Forwards, ",") != "bob" || len(p.Refused) != 1 ||
		!strings.Contains(p.Refused[0], fmt.Sprintf(`"|prog" skipped: program and file targets in :include: %s are ignored: it is included from %s, which is writable by its group (gid %d) (#5.7.1)`, inner, inc, gid)) {
		t.Fatalf("group-writable outer: plan %+v, err %v", p, err)
	}
	// Not group-writable: trusted again.
	os.Chmod(inc, 0o644)
	p, err = Expand([]string{":include:" + inc}, &Env{})
	if err != nil || len(p.Refused) != 0 || strings.Join(p.Programs, ",") != "prog" {
		t.Fatalf("0644 outer: plan %+v, err %v", p, err)
	}
	// Writable by others still defers.
	os.Chmod(inc, 0o666)
	if _, err := Expand([]string{":include:" + inc}, &Env{}); err == nil || qerr.IsPerm(err) || !strings.Contains(err.Error(), "writable by others") {
		t.Fatalf("world-writable: err %v, want a deferral", err)
	}
}

// TestIncludeSyntaxErrorSkipped: a bad target in an :include: file is
// left out with a warning naming file:line, and the list's other targets
// get the mail; with nothing left the message bounces with that text.
// (One typo bounced every message to the list, and the bounce named
// neither the file nor the line.)
func TestIncludeSyntaxErrorSkipped(t *testing.T) {
	root := t.TempDir()
	dir := t.TempDir()
	inc := filepath.Join(dir, "team.list")
	os.WriteFile(inc, []byte("# the team\ncarol@example.net, john smith\n<dave@example.net\nerin@example.net\nfrank@example.net>, \"|unterminated\n"), 0o644)
	bad := filepath.Join(dir, "bad.list")
	os.WriteFile(bad, []byte("\n\njohn smith\n"), 0o644)
	writeAliases(t, root, "team: alice, :include:"+inc+"\nbad: :include:"+bad+"\n")
	q := capture(t)
	localEnv(t, "alias", "team", "team")
	var out bytes.Buffer
	if code := FastforwardMain(root, nil, msgFile(t, "x\n"), &out); code != 99 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	env, _ := os.ReadFile(filepath.Join(q, "envelope"))
	if got, _ := qq.ParseEnvelope(env); got == nil || strings.Join(got.Recipients, ",") != "alice,carol@example.net,erin@example.net" {
		t.Fatalf("envelope %q", env)
	}
	for _, w := range []string{
		inc + `:2: syntax error in :include: file, target skipped: bad address "john smith"`,
		inc + `:3: syntax error in :include: file, target skipped: bad address "<dave@example.net": '<' without '>' (#5.2.4)`,
		inc + `:5: syntax error in :include: file, target skipped: bad address "frank@example.net>": '>' without '<' (#5.2.4)`,
		inc + `:5: syntax error in :include: file, target skipped: unterminated quote (#5.2.4)`,
	} {
		if !strings.Contains(out.String(), "fastforward: warning: "+w) {
			t.Errorf("no warning %q in %q", w, out.String())
		}
	}

	// Nothing left: a bounce that names the file and the line.
	os.Remove(filepath.Join(q, "envelope"))
	localEnv(t, "alias", "bad", "bad")
	out.Reset()
	code := FastforwardMain(root, nil, msgFile(t, "x\n"), &out)
	if want := bad + `:3: syntax error in :include: file, target skipped: bad address "john smith"`; code != 100 || !strings.Contains(out.String(), want) {
		t.Fatalf("exit %d %q, want 100 and %q", code, out.String(), want)
	}
	if _, err := os.Stat(filepath.Join(q, "envelope")); err == nil {
		t.Error("something was queued")
	}
}

// TestDotForwardSyntaxError: the .forward itself stays strict, as
// dot-forward(8) documents and qmail's dot-forward did: a syntax error
// delivers nothing and bounces, naming .forward and the line; an
// :include: file it names is read as fastforward reads one.
func TestDotForwardSyntaxError(t *testing.T) {
	home := t.TempDir()
	os.Chmod(home, 0o755)
	t.Chdir(home)
	q := capture(t)
	localEnv(t, "alice", "alice", "")
	os.WriteFile(".forward", []byte("# mine\ncarol@example.net,\n  john smith\n"), 0o644)
	var out bytes.Buffer
	code := DotForwardMain(t.TempDir(), []string{".forward"}, msgFile(t, "x\n"), &out)
	if want := `Syntax error in forwarding list: .forward:3: bad address "john smith"`; code != 100 || !strings.HasPrefix(out.String(), want) {
		t.Fatalf("exit %d %q, want 100 and %q", code, out.String(), want)
	}
	if _, err := os.Stat(filepath.Join(q, "envelope")); err == nil {
		t.Error("something was queued")
	}

	inc := filepath.Join(t.TempDir(), "list")
	os.WriteFile(inc, []byte("dave@example.net\njohn smith\n"), 0o644)
	os.WriteFile(".forward", []byte("carol@example.net, :include:"+inc+"\n"), 0o644)
	out.Reset()
	if code := DotForwardMain(t.TempDir(), []string{".forward"}, msgFile(t, "x\n"), &out); code != 99 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	env, _ := os.ReadFile(filepath.Join(q, "envelope"))
	if got, _ := qq.ParseEnvelope(env); got == nil || strings.Join(got.Recipients, ",") != "carol@example.net,dave@example.net" {
		t.Fatalf("envelope %q", env)
	}
	if want := "dot-forward: warning: " + inc + `:2: syntax error in :include: file, target skipped: bad address "john smith"`; !strings.Contains(out.String(), want) {
		t.Errorf("output %q, want %q", out.String(), want)
	}
}

func statGID(t *testing.T, st os.FileInfo) uint32 {
	t.Helper()
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		t.Fatal("no Stat_t")
	}
	return sys.Gid
}
