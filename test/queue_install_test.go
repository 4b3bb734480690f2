package test

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hqmail/hqmail/pkg/cdb"
	"github.com/hqmail/hqmail/pkg/install"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/test/harness"
)

func statOf(t *testing.T, p string) syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestInstallTreeAsRoot(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	if os.Geteuid() != 0 {
		t.Skip("owners and modes of a root install need root")
	}
	tr := harness.Install(t)
	out, code := tr.Run(t, nil, "qmail-install", "-root", tr.Root, "-check")
	if code != 0 {
		t.Fatalf("qmail-install -check: exit %d\n%s", code, out)
	}
	ids := tr.IDs()
	if ids.Shared || ids.Qmailq.UID != harness.TestUIDBase+4 {
		t.Errorf("ids %+v", ids)
	}
	for _, tc := range []struct {
		path string
		uid  int
		mode uint32
		kind uint32
	}{
		{"bin/qmail-queue", ids.Qmailq.UID, 04711, syscall.S_IFREG},
		{"bin/qmail-lspawn", 0, 0o700, syscall.S_IFREG},
		{"bin/qmail-start", 0, 0o700, syscall.S_IFREG},
		{"bin/qmail-send", 0, 0o711, syscall.S_IFREG},
		{"bin/qmail-install", 0, 0o755, syscall.S_IFREG},
		{"queue", ids.Qmailq.UID, 0o750, syscall.S_IFDIR},
		{"queue/mess/22", ids.Qmailq.UID, 0o750, syscall.S_IFDIR},
		{"queue/info/0", ids.Qmails.UID, 0o700, syscall.S_IFDIR},
		{"queue/lock/trigger", ids.Qmails.UID, 0o622, syscall.S_IFIFO},
		{"queue/lock/tcpto", ids.Qmailr.UID, 0o664, syscall.S_IFREG},
		{"queue/lock/sendmutex", ids.Qmails.UID, 0o600, syscall.S_IFREG},
		{"queue/lock/sendstatus", ids.Qmails.UID, 0o644, syscall.S_IFREG},
		{"alias", ids.Alias.UID, 02755, syscall.S_IFDIR},
		{"alias/Maildir/new", ids.Alias.UID, 0o700, syscall.S_IFDIR},
		{"control/me", 0, 0o644, syscall.S_IFREG},
		{"users/cdb", 0, 0o644, syscall.S_IFREG},
		{"etc/ids", 0, 0o644, syscall.S_IFREG},
	} {
		st := statOf(t, tr.Path(tc.path))
		if int(st.Uid) != tc.uid || st.Mode&0o7777 != tc.mode || st.Mode&syscall.S_IFMT != tc.kind {
			t.Errorf("%s: uid %d mode %04o type %o; want %d %04o %o", tc.path, st.Uid, st.Mode&0o7777,
				st.Mode&syscall.S_IFMT, tc.uid, tc.mode, tc.kind)
		}
		if strings.HasPrefix(tc.path, "queue") && int(st.Gid) != ids.Qmail {
			t.Errorf("%s: gid %d, want qmail %d", tc.path, st.Gid, ids.Qmail)
		}
	}
	// Every program built is installed.
	ents, _ := os.ReadDir(harness.Build(t))
	for _, e := range ents {
		if _, err := os.Stat(tr.Bin(e.Name())); err != nil {
			t.Errorf("bin/%s not installed", e.Name())
		}
	}
	// The test tree routes every local part to the alias home.
	db, err := cdb.Open(tr.Path("users", "cdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v, ok, _ := db.Get([]byte("!"))
	want := "alias\x00" + strconv.Itoa(ids.Alias.UID) + "\x00" + strconv.Itoa(ids.Alias.GID) + "\x00" + tr.Path("alias") + "\x00-\x00"
	if !ok || string(v) != want {
		t.Errorf("users/cdb catch-all %q, want %q", v, want)
	}

	// -check finds damage; a re-run repairs it and keeps mail and control.
	os.Chmod(tr.Path("queue", "intd"), 0o755)
	os.Chown(tr.Path("queue", "bounce"), 0, 0)
	tr.Control("me", "kept.example\n")
	if err := tr.Queue(t, "a@b", []string{"c@d"}, []byte("queued\n")); err != nil {
		t.Fatal(err)
	}
	out, code = tr.Run(t, nil, "qmail-install", "-root", tr.Root, "-check")
	if code != 100 || !strings.Contains(out, "queue/intd: mode 0755, want 0700") || !strings.Contains(out, "queue/bounce: owner 0") {
		t.Errorf("-check after damage: exit %d\n%s", code, out)
	}
	if out, code := tr.Run(t, nil, "qmail-install", "-root", tr.Root); code != 0 {
		t.Fatalf("re-install: %d %s", code, out)
	}
	if out, code := tr.Run(t, nil, "qmail-install", "-root", tr.Root, "-check"); code != 0 {
		t.Errorf("-check after repair: exit %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(tr.Path("control", "me")); string(b) != "kept.example\n" {
		t.Errorf("control/me %q", b)
	}
	if n := len(tr.QueueFiles("todo")); n != 1 {
		t.Errorf("todo holds %d messages after re-install", n)
	}
	if got := tr.IDs(); *got != *ids {
		t.Errorf("ids changed on re-install: %+v", got)
	}
}

func TestInstallRefuses(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	inst := harness.RequireBin(t, "qmail-install")
	dir := harness.TempRoot(t)
	os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o644)
	out, err := exec.Command(inst, "-root", dir).CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 100 || !strings.Contains(string(out), "not a qmail tree") {
		t.Errorf("got %v: %s", err, out)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("refused dir changed: %v", ents)
	}
	if out, err := exec.Command(inst, "-bogus").CombinedOutput(); err == nil || !strings.Contains(string(out), "usage") {
		t.Errorf("bad flag: %v %s", err, out)
	}
}

// TestInstallAsUser installs as an ordinary user: as root the test runs
// qmail-install as nobody; otherwise as the caller.
func TestInstallAsUser(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	inst := harness.RequireBin(t, "qmail-install")
	dir := filepath.Join(harness.TempRoot(t), "tree")
	uid, gid, name := os.Getuid(), os.Getgid(), ""
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		nobody, err := user.Lookup("nobody")
		if err != nil {
			t.Skip("no user nobody")
		}
		uid, _ = strconv.Atoi(nobody.Uid)
		gid, _ = strconv.Atoi(nobody.Gid)
		os.Chown(filepath.Dir(dir), uid, gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		name = "nobody"
	} else if u, err := user.Current(); err == nil {
		name = u.Username
	}
	run := func(args ...string) (string, int) {
		cmd := exec.Command(inst, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		return combined(t, cmd)
	}
	if out, code := run("-root", dir, "-me", "box.example"); code != 0 {
		t.Fatalf("install: %d %s", code, out)
	}
	if out, code := run("-root", dir, "-check"); code != 0 {
		t.Errorf("check: %d %s", code, out)
	}
	ids, err := qhome.LoadIDs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !ids.Shared || ids.Qmailq.UID != uid || ids.Alias.UID != uid || ids.Qmail != gid {
		t.Errorf("ids %+v", ids)
	}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && int(fi.Sys().(*syscall.Stat_t).Uid) != uid {
			t.Errorf("%s owned by %d", p, fi.Sys().(*syscall.Stat_t).Uid)
		}
		return nil
	})
	assign, _ := os.ReadFile(filepath.Join(dir, "users", "assign"))
	home := filepath.Join(dir, "home", name)
	want := "=" + name + ":" + name + ":" + strconv.Itoa(uid) + ":" + strconv.Itoa(gid) + ":" + home + ":::\n"
	if !strings.HasPrefix(string(assign), want) || !strings.Contains(string(assign), "\n+:"+name+":") ||
		!strings.HasSuffix(string(assign), "\n.\n") {
		t.Errorf("assign:\n%s", assign)
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		if fi, err := os.Stat(filepath.Join(home, "Maildir", sub)); err != nil || !fi.IsDir() {
			t.Errorf("Maildir/%s: %v", sub, err)
		}
	}
	// Queue a message as that user through the installed qmail-queue.
	cmd := exec.Command(filepath.Join(dir, "bin", "qmail-queue"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Stdin = strings.NewReader("hello\n")
	ef, _ := os.CreateTemp("", "env-")
	defer os.Remove(ef.Name())
	ef.WriteString("F" + name + "@box.example\x00T" + name + "@box.example\x00\x00")
	ef.Seek(0, 0)
	cmd.Stdout = ef
	if err := cmd.Run(); err != nil {
		t.Errorf("qmail-queue as %s: %v", name, err)
	}
	if todo, _ := filepath.Glob(filepath.Join(dir, "queue", "todo", "*")); len(todo) != 1 {
		t.Errorf("todo: %v", todo)
	}
}

// TestInstallRealUsers installs with qmail's named users, creating them
// (useradd/groupadd) when missing: it changes the system's user database.
func TestInstallRealUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	if os.Geteuid() != 0 {
		t.Skip("creating qmail's users needs root")
	}
	if _, err := exec.LookPath("useradd"); err != nil {
		t.Skip("no useradd")
	}
	// Users and groups this test creates are removed again at its end, so
	// that no passwd entry keeps pointing into a deleted temporary root;
	// ones that existed before are left alone.
	// An existing account whose home is gone (made for a tree since
	// removed) is given this tree's; its old home is put back at the end.
	var newUsers, newGroups []string
	oldHome := map[string]string{}
	for _, n := range qhome.UserNames {
		if u, err := user.Lookup(n); err != nil {
			newUsers = append(newUsers, n)
		} else {
			oldHome[n] = u.HomeDir
		}
	}
	for _, g := range qhome.GroupNames {
		if _, err := user.LookupGroup(g); err != nil {
			newGroups = append(newGroups, g)
		}
	}
	t.Cleanup(func() {
		for n, h := range oldHome {
			if u, err := user.Lookup(n); err == nil && u.HomeDir != h {
				if out, err := exec.Command("usermod", "-d", h, n).CombinedOutput(); err != nil {
					t.Logf("usermod -d %s %s: %v %s", h, n, err, out)
				}
			}
		}
		for _, n := range newUsers {
			if out, err := exec.Command("userdel", n).CombinedOutput(); err != nil {
				t.Logf("userdel %s: %v %s", n, err, out)
			}
		}
		for _, g := range newGroups {
			if out, err := exec.Command("groupdel", g).CombinedOutput(); err != nil {
				t.Logf("groupdel %s: %v %s", g, err, out)
			}
		}
	})
	// The users this test makes are made first with a home that does not
	// exist, as one left by a removed tree: qmail-install must give them
	// this tree's.
	for _, g := range newGroups {
		if out, err := exec.Command("groupadd", "-r", g).CombinedOutput(); err != nil {
			t.Fatalf("groupadd %s: %v %s", g, err, out)
		}
	}
	for _, n := range newUsers {
		g := "nofiles"
		if n == "qmailq" || n == "qmailr" || n == "qmails" {
			g = "qmail"
		}
		if out, err := exec.Command("useradd", "-r", "-M", "-g", g, "-d", "/nonexistent/hqmail-removed-tree", n).CombinedOutput(); err != nil {
			t.Fatalf("useradd %s: %v %s", n, err, out)
		}
	}
	tr := harness.Install(t, harness.WithRealUsers())
	ids := tr.IDs()
	for _, n := range qhome.UserNames {
		u, err := user.Lookup(n)
		if err != nil {
			t.Errorf("user %s: %v", n, err)
			continue
		}
		if u.Uid != strconv.Itoa(ids.UserByName(n).UID) {
			t.Errorf("user %s: passwd uid %s, etc/ids %d", n, u.Uid, ids.UserByName(n).UID)
		}
		want := tr.Root
		if n == "alias" {
			want = tr.Path("alias")
		}
		// An account that existed before keeps another tree's home, and
		// may keep a removed one's while it runs a process (usermod
		// refuses then).
		if old, existed := oldHome[n]; existed && u.HomeDir == old {
			continue
		}
		if u.HomeDir != want && !install.UIDBusy(u.Uid) {
			t.Errorf("user %s: home %s, want %s", n, u.HomeDir, want)
		}
	}
	out, code := tr.Run(t, nil, "qmail-install", "-root", tr.Root, "-check")
	if code != 0 {
		t.Errorf("check: %d %s", code, out)
	}
	// A user left with another tree's home is named, as a note.
	for _, n := range qhome.UserNames {
		u, err := user.Lookup(n)
		if err != nil {
			continue
		}
		named := strings.Contains(out, "note: user "+n+" has home ")
		if mine := u.HomeDir == tr.Root || u.HomeDir == tr.Path("alias"); named == mine {
			t.Errorf("check output %q: note for %s (home %s) = %v", out, n, u.HomeDir, named)
		}
	}
	if b, _ := os.ReadFile(tr.Path("users", "assign")); string(b) != ".\n" {
		t.Errorf("assign of a real root tree: %q", b)
	}
}
