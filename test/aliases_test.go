package test

// /etc/aliases and ~/.forward end to end (issue: a full sendmail
// replacement): an aliases file with every syntax form, compiled by
// newaliases and used by a running system through fastforward in the alias
// home; a .forward with each form through dot-forward as the default
// delivery; mail to root reaching the aliased person; an alias loop stopped
// with a clear bounce.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/test/harness"
)

// aliasWrite writes a file in the alias home owned by the alias user.
func aliasWrite(t *testing.T, tr *harness.Tree, name, content string, mode os.FileMode) string {
	t.Helper()
	p := tr.Path("alias", name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	ids := tr.IDs()
	os.Chown(p, ids.Alias.UID, ids.Alias.GID)
	return p
}

// maildirAt makes an empty Maildir owned by uid/gid.
func maildirAt(t *testing.T, dir string, uid, gid int) {
	t.Helper()
	for _, sub := range []string{"", "cur", "new", "tmp"} {
		p := filepath.Join(dir, sub)
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chown(p, uid, gid)
	}
}

func waitFile(t *testing.T, path, sub string) string {
	t.Helper()
	var got string
	if !harness.Eventually(30*time.Second, func() bool {
		b, _ := os.ReadFile(path)
		got = string(b)
		return strings.Contains(got, sub)
	}) {
		t.Fatalf("%s does not contain %q within 30s; it holds:\n%s", path, sub, got)
	}
	return got
}

func TestAliasesEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	tr := harness.Install(t)
	ids := tr.IDs()
	a := ids.Alias
	// People are Maildirs in the alias home, reached through .qmail-NAME.
	for _, p := range []string{"alice", "bob", "carol", "dave", "box"} {
		maildirAt(t, tr.Path("alias", p), a.UID, a.GID)
		aliasWrite(t, tr, ".qmail-"+p, "./"+p+"/\n", 0o644)
	}
	// The installed ~alias/.qmail-default runs fastforward for every other
	// local part, root included.
	if b, _ := os.ReadFile(tr.Path("alias", ".qmail-default")); !strings.Contains(string(b), "fastforward") {
		t.Fatalf("installed .qmail-default does not run fastforward: %q", b)
	}
	maildirAt(t, tr.Path("alias", "listdir"), a.UID, a.GID)
	team := tr.Path("etc", "team.list")
	os.WriteFile(team, []byte("# the team\ncarol\ndave\n"), 0o644)
	src := tr.Path("etc", "aliases")
	aliasesFile := fmt.Sprintf(`# every form
root: alice
Postmaster: root
staff: alice, bob,
	<carol@testhost.example>
owner-staff: dave
list: "|cat > %[1]s/list.out", %[1]s/list.mbox, %[1]s/listdir/
team: :include:%[2]s
loop1: loop2
loop2: loop1
`, tr.Path("alias"), team)
	os.WriteFile(src, []byte(aliasesFile), 0o644)
	tr.Control("aliases", src+"\n")
	if out, code := tr.Run(t, nil, "newaliases"); code != 0 || !strings.Contains(out, "8 aliases compiled") {
		t.Fatalf("newaliases: exit %d\n%s", code, out)
	}
	sys := tr.Start(t, "./Maildir/")

	send := func(rcpt, subject string) {
		t.Helper()
		msg := fmt.Sprintf("From: box@testhost.example\nTo: %s\nSubject: %s\n\n%s body\n", rcpt, subject, subject)
		if err := tr.Queue(t, "box@testhost.example", []string{rcpt}, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	send("root@testhost.example", "to root")
	m := harness.WaitMaildir(t, 30*time.Second, tr.Path("alias", "alice"), 1)
	if !strings.Contains(string(m[0]), "Subject: to root\n") || !strings.Contains(string(m[0]), "Delivered-To: root@testhost.example\n") {
		t.Fatalf("root's mail at alice:\n%s", m[0])
	}

	send("staff@testhost.example", "to staff")
	for _, p := range []string{"bob", "carol"} {
		got := harness.WaitMaildir(t, 30*time.Second, tr.Path("alias", p), 1)
		// Bounces of a list go to its owner.
		if !strings.HasPrefix(string(got[0]), "Return-Path: <owner-staff@testhost.example>\n") {
			t.Errorf("%s got:\n%s", p, got[0])
		}
	}
	harness.WaitMaildir(t, 30*time.Second, tr.Path("alias", "alice"), 2)

	send("list@testhost.example", "to list")
	waitFile(t, tr.Path("alias", "list.out"), "to list body\n")
	mb := waitFile(t, tr.Path("alias", "list.mbox"), "to list body\n")
	if !strings.HasPrefix(mb, "From box@testhost.example ") || !strings.Contains(mb, "Delivered-To: list@testhost.example\n") {
		t.Errorf("mbox:\n%s", mb)
	}
	harness.WaitMaildir(t, 30*time.Second, tr.Path("alias", "listdir"), 1)

	send("team@testhost.example", "to team")
	harness.WaitMaildir(t, 30*time.Second, tr.Path("alias", "carol"), 2)
	harness.WaitMaildir(t, 30*time.Second, tr.Path("alias", "dave"), 1)

	// An alias loop comes back to an address it passed: qmail-local bounces
	// it, and the bounce names the loop.
	send("loop1@testhost.example", "looping")
	bounce := waitFor(t, tr.Path("alias", "box"), "This message is looping")
	if !strings.Contains(bounce, "Subject: failure notice\n") {
		t.Errorf("loop bounce:\n%s", bounce)
	}
	// An unknown name bounces with qmail's text.
	send("nosuch@testhost.example", "unknown")
	waitFor(t, tr.Path("alias", "box"), "Sorry, no mailbox here by that name. (#5.1.1)")
	_ = sys
}

// waitFor waits until a message containing sub is in the Maildir dir.
func waitFor(t *testing.T, dir, sub string) string {
	t.Helper()
	var found string
	if !harness.Eventually(30*time.Second, func() bool {
		for _, m := range harness.MaildirMessages(t, dir) {
			if strings.Contains(string(m), sub) {
				found = string(m)
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no message with %q in %s within 30s", sub, dir)
	}
	return found
}

func TestDotForwardEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	tr := harness.Install(t)
	ids := tr.IDs()
	a := ids.Alias
	// erin is a user with a home of her own (uid of the alias user in a
	// tree installed by an ordinary user, a uid of her own as root).
	uid, gid := a.UID, a.GID
	if os.Geteuid() == 0 {
		uid, gid = harness.TestUIDBase+20, a.GID
	}
	home := tr.Path("home-erin")
	maildirAt(t, filepath.Join(home, "Maildir"), uid, gid)
	os.Chown(home, uid, gid)
	os.Chmod(home, 0o755)
	assign, _ := os.ReadFile(tr.Path("users", "assign"))
	entry := fmt.Sprintf("=erin:erin:%d:%d:%s:::\n", uid, gid, home)
	os.WriteFile(tr.Path("users", "assign"), []byte(entry+string(assign)), 0o644)
	if out, code := tr.Run(t, nil, "qmail-newu"); code != 0 {
		t.Fatalf("qmail-newu: %d %s", code, out)
	}
	maildirAt(t, tr.Path("alias", "frank"), a.UID, a.GID)
	aliasWrite(t, tr, ".qmail-frank", "./frank/\n", 0o644)
	fw := fmt.Sprintf("# erin's forwarding\nfrank@testhost.example, %[1]s/saved.mbox\n\"|cat > %[1]s/prog.out\"\n\\erin\n", home)
	fwPath := filepath.Join(home, ".forward")
	os.WriteFile(fwPath, []byte(fw), 0o644)
	os.Chown(fwPath, uid, gid)
	sys := tr.Start(t, "|"+tr.Bin("dot-forward")+" .forward\n./Maildir/\n")
	msg := "From: someone@testhost.example\nSubject: for erin\n\nhello erin\n"
	if err := tr.Queue(t, "someone@testhost.example", []string{"erin@testhost.example"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	// Forwarded, saved to an mbox, piped, and (\erin) kept in her Maildir.
	got := harness.WaitMaildir(t, 30*time.Second, tr.Path("alias", "frank"), 1)
	if !strings.Contains(string(got[0]), "Delivered-To: erin@testhost.example\n") {
		t.Errorf("forwarded copy:\n%s", got[0])
	}
	waitFile(t, filepath.Join(home, "saved.mbox"), "hello erin\n")
	waitFile(t, filepath.Join(home, "prog.out"), "hello erin\n")
	harness.WaitMaildir(t, 30*time.Second, filepath.Join(home, "Maildir"), 1)

	// A .forward writable by others defers: the mail stays queued.
	os.Chmod(fwPath, 0o666)
	if err := tr.Queue(t, "someone@testhost.example", []string{"erin@testhost.example"}, []byte("Subject: second\n\nx\n")); err != nil {
		t.Fatal(err)
	}
	sys.WaitLog(t, "deferral: Uh-oh:_.forward_is_writable_by_others._(#4.7.0)", 30*time.Second)
	if out, _ := tr.Run(t, nil, "qmail-qread"); !strings.Contains(out, "\tlocal\terin@testhost.example") {
		t.Fatalf("the deferred message is not queued:\n%s", out)
	}
}

// TestAliasesIncludeOfAnotherOwner: an :include: list kept by another user
// (not root, not the alias user) gives its addresses but not its programs
// or files. Before, its "|id > ..." line ran as the alias user and a line
// naming ~alias/.qmail-default appended the message (with a "|echo" line
// in its body) to that file, which then ran for every later delivery.
// The skipped lines are logged; the list's members get the mail.
func TestAliasesIncludeOfAnotherOwner(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: in a tree installed by an ordinary user every file is the delivering user's")
	}
	tr := harness.Install(t)
	a := tr.IDs().Alias
	for _, p := range []string{"carol", "dave"} {
		maildirAt(t, tr.Path("alias", p), a.UID, a.GID)
		aliasWrite(t, tr, ".qmail-"+p, "./"+p+"/\n", 0o644)
	}
	dotq := tr.Path("alias", ".qmail-default")
	before, err := os.ReadFile(dotq)
	if err != nil {
		t.Fatal(err)
	}
	// The list lives in a directory anyone can read; its owner is a uid
	// of its own.
	listDir := tr.Path("lists")
	os.Mkdir(listDir, 0o755)
	pwned := filepath.Join(listDir, "pwned.txt")
	os.Chmod(listDir, 0o777) // where "id" would have written as alias
	staff := filepath.Join(listDir, "staff.txt")
	os.WriteFile(staff, []byte("carol\n|id > "+pwned+"\n"+dotq+"\n"), 0o644)
	owner := harness.TestUIDBase + 21
	if err := os.Chown(staff, owner, owner); err != nil {
		t.Fatal(err)
	}
	src := tr.Path("etc", "aliases")
	os.WriteFile(src, []byte("staff: dave, :include:"+staff+"\n"), 0o644)
	if out, code := tr.Run(t, nil, "newaliases", "-f", src); code != 0 {
		t.Fatalf("newaliases: exit %d\n%s", code, out)
	}
	sys := tr.Start(t, "./Maildir/")
	msg := "From: box@testhost.example\nSubject: to staff\n\n|echo pwned\nbody\n"
	if err := tr.Queue(t, "box@testhost.example", []string{"staff@testhost.example"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	harness.WaitMaildir(t, 30*time.Second, tr.Path("alias", "carol"), 1)
	harness.WaitMaildir(t, 30*time.Second, tr.Path("alias", "dave"), 1)
	sys.WaitLog(t, fmt.Sprintf("fastforward:_warning:_\"|id_>_%s\"_skipped:_program_and_file_targets_in_:include:_%s_are_ignored:_it_belongs_to_uid_%d,_not_to_root_or_the_delivering_user_(#5.7.1)/",
		strings.ReplaceAll(pwned, " ", "_"), staff, owner), 30*time.Second)
	if !strings.Contains(sys.Log(), fmt.Sprintf("warning:_\"%s\"_skipped", dotq)) {
		t.Errorf("no warning for the file target in the log:\n%s", sys.Log())
	}
	if _, err := os.Stat(pwned); !os.IsNotExist(err) {
		t.Errorf("the list's program ran: %v", err)
	}
	if after, _ := os.ReadFile(dotq); string(after) != string(before) {
		t.Errorf("~alias/.qmail-default was written:\n%s", after)
	}
}

// TestAliasesRFC5322Forms: Postfix-style targets compile and deliver: a
// display name, a comment, and a quoted local part, which reaches the
// local part "joe smith" (not "\"joe smith\"").
func TestAliasesRFC5322Forms(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	tr := harness.Install(t)
	a := tr.IDs().Alias
	for _, p := range []string{"bob", "joe", "jane"} {
		maildirAt(t, tr.Path("alias", p), a.UID, a.GID)
	}
	aliasWrite(t, tr, ".qmail-bob", "./bob/\n", 0o644)
	aliasWrite(t, tr, ".qmail-jane", "./jane/\n", 0o644)
	aliasWrite(t, tr, ".qmail-joe smith", "./joe/\n", 0o644)
	src := tr.Path("etc", "aliases")
	os.WriteFile(src, []byte("team: Bob <bob@testhost.example>, jane@testhost.example (Jane, Admin),\n  \"joe smith\"@testhost.example\n"), 0o644)
	if out, code := tr.Run(t, nil, "newaliases", "-f", src); code != 0 || !strings.Contains(out, "1 aliases compiled") {
		t.Fatalf("newaliases: exit %d\n%s", code, out)
	}
	tr.Start(t, "./Maildir/")
	if err := tr.Queue(t, "box@testhost.example", []string{"team@testhost.example"}, []byte("Subject: team\n\nhi\n")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"bob", "jane", "joe"} {
		harness.WaitMaildir(t, 30*time.Second, tr.Path("alias", p), 1)
	}
}

// TestAliasesIncludeGroupWritableAndTypos: an :include: list its group
// can write gives its addresses but not its programs, though root owns
// it (any member of the group could run commands as alias); a typo in a
// list skips that target only, logged with file:line, and the other
// members get the mail; a list with nothing good left bounces with the
// file and line.
func TestAliasesIncludeGroupWritableAndTypos(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	tr := harness.Install(t)
	a := tr.IDs().Alias
	for _, p := range []string{"carol", "dave", "erin", "box"} {
		maildirAt(t, tr.Path("alias", p), a.UID, a.GID)
		aliasWrite(t, tr, ".qmail-"+p, "./"+p+"/\n", 0o644)
	}
	listDir := tr.Path("lists")
	os.Mkdir(listDir, 0o777) // where "id" would have written as alias
	os.Chmod(listDir, 0o777)
	pwned := filepath.Join(listDir, "pwned.txt")
	staff := filepath.Join(listDir, "staff.txt")
	os.WriteFile(staff, []byte("carol\n|id > "+pwned+"\n"), 0o644)
	if os.Geteuid() == 0 {
		// Root's list, writable by a group of its own.
		if err := os.Chown(staff, 0, harness.TestUIDBase+22); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(staff, 0o664)
	var gid uint32
	if st, err := os.Stat(staff); err == nil {
		gid = st.Sys().(*syscall.Stat_t).Gid
	}
	team := filepath.Join(listDir, "team.txt")
	os.WriteFile(team, []byte("# the team\ndave, john smith\n<qat3@testhost.example\nerin\n"), 0o644)
	typos := filepath.Join(listDir, "typos.txt")
	os.WriteFile(typos, []byte("john smith\n"), 0o644)
	src := tr.Path("etc", "aliases")
	os.WriteFile(src, []byte("staff: :include:"+staff+"\nteam: :include:"+team+"\ntypos: :include:"+typos+"\n"), 0o644)
	if out, code := tr.Run(t, nil, "newaliases", "-f", src); code != 0 {
		t.Fatalf("newaliases: exit %d\n%s", code, out)
	}
	sys := tr.Start(t, "./Maildir/")
	send := func(rcpt string) {
		t.Helper()
		msg := "From: box@testhost.example\nSubject: to " + rcpt + "\n\nbody\n"
		if err := tr.Queue(t, "box@testhost.example", []string{rcpt + "@testhost.example"}, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	send("staff")
	harness.WaitMaildir(t, 30*time.Second, tr.Path("alias", "carol"), 1)
	sys.WaitLog(t, fmt.Sprintf("fastforward:_warning:_\"|id_>_%s\"_skipped:_program_and_file_targets_in_:include:_%s_are_ignored:_it_is_writable_by_its_group_(gid_%d)_(#5.7.1)/",
		strings.ReplaceAll(pwned, " ", "_"), staff, gid), 30*time.Second)
	if _, err := os.Stat(pwned); !os.IsNotExist(err) {
		t.Errorf("the group-writable list's program ran: %v", err)
	}

	send("team")
	harness.WaitMaildir(t, 30*time.Second, tr.Path("alias", "dave"), 1)
	harness.WaitMaildir(t, 30*time.Second, tr.Path("alias", "erin"), 1)
	sys.WaitLog(t, "fastforward:_warning:_"+team+":2:_syntax_error_in_:include:_file,_target_skipped:_bad_address_\"john_smith\"", 30*time.Second)
	sys.WaitLog(t, "fastforward:_warning:_"+team+":3:_syntax_error_in_:include:_file,_target_skipped:_bad_address_\"<qat3@testhost.example\":_'<'_without_'>'_(#5.2.4)", 30*time.Second)

	send("typos")
	bounce := waitFor(t, tr.Path("alias", "box"), typos+":1: syntax error in :include: file, target skipped: bad address \"john smith\"")
	if !strings.Contains(bounce, "Subject: failure notice\n") {
		t.Errorf("bounce:\n%s", bounce)
	}
}

// TestAliasesProgramExit99: an alias's program that exits 99 (delivered,
// as qmail-command(8) says; condredirect does after forwarding) has
// delivered: the alias's other targets get the message and it is not
// retried. It was a temporary failure: the addresses after it got
// nothing and each retry ran the program again.
func TestAliasesProgramExit99(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	tr := harness.Install(t)
	a := tr.IDs().Alias
	maildirAt(t, tr.Path("alias", "carol"), a.UID, a.GID)
	aliasWrite(t, tr, ".qmail-carol", "./carol/\n", 0o644)
	ran := tr.Path("alias", "ran.txt")
	src := tr.Path("etc", "aliases")
	os.WriteFile(src, []byte("cond: \"|echo once >> "+ran+"; exit 99\", carol@testhost.example\n"), 0o644)
	if out, code := tr.Run(t, nil, "newaliases", "-f", src); code != 0 {
		t.Fatalf("newaliases: exit %d\n%s", code, out)
	}
	sys := tr.Start(t, "./Maildir/")
	if err := tr.Queue(t, "box@testhost.example", []string{"cond@testhost.example"}, []byte("Subject: cond\n\nbody\n")); err != nil {
		t.Fatal(err)
	}
	harness.WaitMaildir(t, 30*time.Second, tr.Path("alias", "carol"), 1)
	sys.WaitLogCount(t, ": success: ", 2, 30*time.Second) // cond, then carol
	if b, _ := os.ReadFile(ran); string(b) != "once\n" {
		t.Errorf("the program ran %q", b)
	}
	if strings.Contains(sys.Log(), "deferral") {
		t.Errorf("a delivery was deferred:\n%s", sys.Log())
	}
}

// TestAliasesIncludeThroughLink: the review's attack on fastforward. The
// owner of a list replaces it with a symbolic link to a file of the
// alias user (an archive mailbox, or a list of alias's): programs and
// files are not taken through another user's link, and a file that
// reads as a mailbox gives nothing at all (a line mailed to the archive
// ran as alias). newaliases warns of both.
func TestAliasesIncludeThroughLink(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: in a tree installed by an ordinary user every file is the delivering user's")
	}
	tr := harness.Install(t)
	a := tr.IDs().Alias
	for _, p := range []string{"carol", "dave", "box"} {
		maildirAt(t, tr.Path("alias", p), a.UID, a.GID)
		aliasWrite(t, tr, ".qmail-"+p, "./"+p+"/\n", 0o644)
	}
	pwned := tr.Path("alias", "pwned")
	os.Mkdir(tr.Path("alias", "archive"), 0o755)
	os.Chown(tr.Path("alias", "archive"), a.UID, a.GID)
	mbox := aliasWrite(t, tr, "archive/list.mbox", "From box@testhost.example Thu Nov 26 03:22:00 2026\nSubject: hi\n\n|touch "+pwned+"\ncarol\n", 0o600)
	plain := aliasWrite(t, tr, "archive/plain", "carol\n|touch "+pwned+"\n", 0o644)
	owner := harness.TestUIDBase + 23
	ownDir := tr.Path("owner")
	os.Mkdir(ownDir, 0o755)
	os.Chown(ownDir, owner, owner)
	big, list := filepath.Join(ownDir, "biglist"), filepath.Join(ownDir, "list")
	for l, target := range map[string]string{big: mbox, list: plain} {
		if err := os.Symlink(target, l); err != nil {
			t.Fatal(err)
		}
		os.Lchown(l, owner, owner)
	}
	src := tr.Path("etc", "aliases")
	os.WriteFile(src, []byte("biglist: :include:"+big+"\nplain: dave, :include:"+list+"\n"), 0o644)
	out, code := tr.Run(t, nil, "newaliases", "-f", src)
	if code != 0 || !strings.Contains(out, `alias "biglist": :include: `+big+" looks like a mailbox") ||
		!strings.Contains(out, `alias "plain": :include: `+list+" is reached through the symbolic link "+list+", which belongs to uid "+fmt.Sprint(owner)) {
		t.Fatalf("newaliases: exit %d\n%s", code, out)
	}
	sys := tr.Start(t, "./Maildir/")
	send := func(rcpt string) {
		t.Helper()
		msg := "From: box@testhost.example\nSubject: to " + rcpt + "\n\nbody\n"
		if err := tr.Queue(t, "box@testhost.example", []string{rcpt + "@testhost.example"}, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	send("plain")
	harness.WaitMaildir(t, 30*time.Second, tr.Path("alias", "carol"), 1)
	harness.WaitMaildir(t, 30*time.Second, tr.Path("alias", "dave"), 1)
	sys.WaitLog(t, "are_ignored:_it_is_reached_through_the_symbolic_link_"+list+",_which_belongs_to_uid_"+fmt.Sprint(owner), 30*time.Second)

	send("biglist")
	bounce := waitFor(t, tr.Path("alias", "box"), big+":1: the :include: file looks like a mailbox or a mail message, not a list")
	if !strings.Contains(bounce, "Subject: failure notice\n") {
		t.Errorf("bounce:\n%s", bounce)
	}
	if _, err := os.Stat(pwned); !os.IsNotExist(err) {
		t.Errorf("a line of the archive ran as alias: %v", err)
	}
	if n := harness.MaildirCount(tr.Path("alias", "carol")); n != 1 {
		t.Errorf("carol has %d messages: the archive's lines were used", n)
	}
}
