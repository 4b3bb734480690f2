package aliases

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
)

// needRoot skips a test that gives files to other uids.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("gives files and links to other uids: needs root (CI runs as root)")
	}
}

// own makes path (not following a link) belong to uid, with mode when
// it is not a link.
func own(t *testing.T, path string, uid int, mode os.FileMode) {
	t.Helper()
	if err := os.Lchown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSymlink == 0 {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReadIncludeTrustPath: programs and files of an :include: file are
// trusted only when every symbolic link on its path and the directory
// holding it belong to root or the deliverer, and that directory is not
// writable by its group or others (unless sticky). The review: bob
// replaced his list with a link to carol's Mailbox, carol's .forward
// included it, and a "|command" line bob had mailed her ran as carol
// (only the owner of the file reached was judged).
func TestReadIncludeTrustPath(t *testing.T) {
	needRoot(t)
	const bob, carol = 4301, 4302
	base := searchableDir(t)
	p := func(s ...string) string { return filepath.Join(append([]string{base}, s...)...) }
	for _, d := range []string{"bob", "carol", "rootdir", "group", "world", "sticky"} {
		os.Mkdir(p(d), 0o755)
	}
	own(t, p("bob"), bob, 0o755)
	own(t, p("carol"), carol, 0o755)
	own(t, p("group"), 0, 0o775)
	own(t, p("world"), 0, 0o777)
	own(t, p("sticky"), 0, os.ModeSticky|0o777)
	list := "dave@example.org\n|/usr/bin/id\n"
	for _, f := range []string{"carol/Mailbox", "bob/carols", "group/l", "world/l", "sticky/l"} {
		os.WriteFile(p(f), []byte(list), 0o600)
		own(t, p(f), carol, 0o600)
	}
	os.WriteFile(p("rootdir/l"), []byte(list), 0o644)
	links := map[string][2]string{ // link: target, owner
		"bob/list":     {"../carol/Mailbox", "bob"},
		"bob/abs":      {p("carol/Mailbox"), "bob"},
		"bob/d":        {"../carol", "bob"},
		"rootdir/link": {p("carol/Mailbox"), "root"},
		"rootdir/hop":  {p("bob/list"), "root"},
	}
	for l, v := range links {
		if err := os.Symlink(v[0], p(l)); err != nil {
			t.Fatal(err)
		}
		uid := 0
		if v[1] == "bob" {
			uid = bob
		}
		own(t, p(l), uid, 0)
	}
	linkWhy := "is reached through the symbolic link " + p("bob/list") + ", which belongs to uid 4301, not to root or the delivering user"
	for _, tc := range []struct{ path, why string }{
		{p("carol/Mailbox"), ""},
		{p("carol/../carol/./Mailbox"), ""},
		{p("rootdir/link"), ""},
		{p("rootdir/l"), ""},
		{p("sticky/l"), ""},
		{p("bob/list"), linkWhy},
		{p("rootdir/hop"), linkWhy},
		{p("bob/abs"), "is reached through the symbolic link " + p("bob/abs") + ", which belongs to uid 4301, not to root or the delivering user"},
		{p("bob/d/Mailbox"), "is reached through the symbolic link " + p("bob/d") + ", which belongs to uid 4301, not to root or the delivering user"},
		{p("bob/carols"), "is in the directory " + p("bob") + ", which belongs to uid 4301, not to root or the delivering user"},
		{p("group/l"), "is in the directory " + p("group") + ", which its group (gid 0) can write"},
		{p("world/l"), "is in the directory " + p("world") + ", which anyone can write (and which is not sticky)"},
	} {
		inc, err := ReadInclude(tc.path, Deliverer{UID: carol})
		if err != nil {
			t.Errorf("%s: %v", tc.path, err)
			continue
		}
		why := ""
		if inc.Distrust != nil {
			why = inc.Distrust.Reason(UIDName, "the delivering user")
		}
		if why != tc.why || strings.Join(inc.Targets, ",") != "dave@example.org,|/usr/bin/id" {
			t.Errorf("%s: targets %q, distrust %q, want %q", tc.path, inc.Targets, why, tc.why)
		}
	}
	// The file's own owner comes first.
	if inc, err := ReadInclude(p("bob/list"), Deliverer{UID: bob}); err != nil || inc.Distrust == nil ||
		inc.Distrust.Reason(UIDName, "D") != "belongs to uid 4302, not to root or D" {
		t.Errorf("bob reading carol's file: %+v %v", inc, err)
	}
	// A loop of links is an error (temporary), not a hang.
	os.Symlink("loop2", p("bob/loop1"))
	os.Symlink("loop1", p("bob/loop2"))
	if _, err := ReadInclude(p("bob/loop1"), Deliverer{UID: bob}); err == nil || qerr.IsPerm(err) ||
		!strings.Contains(err.Error(), "too many levels of symbolic links") {
		t.Errorf("link loop: %v", err)
	}
}

// TestReadIncludeFIFO: a FIFO at an :include: path is refused at once,
// temporarily (opened without O_NONBLOCK it held the delivery, and its
// local delivery slot, until a writer came: for ever).
func TestReadIncludeFIFO(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "list")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := ReadInclude(fifo, Deliverer{UID: os.Geteuid()})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || qerr.IsPerm(err) || !strings.Contains(err.Error(), "is not a regular file") {
			t.Errorf("err %v, want a temporary 'not a regular file'", err)
		}
	case <-time.After(60 * time.Second):
		// Let the blocked open go, so the test ends.
		if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		t.Fatal("ReadInclude still blocked on a FIFO after 60s")
	}
	// A directory is no list either.
	if _, err := ReadInclude(filepath.Dir(fifo), Deliverer{UID: os.Geteuid()}); err == nil || !strings.Contains(err.Error(), "is not a regular file") {
		t.Errorf("directory: %v", err)
	}
}

// TestReadIncludeMailbox: a file with a line that starts as a mailbox's
// "From " line or as a header field (and is no target) is taken for a
// mailbox or a message: none of its lines is used, whoever owns it. Its
// lines come from whoever sends mail to it (a body line "|command" ran,
// a body line "victim@example" was forwarded to).
func TestReadIncludeMailbox(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		text string
		line int
	}{
		"mbox":    {"From bob@example.org Thu Nov 26 03:22:00 2026\nReturn-Path: <bob@example.org>\nSubject: hi\n\n|/usr/bin/id > /tmp/x\nvictim@example.net\n", 1},
		"message": {"Received: from x by y\nSubject: hi\n\n|/usr/bin/id\n", 1},
		"late":    {"carol@example.org\n|/bin/prog\nSubject: hi\n", 3},
	} {
		f := filepath.Join(dir, name)
		os.WriteFile(f, []byte(tc.text), 0o644)
		inc, err := ReadInclude(f, Deliverer{UID: os.Geteuid()})
		if err != nil {
			t.Fatal(err)
		}
		w := inc.Warnings()
		if len(inc.Targets) != 0 || inc.MailLine != tc.line || len(w) != 1 ||
			!strings.Contains(w[0], "the :include: file looks like a mailbox or a mail message, not a list") {
			t.Errorf("%s: targets %q, mail line %d, warnings %q", name, inc.Targets, inc.MailLine, w)
		}
	}
	// Lines that are targets, comments or other syntax errors are no
	// mail lines.
	f := filepath.Join(dir, "list")
	os.WriteFile(f, []byte("# Subject: the staff\nFrom:x\ncarol@example.org, \"|/bin/prog a, b\"\nbob:x@example.org\njohn smith\n"), 0o644)
	inc, err := ReadInclude(f, Deliverer{UID: os.Geteuid()})
	if err != nil || inc.MailLine != 0 || strings.Join(inc.Targets, ",") != "From:x,carol@example.org,|/bin/prog a, b,bob:x@example.org" ||
		len(inc.Bad) != 1 || inc.Bad[0].Line != 5 {
		t.Errorf("list: %+v %v", inc, err)
	}
}

// TestNewaliasesIncludeChecks: newaliases warns of what fastforward,
// running as the alias user, will do with each :include: file (the same
// reader and trust rule): program lines reached through another user's
// link, a program beside a bad target on one line, syntax errors, a
// mailbox, and files that defer (writable by others, unreadable by the
// alias user, a FIFO) or bounce (an :include: loop). The review found
// newaliases silent on all of these.
func TestNewaliasesIncludeChecks(t *testing.T) {
	needRoot(t)
	const bob, alias = 4311, 4312
	root := searchableDir(t)
	os.Mkdir(filepath.Join(root, "etc"), 0o755)
	ids := qhome.SharedIDs(alias, alias)
	ids.Shared = false
	if err := os.WriteFile(filepath.Join(root, qhome.IDsFile), []byte(ids.Format()), 0o644); err != nil {
		t.Fatal(err)
	}
	p := func(s ...string) string { return filepath.Join(append([]string{root}, s...)...) }
	os.Mkdir(p("bob"), 0o755)
	own(t, p("bob"), bob, 0o755)
	os.Mkdir(p("lists"), 0o755)
	write := func(name, text string, uid int, mode os.FileMode) {
		os.WriteFile(p(name), []byte(text), mode)
		own(t, p(name), uid, mode)
	}
	write("lists/archive", "ann@example.org\n|/usr/bin/id\n", alias, 0o600)
	os.Symlink(p("lists/archive"), p("bob/list"))
	own(t, p("bob/list"), bob, 0)
	write("bob/mixed", "|/usr/bin/id, \"oops\nann@example.org\n", bob, 0o644)
	write("lists/typos", "ann@example.org\njohn smith\n", 0, 0o644)
	write("lists/mbox", "From bob@example.org Thu Nov 26 03:22:00 2026\nSubject: x\n\n|/usr/bin/id\n", alias, 0o600)
	write("lists/ww", "ann@example.org\n", 0, 0o666)
	write("lists/secret", "ann@example.org\n", 0, 0o600)
	write("lists/loop", "ann@example.org\n:include:"+p("lists/loop")+"\n", 0, 0o644)
	syscall.Mkfifo(p("lists/fifo"), 0o644)
	src := p("aliases")
	os.WriteFile(src, []byte("link: :include:"+p("bob/list")+"\nmixed: :include:"+p("bob/mixed")+"\ntypos: :include:"+p("lists/typos")+
		"\nmbox: :include:"+p("lists/mbox")+"\nww: :include:"+p("lists/ww")+"\nsecret: :include:"+p("lists/secret")+
		"\nloop: :include:"+p("lists/loop")+"\nfifo: :include:"+p("lists/fifo")+"\n"), 0o644)
	var out, errb strings.Builder
	done := make(chan int, 1)
	go func() { done <- NewaliasesMain(root, []string{"-n", "-f", src}, &out, &errb) }()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("newaliases still running after 60s (blocked on the FIFO?)")
	}
	u := func(uid int) string { return userName(uid) }
	fast := "not to root or to " + u(alias) + ", whom fastforward runs as"
	want := []string{
		src + `:1: warning: alias "link": :include: ` + p("bob/list") + " is reached through the symbolic link " + p("bob/list") +
			", which belongs to " + u(bob) + ", " + fast + `: its program and file line "|/usr/bin/id" will be skipped at delivery (its addresses are still used)`,
		src + `:2: warning: alias "mixed": :include: ` + p("bob/mixed") + ` has syntax errors, whose targets fastforward skips at delivery (the other targets are still used): line 1: unterminated quote`,
		src + `:2: warning: alias "mixed": :include: ` + p("bob/mixed") + " belongs to " + u(bob) + ", " + fast +
			`: its program and file line "|/usr/bin/id" will be skipped at delivery (its addresses are still used)`,
		src + `:3: warning: alias "typos": :include: ` + p("lists/typos") + ` has syntax errors, whose targets fastforward skips at delivery (the other targets are still used): line 2: bad address "john smith" (quote programs and files that contain spaces)`,
		src + `:4: warning: alias "mbox": :include: ` + p("lists/mbox") + ` looks like a mailbox or a mail message, not a list (line 1: "From bob@example.org Thu Nov 26 03:22:00 2026"): fastforward uses none of its lines`,
		src + `:5: warning: alias "ww": fastforward will defer every message to it (the mail stays queued): Uh-oh: include file ` + p("lists/ww") + ` is writable by others. (#4.7.0)`,
		src + `:6: warning: alias "secret": fastforward will defer every message to it (the mail stays queued): Unable to read include file ` + p("lists/secret") + `: permission denied. (#4.2.1)`,
		src + `:7: warning: alias "loop": fastforward will bounce every message to it: Include loop: ` + p("lists/loop") + ` includes itself, directly or through other :include: files. (#5.4.6)`,
		src + `:8: warning: alias "fifo": fastforward will defer every message to it (the mail stays queued): Include file ` + p("lists/fifo") + ` is not a regular file. (#4.7.0)`,
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSuffix(errb.String(), "\n"), "\n") {
		got = append(got, strings.TrimPrefix(l, "newaliases: "))
	}
	if !slices.Equal(got, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestReadIncludeBOM: a byte order mark at the start of an :include: file
// is no part of its first member (reg15 QA: the member became
// "___member@host" and its mail bounced).
func TestReadIncludeBOM(t *testing.T) {
	f := filepath.Join(t.TempDir(), "list")
	os.WriteFile(f, []byte("\ufeffcarol@example.org\nbob@example.org\n"), 0o644)
	inc, err := ReadInclude(f, Deliverer{UID: os.Geteuid()})
	if err != nil {
		t.Fatal(err)
	}
	if len(inc.Bad) != 0 || len(inc.Targets) != 2 || inc.Targets[0] != "carol@example.org" {
		t.Errorf("targets %+v, bad %+v", inc.Targets, inc.Bad)
	}
}
