package forward

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/aliases"
	"github.com/hqmail/hqmail/pkg/cdb"
	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qq"
)

// capture installs a fake qmail-queue that stores message and envelope.
func capture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "qq")
	body := "#!/bin/sh\ncat > " + dir + "/message\ncat <&1 > " + dir + "/envelope\nexit 0\n"
	if err := os.WriteFile(script, []byte(body), 0755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("QMAILQUEUE", script)
	return dir
}

func localEnv(t *testing.T, user, local, ext string) {
	t.Setenv("USER", user)
	t.Setenv("LOCAL", local)
	t.Setenv("EXT", ext)
	t.Setenv("HOST", "example.org")
	t.Setenv("SENDER", "bob@example.net")
	t.Setenv("NEWSENDER", "bob@example.net")
	t.Setenv("DTLINE", "Delivered-To: "+local+"@example.org\n")
	t.Setenv("RPLINE", "Return-Path: <bob@example.net>\n")
	t.Setenv("UFLINE", "From bob@example.net Thu Nov 26 03:22:00 2026\n")
}

func msgFile(t *testing.T, body string) *os.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), "msg")
	os.WriteFile(p, []byte(body), 0600)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestParseListAndExpand(t *testing.T) {
	inc := filepath.Join(t.TempDir(), "team")
	os.WriteFile(inc, []byte("# team\ncarol, dave@example.net\n"), 0644)
	ts, err := ParseList("alice, \"|prog a, b\"\n# comment\n/var/mail/x, /srv/Maildir/\n\\me\n:include:" + inc + "\n")
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{User: "me", Host: "example.org"}
	p, err := Expand(ts, env)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.Forwards, ",") != "alice,carol,dave@example.net" || !p.Here ||
		strings.Join(p.Programs, ",") != "prog a, b" || strings.Join(p.Files, ",") != "/var/mail/x" ||
		strings.Join(p.Maildirs, ",") != "/srv/Maildir/" {
		t.Fatalf("plan %+v", p)
	}
}

// TestExpandOnceEach: a target named twice (in any case, bare or with
// the host, through an :include: file) is delivered once; /dev/null keeps
// nothing; the user at any local domain is "here".
func TestExpandOnceEach(t *testing.T) {
	inc := filepath.Join(t.TempDir(), "inc")
	os.WriteFile(inc, []byte("fwda\n/var/mail/x\n"), 0o644)
	// The mail arrived for example.org; bare names are qualified with
	// mx.example.org (me), also local: all of them are fwda's mailbox.
	env := &Env{User: "me", Host: "example.org", NoAtHost: "mx.example.org",
		Locals: map[string]bool{"example.org": true, "other.example": true, "mx.example.org": true}}
	p, err := Expand([]string{"fwda", "FWDA", "fwda@example.org", `\fwda`, ":include:" + inc, "/var/mail/x", "/dev/null",
		"me@other.example", "bob@else.example", "fwda@MX.example.org", "fwda@other.example"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.Forwards, ",") != "fwda,bob@else.example" || strings.Join(p.Files, ",") != "/var/mail/x" || !p.Here {
		t.Fatalf("plan %+v", p)
	}
}

// TestIncludeTooLarge: a list over the bound defers; it is never cut.
func TestIncludeTooLarge(t *testing.T) {
	old := aliases.MaxIncludeSize
	aliases.MaxIncludeSize = 100
	t.Cleanup(func() { aliases.MaxIncludeSize = old })
	inc := filepath.Join(t.TempDir(), "inc")
	os.WriteFile(inc, []byte(strings.Repeat("member@example.org\n", 6)), 0o644)
	if _, err := Expand([]string{":include:" + inc}, &Env{}); err == nil || qerr.IsPerm(err) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err %v, want a temporary failure", err)
	}
}

func TestIncludeProblemsAreTemporary(t *testing.T) {
	dir := t.TempDir()
	ww := filepath.Join(dir, "ww")
	os.WriteFile(ww, []byte("a\n"), 0644)
	os.Chmod(ww, 0666)
	for _, path := range []string{filepath.Join(dir, "missing"), ww} {
		_, err := Expand([]string{":include:" + path}, &Env{})
		if err == nil || qerr.IsPerm(err) {
			t.Errorf("include %s: err %v, want temporary", path, err)
		}
	}
	if _, err := ParseList("\"unterminated\n"); !qerr.IsPerm(err) {
		t.Errorf("syntax error should be permanent, got %v", err)
	}
}

func TestDotForward(t *testing.T) {
	home := t.TempDir()
	os.Chmod(home, 0755)
	t.Chdir(home)
	q := capture(t)
	localEnv(t, "alice", "alice", "")
	var out bytes.Buffer

	// No .forward: go on with the next line.
	if code := DotForwardMain(t.TempDir(), []string{".forward"}, msgFile(t, "Subject: x\n\nhi\n"), &out); code != 0 {
		t.Fatalf("no .forward: exit %d %s", code, out.String())
	}
	os.WriteFile(".forward", []byte("carol@example.net, /"+strings.TrimPrefix(home, "/")+"/saved, \\alice\n"), 0644)
	if code := DotForwardMain(t.TempDir(), []string{".forward"}, msgFile(t, "Subject: x\n\nhi\n"), &out); code != 0 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	env, _ := os.ReadFile(filepath.Join(q, "envelope"))
	got, err := qq.ParseEnvelope(env)
	if err != nil || got.Sender != "bob@example.net" || strings.Join(got.Recipients, ",") != "carol@example.net" {
		t.Fatalf("envelope %q %v", env, err)
	}
	msg, _ := os.ReadFile(filepath.Join(q, "message"))
	if string(msg) != "Delivered-To: alice@example.org\nSubject: x\n\nhi\n" {
		t.Fatalf("forwarded message %q", msg)
	}
	saved, _ := os.ReadFile(filepath.Join(home, "saved"))
	if !strings.HasPrefix(string(saved), "From bob@example.net") || !strings.Contains(string(saved), "\nhi\n\n") {
		t.Fatalf("mbox %q", saved)
	}
	// Without \alice the copy is not kept: exit 99.
	os.WriteFile(".forward", []byte("carol@example.net\n"), 0644)
	if code := DotForwardMain(t.TempDir(), []string{".forward"}, msgFile(t, "x\n"), &out); code != 99 {
		t.Fatalf("exit %d", code)
	}
	// A .forward writable by others is refused, temporarily.
	os.Chmod(".forward", 0666)
	if code := DotForwardMain(t.TempDir(), []string{".forward"}, msgFile(t, "x\n"), &out); code != 111 {
		t.Fatalf("world-writable .forward: exit %d", code)
	}
}

// TestDotForwardTooLarge: a .forward of gigabytes (sparse, as truncate
// makes one) defers the delivery with a reason, and is not read into
// memory.
func TestDotForwardTooLarge(t *testing.T) {
	home := t.TempDir()
	os.Chmod(home, 0755)
	t.Chdir(home)
	capture(t)
	localEnv(t, "alice", "alice", "")
	f, err := os.Create(".forward")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(10 << 30); err != nil {
		t.Skipf("no sparse file of 10 GB here: %v", err)
	}
	f.Close()
	var out bytes.Buffer
	code := DotForwardMain(t.TempDir(), []string{".forward"}, msgFile(t, "x\n"), &out)
	if code != 111 || !strings.Contains(out.String(), ".forward is larger than 64 MB") {
		t.Fatalf("exit %d, output %q", code, out.String())
	}
}

func TestFastforward(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0755)
	as, errs := aliases.Parse(strings.NewReader("staff: alice, bob\nowner-staff: carol\nlog: \"|cat > "+root+"/prog.out\"\n"), "a")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if err := cdb.WriteFile(filepath.Join(root, aliases.DBFile), 0644, aliases.Records(as, "a")); err != nil {
		t.Fatal(err)
	}
	q := capture(t)
	var out bytes.Buffer
	localEnv(t, "alias", "staff", "staff")
	if code := FastforwardMain(root, nil, msgFile(t, "hello\n"), &out); code != 99 {
		t.Fatalf("staff: exit %d %s", code, out.String())
	}
	env, _ := os.ReadFile(filepath.Join(q, "envelope"))
	got, _ := qq.ParseEnvelope(env)
	if got == nil || got.Sender != "owner-staff@example.org" || strings.Join(got.Recipients, ",") != "alice,bob" {
		t.Fatalf("envelope %q", env)
	}
	localEnv(t, "alias", "log", "log")
	if code := FastforwardMain(root, nil, msgFile(t, "to the program\n"), &out); code != 99 {
		t.Fatalf("log: exit %d %s", code, out.String())
	}
	if b, _ := os.ReadFile(filepath.Join(root, "prog.out")); string(b) != aliceUF+aliceRP+"Delivered-To: log@example.org\n"+"to the program\n" {
		t.Fatalf("program got %q", b)
	}
	localEnv(t, "alias", "nosuch", "nosuch")
	out.Reset()
	if code := FastforwardMain(root, nil, msgFile(t, "x\n"), &out); code != 100 || !strings.Contains(out.String(), "no mailbox here by that name") {
		t.Fatalf("unknown: exit %d %q", code, out.String())
	}
	localEnv(t, "alias", "root", "root")
	if code := FastforwardMain(root, nil, msgFile(t, "x\n"), &out); code != 0 {
		t.Fatalf("root without alias should fall through: exit %d", code)
	}
	// A database that cannot be opened defers, and says why.
	db := filepath.Join(root, aliases.DBFile)
	os.Remove(db)
	os.Mkdir(db, 0o755)
	out.Reset()
	if code := FastforwardMain(root, nil, msgFile(t, "x\n"), &out); code != 111 || !strings.Contains(out.String(), "Unable to open "+db+": ") {
		t.Fatalf("unopenable database: exit %d %q", code, out.String())
	}
}

// A NUL in a .forward or :include: target is a syntax error (permanent,
// so the mail bounces at once): passed on, "a\x00Tb" gave the envelope
// one more recipient, and any other NUL made qmail-queue fail
// temporarily until queuelifetime.
func TestParseListRefusesControlBytes(t *testing.T) {
	for _, list := range []string{
		"friend@example.org\x00Tinjected@evil.example, other@example.org\n",
		"friend@example.org\x00junk\n",
		"\"|prog\x00arg\"\n",
		"\"a@b\rc@d\"\n",
	} {
		_, err := ParseList(list)
		if err == nil || !qerr.IsPerm(err) || !strings.HasPrefix(err.Error(), "Syntax error in forwarding list: line 1: NUL, CR or LF in target ") ||
			!strings.HasSuffix(err.Error(), ". (#5.2.4)") {
			t.Errorf("ParseList(%q): err %v, want a permanent syntax error", list, err)
		}
	}
	// In an :include: file the target is skipped (nothing is left here:
	// a bounce naming the line).
	inc := filepath.Join(t.TempDir(), "team")
	os.WriteFile(inc, []byte("carol@example.net\x00Tinjected@evil.example\n"), 0644)
	if _, err := Expand([]string{":include:" + inc}, &Env{}); err == nil || !qerr.IsPerm(err) ||
		!strings.HasPrefix(err.Error(), inc+":1: syntax error in :include: file, target skipped: NUL, CR or LF in target ") {
		t.Errorf("include with NUL: err %v, want a permanent syntax error", err)
	}
}

func TestDotForwardRefusesNUL(t *testing.T) {
	home := t.TempDir()
	os.Chmod(home, 0755)
	t.Chdir(home)
	q := capture(t)
	localEnv(t, "alice", "alice", "")
	for _, fwd := range []string{
		"friend@example.org\x00Tinjected@evil.example, other@example.org\n",
		"friend@example.org\x00junk, other@example.org\n",
	} {
		os.Remove(filepath.Join(q, "envelope"))
		os.WriteFile(".forward", []byte(fwd), 0644)
		var out bytes.Buffer
		code := DotForwardMain(t.TempDir(), []string{".forward"}, msgFile(t, "Subject: x\n\nhi\n"), &out)
		if code != 100 || !strings.HasPrefix(out.String(), "Syntax error in forwarding list: ") {
			t.Errorf(".forward %q: exit %d %q, want 100 and a syntax error", fwd, code, out.String())
		}
		if env, err := os.ReadFile(filepath.Join(q, "envelope")); err == nil {
			t.Errorf(".forward %q: queued envelope %q", fwd, env)
		}
	}
}

// strangerFile makes path belong to a uid that is neither root nor the
// delivering user: as root it is given to uid 65534; otherwise the
// delivering user is made another uid than the file's owner.
func strangerFile(t *testing.T, path string) int {
	t.Helper()
	if os.Geteuid() == 0 {
		if err := os.Chown(path, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		return 65534
	}
	me := os.Geteuid()
	old := geteuid
	geteuid = func() int { return me + 1 }
	t.Cleanup(func() { geteuid = old })
	return me
}

// TestIncludeOwnerProgramsRefused: programs and files named in an
// :include: file that belongs to neither root nor the delivering user are
// left out, each with a warning naming the file and its owner; the
// addresses of the file are still forwarded. (A list file kept by another
// user ran its "|command" lines as the alias user, and appended the
// message to ~alias/.qmail-default.)
func TestIncludeOwnerProgramsRefused(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	pwned := filepath.Join(dir, "pwned.txt")
	dotq := filepath.Join(dir, ".qmail-default")
	inc := filepath.Join(dir, "staff.txt")
	os.WriteFile(inc, []byte("carol@example.net\n|id > "+pwned+"\n"+dotq+"\n"+dir+"/Maildir/\n/dev/null\n"), 0o644)
	uid := strangerFile(t, inc)
	as, errs := aliases.Parse(strings.NewReader("staff: alice, :include:"+inc+"\nprogs: :include:"+inc+"\n"), "a")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if err := cdb.WriteFile(filepath.Join(root, aliases.DBFile), 0o644, aliases.Records(as, "a")); err != nil {
		t.Fatal(err)
	}
	q := capture(t)
	localEnv(t, "alias", "staff", "staff")
	var out bytes.Buffer
	if code := FastforwardMain(root, nil, msgFile(t, "Subject: x\n\n|echo body\n"), &out); code != 99 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	for _, p := range []string{pwned, dotq, filepath.Join(dir, "Maildir")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s was written (%v): a program or file of another user's :include: ran", p, err)
		}
	}
	env, _ := os.ReadFile(filepath.Join(q, "envelope"))
	got, _ := qq.ParseEnvelope(env)
	if got == nil || strings.Join(got.Recipients, ",") != "alice,carol@example.net" {
		t.Fatalf("envelope %q: the addresses of the file should still be forwarded", env)
	}
	want := fmt.Sprintf("program and file targets in :include: %s are ignored: it belongs to uid %d, not to root or the delivering user (#5.7.1)", inc, uid)
	for _, tg := range []string{"|id > " + pwned, dotq, dir + "/Maildir/"} {
		if !strings.Contains(out.String(), fmt.Sprintf("fastforward: warning: %q skipped: %s\n", tg, want)) {
			t.Errorf("no warning for %q in %q", tg, out.String())
		}
	}
	if strings.Contains(out.String(), "/dev/null") {
		t.Errorf("/dev/null, which keeps nothing, was refused: %q", out.String())
	}

	// Only programs and files: nothing is left, the mail bounces.
	os.WriteFile(inc, []byte("|id > "+pwned+"\n"), 0o644)
	localEnv(t, "alias", "progs", "progs")
	out.Reset()
	if code := FastforwardMain(root, nil, msgFile(t, "x\n"), &out); code != 100 || !strings.Contains(out.String(), want) {
		t.Fatalf("exit %d %q, want 100 and the refusal", code, out.String())
	}
	if _, err := os.Stat(pwned); !os.IsNotExist(err) {
		t.Errorf("the program ran: %v", err)
	}
}

// TestIncludeOwnerChain: the owner of every :include: file above a target
// counts; root's files and the delivering user's are trusted.
func TestIncludeOwnerChain(t *testing.T) {
	dir := t.TempDir()
	inner := filepath.Join(dir, "inner")
	outer := filepath.Join(dir, "outer")
	os.WriteFile(inner, []byte("|prog\nbob\n"), 0o644)
	os.WriteFile(outer, []byte(":include:"+inner+"\n/var/mail/x\n"), 0o644)
	// Both trusted (the test's own files).
	p, err := Expand([]string{":include:" + outer}, &Env{})
	if err != nil || len(p.Refused) != 0 || strings.Join(p.Programs, ",") != "prog" || strings.Join(p.Files, ",") != "/var/mail/x" {
		t.Fatalf("trusted chain: plan %+v, err %v", p, err)
	}
	// The outer file is another user's: the inner file's program is
	// refused too, though the inner file itself is trusted.
	if os.Geteuid() != 0 {
		t.Skip("the chain case gives files to other uids: needs root (CI runs as root)")
	}
	uid := strangerFile(t, outer)
	p, err = Expand([]string{":include:" + outer}, &Env{})
	if err != nil || len(p.Programs) != 0 || len(p.Files) != 0 || strings.Join(p.Forwards, ",") != "bob" || len(p.Refused) != 2 {
		t.Fatalf("untrusted outer: plan %+v, err %v", p, err)
	}
	if want := fmt.Sprintf(`"|prog" skipped: program and file targets in :include: %s are ignored: it is included from %s, which belongs to uid %d`, inner, outer, uid); !strings.Contains(strings.Join(p.Refused, "\n"), want) {
		t.Errorf("refused %q, want %q", p.Refused, want)
	}
	// A file of the delivering user is trusted.
	os.Chown(outer, 4242, 4242)
	old := geteuid
	geteuid = func() int { return 4242 }
	t.Cleanup(func() { geteuid = old })
	p, err = Expand([]string{":include:" + outer}, &Env{})
	if err != nil || len(p.Refused) != 0 || strings.Join(p.Programs, ",") != "prog" {
		t.Fatalf("the delivering user's file: plan %+v, err %v", p, err)
	}
}

// TestDotForwardIncludeOfAnotherUser: a .forward including a file kept by
// another user takes its addresses, not its programs.
func TestDotForwardIncludeOfAnotherUser(t *testing.T) {
	home := t.TempDir()
	os.Chmod(home, 0o755)
	t.Chdir(home)
	q := capture(t)
	localEnv(t, "alice", "alice", "")
	inc := filepath.Join(t.TempDir(), "bobs-list")
	ran := filepath.Join(home, "ran")
	os.WriteFile(inc, []byte("dave@example.net, \"|touch "+ran+"\"\n"), 0o644)
	strangerFile(t, inc)
	os.WriteFile(".forward", []byte("carol@example.net, :include:"+inc+"\n"), 0o644)
	var out bytes.Buffer
	if code := DotForwardMain(t.TempDir(), []string{".forward"}, msgFile(t, "x\n"), &out); code != 99 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	if _, err := os.Stat(ran); !os.IsNotExist(err) {
		t.Errorf("the other user's program ran: %v", err)
	}
	env, _ := os.ReadFile(filepath.Join(q, "envelope"))
	if got, _ := qq.ParseEnvelope(env); got == nil || strings.Join(got.Recipients, ",") != "carol@example.net,dave@example.net" {
		t.Fatalf("envelope %q", env)
	}
	if !strings.HasPrefix(out.String(), "dot-forward: warning: \"|touch "+ran+"\" skipped: program and file targets in :include: "+inc) {
		t.Errorf("output %q", out.String())
	}
}

// TestForwardRFC5322Forms: a display name, a comment and a quoted local
// part are read as sendmail and Postfix read them; the envelope carries
// the quoted local part without quotes (qmail-remote quotes it again).
func TestForwardRFC5322Forms(t *testing.T) {
	ts, err := ParseList("Bob <bob@example.com>, joe@example.com (Joe Admin)\n\"joe smith\"@example.com, (Jane) \"Doe, Jane\" <jane@example.com>\n")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Expand(ts, &Env{User: "me", Host: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(p.Forwards, ","); got != "bob@example.com,joe@example.com,joe smith@example.com,jane@example.com" {
		t.Fatalf("forwards %q", got)
	}
	// The same address quoted and not is one target.
	p, err = Expand([]string{`"joe.smith"@example.com`, "joe.smith@example.com", `"a@b"@example.com`}, &Env{})
	if err != nil || strings.Join(p.Forwards, "|") != "joe.smith@example.com|a@b@example.com" {
		t.Fatalf("plan %+v %v", p, err)
	}
}

// TestParseListBOM: a byte order mark at the start of a .forward is no
// part of its first target (reg14 QA: forwarded to "___root@localhost").
func TestParseListBOM(t *testing.T) {
	ts, err := ParseList("\ufeffroot@localhost\n")
	if err != nil || len(ts) != 1 || ts[0] != "root@localhost" {
		t.Fatalf("%q %v", ts, err)
	}
}

// TestDotForwardUsage: every call but "dot-forward file" prints the usage
// on stdout (the delivery report) and exits 100, -h and --help included,
// as fastforward does: an exit 0 would tell qmail-local to go on with the
// next line, as if there were no .forward.
func TestDotForwardUsage(t *testing.T) {
	t.Chdir(t.TempDir())
	const want = "usage: dot-forward file (run from a .qmail file) (#5.3.5)\n"
	for _, args := range [][]string{{"-h"}, {"--help"}, nil, {"-x"}, {"--", ".forward"}, {".forward", "extra"}} {
		var out bytes.Buffer
		if code := DotForwardMain(t.TempDir(), args, msgFile(t, "x\n"), &out); code != 100 || out.String() != want {
			t.Errorf("%q: exit %d, stdout %q; want 100 and %q", args, code, out.String(), want)
		}
	}
	var out bytes.Buffer
	if code := FastforwardMain(t.TempDir(), []string{"-h"}, msgFile(t, "x\n"), &out); code != 100 || !strings.HasPrefix(out.String(), "usage: fastforward ") {
		t.Errorf("fastforward -h: exit %d, stdout %q; dot-forward -h follows it", code, out.String())
	}
}
