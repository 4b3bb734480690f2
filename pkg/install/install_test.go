package install

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hqmail/hqmail/pkg/qerr"
	"github.com/hqmail/hqmail/pkg/qhome"
)

func TestTreeTable(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range Tree("joe") {
		if seen[e.Path] {
			t.Errorf("%s listed twice", e.Path)
		}
		if parent := filepath.Dir(e.Path); e.Path != "." && !seen[parent] {
			t.Errorf("%s listed before its parent %s", e.Path, parent)
		}
		seen[e.Path] = true
	}
	for _, s := range []string{"mess", "info", "local", "remote"} {
		for i := 0; i < qhome.Split; i++ {
			if !seen["queue/"+s+"/"+strconv.Itoa(i)] {
				t.Errorf("queue/%s/%d missing", s, i)
			}
		}
		if seen["queue/"+s+"/23"] {
			t.Errorf("queue/%s/23 listed", s)
		}
	}
	want := map[string]Entry{
		"queue":                {Owner: "qmailq", Mode: 0o750, Kind: Dir},
		"queue/pid":            {Owner: "qmailq", Mode: 0o700, Kind: Dir},
		"queue/intd":           {Owner: "qmailq", Mode: 0o700, Kind: Dir},
		"queue/todo":           {Owner: "qmailq", Mode: 0o750, Kind: Dir},
		"queue/mess/7":         {Owner: "qmailq", Mode: 0o750, Kind: Dir},
		"queue/info/7":         {Owner: "qmails", Mode: 0o700, Kind: Dir},
		"queue/local/0":        {Owner: "qmails", Mode: 0o700, Kind: Dir},
		"queue/remote/22":      {Owner: "qmails", Mode: 0o700, Kind: Dir},
		"queue/bounce":         {Owner: "qmails", Mode: 0o700, Kind: Dir},
		"queue/lock":           {Owner: "qmailq", Mode: 0o750, Kind: Dir},
		"queue/lock/sendmutex": {Owner: "qmails", Mode: 0o600, Kind: File},
		"queue/lock/tcpto":     {Owner: "qmailr", Mode: 0o664, Kind: File},
		"queue/lock/trigger":   {Owner: "qmails", Mode: 0o622, Kind: Fifo},
		"alias":                {Owner: "alias", Mode: 02755, Kind: Dir},
		"alias/.qmail-default": {Owner: "alias", Mode: 0o644, Kind: File},
		"home/joe/Maildir/new": {Owner: "root", Mode: 0o700, Kind: Dir},
	}
	for _, e := range Tree("joe") {
		w, ok := want[e.Path]
		if !ok {
			continue
		}
		if e.Owner != w.Owner || e.Mode != w.Mode || e.Kind != w.Kind {
			t.Errorf("%s: %s %o %c, want %s %o %c", e.Path, e.Owner, e.Mode, e.Kind, w.Owner, w.Mode, w.Kind)
		}
		if strings.HasPrefix(e.Path, "queue") && e.Group != "qmail" {
			t.Errorf("%s: group %s", e.Path, e.Group)
		}
		delete(want, e.Path)
	}
	for p := range want {
		t.Errorf("%s missing from the table", p)
	}
	for _, e := range Tree("") {
		if strings.HasPrefix(e.Path, "home") {
			t.Errorf("root tree lists %s", e.Path)
		}
	}
}

func TestProgEntry(t *testing.T) {
	for _, tc := range []struct {
		name, owner string
		mode        uint32
	}{
		{"qmail-queue", "qmailq", 04711},
		{"qmail-lspawn", "root", 0o700}, {"qmail-start", "root", 0o700},
		{"qmail-newu", "root", 0o700}, {"qmail-newmrh", "root", 0o700}, {"qmail-linkwatch", "root", 0o700},
		{"qmail-send", "root", 0o711}, {"qmail-remote", "root", 0o711},
		{"qmail-inject", "root", 0o755}, {"sendmail", "root", 0o755},
		{"qmail-smtpd", "root", 0o755}, {"something-new", "root", 0o755},
	} {
		e := ProgEntry(tc.name)
		if e.Owner != tc.owner || e.Mode != tc.mode || e.Path != "bin/"+tc.name || e.Group != "qmail" {
			t.Errorf("%s: %+v", tc.name, e)
		}
	}
}

func TestDefaultControl(t *testing.T) {
	for _, tc := range []struct{ me, dom, locals string }{
		// qmail-inject makes user@localhost user@localhost.DEFAULTDOMAIN:
		// that must be local.
		{"mail.example.com", "example.com", "mail.example.com\nlocalhost\nlocalhost.example.com\n"},
		{"a.b.c.d", "b.c.d", "a.b.c.d\nlocalhost\nlocalhost.b.c.d\n"},
		{"example.com", "example.com", "example.com\nlocalhost\nlocalhost.example.com\n"},
		{"laptop.test", "laptop.test", "laptop.test\nlocalhost\nlocalhost.laptop.test\n"},
		{"localhost.localdomain", "localhost.localdomain", "localhost.localdomain\nlocalhost\nlocalhost.localhost.localdomain\n"},
		// Without a dot, qmail-inject makes root root@NAME.localdomain:
		// that must be local.
		{"vm", "localdomain", "vm\nlocalhost\nvm.localdomain\nlocalhost.localdomain\n"},
		{"localhost", "localdomain", "localhost\nlocalhost.localdomain\n"},
		{"[192.0.2.1]", "[192.0.2.1]", "[192.0.2.1]\nlocalhost\nlocalhost.[192.0.2.1]\n"},
	} {
		m := DefaultControl(tc.me)
		if m["me"] != tc.me+"\n" || m["defaultdomain"] != tc.dom+"\n" || m["plusdomain"] != tc.dom+"\n" ||
			m["locals"] != tc.locals || m["rcpthosts"] != tc.locals || len(m) != 5 {
			t.Errorf("%s: %q", tc.me, m)
		}
	}
}

// TestMailName: without -me, an existing control/me wins, then
// /etc/mailname when it has a dot, then the host name.
func TestMailName(t *testing.T) {
	root := t.TempDir()
	old := MailnameFile
	t.Cleanup(func() { MailnameFile = old })
	MailnameFile = filepath.Join(root, "mailname")
	host, _ := os.Hostname()
	check := func(cur, want string) {
		t.Helper()
		if got, err := mailName(cur); err != nil || got != want {
			t.Errorf("mailName(%q) = %q, %v; want %q", cur, got, err, want)
		}
	}
	check("", host)
	os.WriteFile(MailnameFile, []byte("shortname\n"), 0o644)
	check("", host)
	os.WriteFile(MailnameFile, []byte("mail.example.net\n"), 0o644)
	check("", "mail.example.net")
	check("kept.example", "kept.example")
}

func TestAssign(t *testing.T) {
	ids := qhome.SharedIDs(1000, 100)
	got := Assign("/r", ids, "joe", false)
	want := "=joe:joe:1000:100:/r/home/joe:::\n+joe-:joe:1000:100:/r/home/joe:-::\n+:joe:1000:100:/r/alias:-::\n.\n"
	if got != want {
		t.Errorf("user tree:\n%s\nwant\n%s", got, want)
	}
	b := BaseIDs(500)
	if got := Assign("/r", b, "", true); got != "+:alias:500:501:/r/alias:-::\n.\n" {
		t.Errorf("test tree: %q", got)
	}
	if got := Assign("/r", b, "", false); got != ".\n" {
		t.Errorf("root tree: %q", got)
	}
}

// fakeSource is a directory with every one of Programs (a small script
// each: -check names a program missing from bin/) and a non-executable
// file.
func fakeSource(t *testing.T) string {
	return fakeSourceIn(t.TempDir())
}

func fakeSourceIn(src string) string {
	for _, name := range Programs {
		os.WriteFile(filepath.Join(src, name), []byte("#!/bin/sh\n"), 0o755)
	}
	os.WriteFile(filepath.Join(src, "README"), []byte("not a program\n"), 0o644)
	return src
}

func opts(t *testing.T, root string) Options {
	return optsFrom(root, fakeSource(t))
}

func optsFrom(root, src string) Options {
	o := Options{Root: root, Me: "mx.example.org", Source: src}
	if os.Geteuid() == 0 {
		o.UIDBase = 64110
	}
	return o
}

// searchableDir returns a new temporary directory that qmail's users can
// search (t.TempDir's and its parent's mode is 0700).
func searchableDir(t *testing.T) string {
	d := t.TempDir()
	os.Chmod(d, 0o755)
	os.Chmod(filepath.Dir(d), 0o755)
	return d
}

func TestInstallAndCheck(t *testing.T) {
	root := filepath.Join(searchableDir(t), "q")
	o := opts(t, root)
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	dev, err := Check(root)
	if err != nil || len(dev) != 0 {
		t.Fatalf("check: %v %v", dev, err)
	}
	if _, err := os.Stat(filepath.Join(root, "bin", "README")); err == nil {
		t.Error("non-executable file copied")
	}
	var st syscall.Stat_t
	syscall.Stat(filepath.Join(root, "bin", "qmail-queue"), &st)
	if st.Mode&0o7777 != 04711 {
		t.Errorf("qmail-queue mode %o", st.Mode&0o7777)
	}
	b, _ := os.ReadFile(filepath.Join(root, "queue", "lock", "tcpto"))
	if len(b) != TcptoSize || strings.Trim(string(b), "\x00") != "" {
		t.Errorf("tcpto: %d bytes", len(b))
	}
	if b, _ := os.ReadFile(filepath.Join(root, "alias", ".qmail-default")); string(b) != "|../bin/fastforward\n./Maildir/\n" {
		t.Errorf(".qmail-default %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "control", "me")); string(b) != "mx.example.org\n" {
		t.Errorf("me %q", b)
	}

	// Damage, keep state, re-run: modes repaired, control and mail kept.
	os.WriteFile(filepath.Join(root, "control", "me"), []byte("kept.example\n"), 0o644)
	os.WriteFile(filepath.Join(root, "queue", "mess", "5", "28"), []byte("mail"), 0o644)
	os.Chmod(filepath.Join(root, "queue", "pid"), 0o777)
	os.Remove(filepath.Join(root, "queue", "lock", "trigger"))
	os.WriteFile(filepath.Join(root, "queue", "lock", "trigger"), nil, 0o644)
	dev, _ = Check(root)
	if len(dev) < 2 {
		t.Errorf("check after damage found %v", dev)
	}
	// A control file others cannot read is named (qmail-send, as qmails,
	// would not start); smtpauth, private by design, is not.
	if os.Geteuid() == 0 {
		os.WriteFile(filepath.Join(root, "control", "holdremote"), nil, 0o600)
		os.WriteFile(filepath.Join(root, "control", "smtpauth"), nil, 0o600)
		os.Chown(filepath.Join(root, "control", "smtpauth"), o.UIDBase+5, o.UIDBase) // qmailr's
		dev, _ = Check(root)
		if !slices.Contains(dev, "control/holdremote: not readable by alias (fastforward), qmaild (qmail-smtpd), qmailr (qmail-remote), qmails (qmail-send): mode 0600, owner root, group root (chmod 644)") ||
			strings.Contains(strings.Join(dev, "\n"), "smtpauth") {
			t.Errorf("check with a private holdremote: %q", dev)
		}
		os.Remove(filepath.Join(root, "control", "holdremote"))
		os.Remove(filepath.Join(root, "control", "smtpauth"))
	}
	o.Me = ""
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	if dev, _ := Check(root); len(dev) != 0 {
		t.Errorf("after repair: %v", dev)
	}
	// A dotless me with defaultdomain the same, as older installs wrote
	// it, sends mail for bare users away: named.
	os.WriteFile(filepath.Join(root, "control", "me"), []byte("vm\n"), 0o644)
	os.WriteFile(filepath.Join(root, "control", "defaultdomain"), []byte("vm\n"), 0o644)
	if dev, _ := Check(root); len(dev) != 1 || !strings.Contains(dev[0], "user@vm.vm") {
		t.Errorf("dotless me and defaultdomain: %q", dev)
	}
	// Domain names compare without case.
	os.WriteFile(filepath.Join(root, "control", "defaultdomain"), []byte("VM\n"), 0o644)
	if dev, _ := Check(root); len(dev) != 1 || !strings.HasPrefix(dev[0], "control/defaultdomain: VM, the dotless control/me vm: ") ||
		!strings.Contains(dev[0], "user@vm.VM") {
		t.Errorf("dotless me, defaultdomain in capitals: %q", dev)
	}
	// A missing defaultdomain is me to qmail-inject, as in qmail (the
	// repair does not make one in a tree that has me): the same.
	os.Remove(filepath.Join(root, "control", "defaultdomain"))
	if dev, _ := Check(root); len(dev) != 1 ||
		!strings.HasPrefix(dev[0], "control/defaultdomain: missing, so qmail-inject and sendmail use the dotless control/me vm: ") ||
		!strings.Contains(dev[0], "user@vm.vm") {
		t.Errorf("dotless me, no defaultdomain: %q", dev)
	}
	os.WriteFile(filepath.Join(root, "control", "defaultdomain"), []byte("localdomain\n"), 0o644)
	// The locals of mx.example.org lack localhost.localdomain.
	if dev, _ := Check(root); len(dev) != 1 || !strings.HasPrefix(dev[0], "control/locals: lacks localhost.localdomain, ") {
		t.Errorf("dotless me, defaultdomain localdomain: %q", dev)
	}
	f, _ := os.OpenFile(filepath.Join(root, "control", "locals"), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("localhost.localdomain\n")
	f.Close()
	if dev, _ := Check(root); len(dev) != 0 {
		t.Errorf("dotless me, defaultdomain localdomain: %q", dev)
	}
	os.WriteFile(filepath.Join(root, "control", "me"), []byte("kept.example\n"), 0o644)
	if b, _ := os.ReadFile(filepath.Join(root, "control", "me")); string(b) != "kept.example\n" {
		t.Errorf("control/me overwritten: %q", b)
	}
	// A -me that differs from the kept name is not silently dropped.
	var logb strings.Builder
	o.Me, o.Log = "other.example", &logb
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "control", "me")); string(b) != "kept.example\n" {
		t.Errorf("control/me overwritten: %q", b)
	}
	if !strings.Contains(logb.String(), "note: control/me exists and says kept.example; -me other.example changes nothing") {
		t.Errorf("install log %q", logb.String())
	}
	if b, _ := os.ReadFile(filepath.Join(root, "queue", "mess", "5", "28")); string(b) != "mail" {
		t.Errorf("queued mail lost")
	}
}

func TestInstallRefusesForeignDir(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "notes.txt"), []byte("mine"), 0o644)
	err := Install(opts(t, root))
	if !errors.Is(err, ErrRefused) || qerr.ExitCode(err) != 100 || !strings.Contains(err.Error(), "not a qmail tree") {
		t.Errorf("got %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "queue")); err == nil {
		t.Error("queue created in a refused dir")
	}
	// A dir holding only control/ counts as a tree (an old qmail's).
	root2 := t.TempDir()
	os.Mkdir(filepath.Join(root2, "control"), 0o755)
	if err := Install(opts(t, root2)); err != nil {
		t.Errorf("control-only dir: %v", err)
	}
	if err := Install(Options{Root: filepath.Join(t.TempDir(), "a:b"), Source: fakeSource(t)}); qerr.ExitCode(err) != 100 {
		t.Errorf("root with ':': %v", err)
	}
}

// TestCheckNoTree: a root that is missing, not a directory or without
// etc/ids is no tree, a permanent error (exit code 100) saying which.
func TestCheckNoTree(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("x"), 0o644)
	etcFile := filepath.Join(dir, "etcfile")
	os.MkdirAll(etcFile, 0o755)
	os.WriteFile(filepath.Join(etcFile, "etc"), nil, 0o644)
	for _, tc := range []struct{ root, why string }{
		{file, "not a directory"},
		{filepath.Join(dir, "missing"), "no such directory"},
		{filepath.Join(file, "below"), "no such directory"},
		{dir, "etc/ids missing"},
		{etcFile, "etc/ids missing"},
	} {
		dev, err := Check(tc.root)
		want := "no qmail tree at " + tc.root + " (" + tc.why + "; -root names another)"
		if !errors.Is(err, ErrNoTree) || qerr.ExitCode(err) != 100 || err.Error() != want || dev != nil {
			t.Errorf("%s: %q, %v; want %q", tc.root, dev, err, want)
		}
	}
}

// rootTree installs a tree with qmail's (numeric) users, or skips.
func rootTree(t *testing.T) (string, *qhome.IDs) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("qmail's users need root")
	}
	root := filepath.Join(searchableDir(t), "q")
	if err := Install(opts(t, root)); err != nil {
		t.Fatal(err)
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Fatalf("check: %q %v", dev, err)
	}
	ids, err := qhome.LoadIDs(root)
	if err != nil {
		t.Fatal(err)
	}
	return root, ids
}

// TestCheckControlAccess: a control file is checked for the users that
// read it, through the directories on its way, naming who cannot read it.
func TestCheckControlAccess(t *testing.T) {
	root, ids := rootTree(t)
	ctl := filepath.Join(root, "control")
	check := func(what string, want ...string) {
		t.Helper()
		dev, err := Check(root)
		if err != nil || !slices.Equal(dev, want) {
			t.Errorf("%s:\n got %q\nwant %q", what, dev, want)
		}
	}
	all := "alias (fastforward), qmaild (qmail-smtpd), qmailr (qmail-remote), qmails (qmail-send)"

	// A symbolic link into a directory others cannot search.
	priv := filepath.Join(searchableDir(t), "private")
	os.Mkdir(priv, 0o700)
	os.WriteFile(filepath.Join(priv, "virtualdomains"), []byte("example.net:alias-net\n"), 0o644)
	os.Symlink(filepath.Join(priv, "virtualdomains"), filepath.Join(ctl, "virtualdomains"))
	check("link into a 0700 directory", "control/virtualdomains: not readable by "+all+": directory "+priv+
		" (mode 0700, owner root, group root) is not searchable (chmod o+x "+priv+")")
	os.Chown(priv, ids.Qmails.UID, ids.Qmail)
	check("link into qmails' 0700 directory", "control/virtualdomains: not readable by alias (fastforward), qmaild (qmail-smtpd), qmailr (qmail-remote): directory "+priv+
		" (mode 0700, owner qmails, group qmail) is not searchable (chmod go+x "+priv+")")
	os.Chmod(priv, 0o750)
	check("link into a 0750 directory of group qmail", "control/virtualdomains: not readable by alias (fastforward), qmaild (qmail-smtpd): directory "+priv+
		" (mode 0750, owner qmails, group qmail) is not searchable (chmod o+x "+priv+")")
	os.Chmod(priv, 0o711)
	check("link into a searchable directory")
	os.Remove(filepath.Join(ctl, "virtualdomains"))

	// A file only qmail-remote reads: only qmailr is named, with what
	// it costs (all four were named, for smtproutes and tlsca too).
	os.Chmod(priv, 0o700)
	os.Chown(priv, 0, 0)
	os.WriteFile(filepath.Join(priv, "smtproutes"), []byte(":relay.example\n"), 0o644)
	os.Symlink(filepath.Join(priv, "smtproutes"), filepath.Join(ctl, "smtproutes"))
	check("smtproutes in a 0700 directory", "control/smtproutes: not readable by qmailr (qmail-remote): directory "+priv+
		" (mode 0700, owner root, group root) is not searchable (chmod o+x "+priv+`): qmail-remote defers every delivery ("Unable to read control files")`)
	os.Chown(priv, ids.Qmails.UID, ids.Qmail)
	os.Chmod(priv, 0o750)
	check("smtproutes in a 0750 directory of group qmail")
	os.Remove(filepath.Join(ctl, "smtproutes"))

	// Mode 0640 group qmail: only the users outside group qmail.
	p := filepath.Join(ctl, "rcpthosts")
	os.Chown(p, 0, ids.Qmail)
	os.Chmod(p, 0o640)
	check("0640 group qmail", "control/rcpthosts: not readable by alias (fastforward), qmaild (qmail-smtpd): mode 0640, owner root, group qmail (chmod 644)")
	os.Chmod(p, 0o644)

	// Private files: checked for their one reader.
	auth := filepath.Join(ctl, "smtpauth")
	os.WriteFile(auth, nil, 0o600)
	check("smtpauth of root", "control/smtpauth: not readable by qmailr (qmail-remote): mode 0600, owner root, group root (chown qmailr; chmod 600)")
	os.Chown(auth, ids.Qmailr.UID, ids.Qmail)
	check("smtpauth of qmailr")
	os.Chmod(auth, 0o640)
	check("smtpauth of mode 0640", "control/smtpauth: mode 0640, readable by group or others: qmail-remote refuses to use it (chown qmailr; chmod 600)")
	os.Chmod(auth, 0o600)

	// A tree under a directory nobody may search: said once, not for
	// every file.
	os.Chmod(auth, 0o000)
	parent := filepath.Dir(root)
	os.Chmod(parent, 0o700)
	check("tree in a 0700 directory", root+": not reachable by alias (fastforward), qmaild (qmail-smtpd), qmaill (the logger), qmailp (qmail-getpw), "+
		"qmailq (qmail-queued), qmailr (qmail-remote), qmails (qmail-send): directory "+parent+
		" (mode 0700, owner root, group root) is not searchable (chmod o+x "+parent+"): none of their programs can use the tree")
	os.Chmod(parent, 0o755)
	os.Remove(auth)
}

// TestCheckSendFiles: queue/bounce/holdperiods and heldmsgs, when they
// exist, are regular files of qmails that qmail-send can read and write.
func TestCheckSendFiles(t *testing.T) {
	root, ids := rootTree(t)
	for _, f := range []struct{ name, effect string }{
		{"holdperiods", "qmail-send cannot tell how long mail was held, which it leaves out of queuelifetime"},
		{"heldmsgs", "qmail-send does not start: it cannot tell which messages qmailctl holds"},
	} {
		rel := "queue/bounce/" + f.name
		p := filepath.Join(root, rel)
		check := func(what string, want ...string) {
			t.Helper()
			dev, err := Check(root)
			if err != nil || !slices.Equal(dev, want) {
				t.Errorf("%s %s:\n got %q\nwant %q", f.name, what, dev, want)
			}
		}
		os.WriteFile(p, []byte("1\n"), 0o600)
		check("root's", rel+": owner 0, want "+strconv.Itoa(ids.Qmails.UID)+" (qmails)",
			rel+": group 0, want "+strconv.Itoa(ids.Qmail)+" (qmail)",
			rel+": not readable and writable by qmails (qmail-send): mode 0600, owner root, group root (chown qmails; chmod 600): "+f.effect)
		os.Chown(p, ids.Qmails.UID, ids.Qmail)
		check("qmails'")
		os.Chmod(p, 0o400)
		check("read-only", rel+": mode 0400, want 0600",
			rel+": not readable and writable by qmails (qmail-send): mode 0400, owner qmails, group qmail (chown qmails; chmod 600): "+f.effect)
		// What qmails can read and write, but the repair changes all
		// the same: -check names it (it said nothing).
		os.Chmod(p, 0o640)
		os.Chown(p, ids.Qmails.UID, 0)
		check("qmails:root 0640", rel+": group 0, want "+strconv.Itoa(ids.Qmail)+" (qmail)", rel+": mode 0640, want 0600")
		if err := Install(opts(t, root)); err != nil {
			t.Fatal(err)
		}
		check("repaired")
		os.Remove(p)
		os.Mkdir(p, 0o700)
		check("a directory", rel+": is a directory, want a regular file: "+f.effect+" (remove it)")
		os.Remove(p)
	}
}

// TestCheckTrigger: a trigger of the wrong mode says what it costs.
func TestCheckTrigger(t *testing.T) {
	root, _ := rootTree(t)
	p := filepath.Join(root, "queue", "lock", "trigger")
	wait := "new mail waits up to 25 minutes for the regular scan of the queue"
	for _, tc := range []struct {
		mode uint32
		want string
	}{
		{0o600, "queue/lock/trigger: mode 0600, want 0622: qmail-queue cannot wake qmail-send: " + wait},
		{0o620, "queue/lock/trigger: mode 0620, want 0622: qmail-queue cannot wake qmail-send: " + wait},
		{0o222, "queue/lock/trigger: mode 0222, want 0622: qmail-send cannot open it: " + wait},
		{0o666, "queue/lock/trigger: mode 0666, want 0622: anyone can read it and take the wake-ups meant for qmail-send"},
		{0o662, "queue/lock/trigger: mode 0662, want 0622"},
	} {
		os.Chmod(p, os.FileMode(tc.mode))
		if dev, err := Check(root); err != nil || !slices.Equal(dev, []string{tc.want}) {
			t.Errorf("mode %04o: %q %v", tc.mode, dev, err)
		}
	}
	os.Remove(p)
	os.WriteFile(p, nil, 0o622)
	if dev, _ := Check(root); len(dev) == 0 || !strings.HasSuffix(dev[len(dev)-1], ": qmail-send does not read it: "+wait) {
		t.Errorf("regular file: %q", dev)
	}
}

// installed installs a tree (with qmail's numeric users as root, shared
// otherwise) that -check finds nothing in.
func installed(t *testing.T) (string, Options) {
	t.Helper()
	root := filepath.Join(searchableDir(t), "q")
	o := opts(t, root)
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Fatalf("check: %q %v", dev, err)
	}
	return root, o
}

// TestCheckControlNotAFile: a control file that exists but cannot be
// opened as a file (a loop of symbolic links, a directory, a link to
// one, a fifo) is named with what it breaks; a dangling link (missing)
// and a link to /dev/null (empty) are fine, as are names no program reads.
func TestCheckControlNotAFile(t *testing.T) {
	root, _ := installed(t)
	ctl := filepath.Join(root, "control")
	smtpd := `qmail-smtpd answers every session "421 unable to read controls"`
	fix := " (replace it by a regular file)"
	check := func(what string, want ...string) {
		t.Helper()
		dev, err := Check(root)
		if err != nil || !slices.Equal(dev, want) {
			t.Errorf("%s:\n got %q\nwant %q", what, dev, want)
		}
	}
	bmf := filepath.Join(ctl, "badmailfrom")
	os.Symlink("loop1", filepath.Join(ctl, "loop1"))
	os.Symlink("loop1", bmf)
	check("a loop", "control/badmailfrom: is a symbolic link to loop1, a loop of symbolic links, want a regular file: "+smtpd+fix)
	os.Remove(bmf)
	os.Remove(filepath.Join(ctl, "loop1"))

	os.Mkdir(bmf, 0o755)
	check("a directory", "control/badmailfrom: is a directory, want a regular file: "+smtpd+fix)
	os.Remove(bmf)

	dir := searchableDir(t)
	os.Symlink(dir, bmf)
	check("a link to a directory", "control/badmailfrom: is a symbolic link to "+dir+", a directory, want a regular file: "+smtpd+fix)
	os.Remove(bmf)

	os.Symlink("me/x", bmf)
	check("a link through a file", "control/badmailfrom: is a symbolic link to me/x, a path that cannot be opened (not a directory), want a regular file: "+smtpd+fix)
	os.Remove(bmf)

	syscall.Mkfifo(filepath.Join(ctl, "me.fifo"), 0o644)
	os.Rename(filepath.Join(ctl, "me"), filepath.Join(ctl, "me.file"))
	os.Rename(filepath.Join(ctl, "me.fifo"), filepath.Join(ctl, "me"))
	check("a fifo", "control/me: is a fifo, want a regular file: qmail-send does not start; "+smtpd+
		`; qmail-remote defers every delivery ("Unable to read control files"); qmail-inject refuses every message ("read error"), and so does sendmail ("unable to read controls:" with the file and the reason)`+fix)
	os.Rename(filepath.Join(ctl, "me.file"), filepath.Join(ctl, "me"))

	hl := filepath.Join(ctl, "holdlocal")
	os.Symlink("holdlocal", hl)
	check("holdlocal a loop", "control/holdlocal: is a symbolic link to holdlocal, a loop of symbolic links, want a regular file: qmail-send does not start"+fix)
	os.Remove(hl)
	os.Mkdir(hl, 0o755)
	check("holdlocal a directory (it exists: local delivery is held)")
	os.Remove(hl)

	os.Symlink("missing", bmf)
	os.Symlink(os.DevNull, filepath.Join(ctl, "rcpthosts.null"))
	os.Symlink(os.DevNull, filepath.Join(ctl, "smtproutes"))
	os.Mkdir(filepath.Join(ctl, "domainkeys"), 0o700)
	os.Symlink("loop", filepath.Join(ctl, "loop"))
	check("dangling, /dev/null, unknown names")
}

// TestInstallRepairsTcptoSize: the repair run gives queue/lock/tcpto its
// size (-check reported a wrong one that no run repaired), keeping the
// entries within it.
func TestInstallRepairsTcptoSize(t *testing.T) {
	root, o := installed(t)
	p := filepath.Join(root, "queue", "lock", "tcpto")
	for _, size := range []int{10, TcptoSize + 300} {
		b := make([]byte, size)
		b[0] = 7
		if err := os.WriteFile(p, b, 0o664); err != nil {
			t.Fatal(err)
		}
		if dev, _ := Check(root); len(dev) != 1 || !strings.Contains(dev[0], "queue/lock/tcpto: size ") {
			t.Fatalf("check of a %d-byte tcpto: %q", size, dev)
		}
		if err := Install(o); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(p)
		if len(got) != TcptoSize || got[0] != 7 || strings.Trim(string(got[1:]), "\x00") != "" {
			t.Errorf("%d-byte tcpto after repair: %d bytes, first %d", size, len(got), got[0])
		}
		if dev, _ := Check(root); len(dev) != 0 {
			t.Errorf("check after repair: %q", dev)
		}
	}
}

// TestInstallRepairsSendFiles: the repair run gives an existing regular
// queue/bounce/holdperiods or heldmsgs to qmails with mode 0600, as
// qmail-send makes them, and leaves anything else there alone, saying so
// with what it costs, and exits 111 (with heldmsgs a symbolic link it
// exited 0, while qmail-send does not start), as -check names it.
func TestInstallRepairsSendFiles(t *testing.T) {
	root, o := installed(t)
	ids, err := qhome.LoadIDs(root)
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := ids.Qmails.UID, ids.Qmail
	if ids.Shared {
		uid, gid = os.Getuid(), os.Getgid()
	}
	effects := map[string]string{
		"holdperiods": "qmail-send cannot tell how long mail was held, which it leaves out of queuelifetime",
		"heldmsgs":    "qmail-send does not start: it cannot tell which messages qmailctl holds",
	}
	for _, name := range []string{"holdperiods", "heldmsgs"} {
		rel := "queue/bounce/" + name
		p := filepath.Join(root, rel)
		os.WriteFile(p, []byte("local 1 2\n"), 0o644)
		os.Chown(p, 0, 0)
		os.Chmod(p, 0o644)
		if err := Install(o); err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil || int(st.Uid) != uid || int(st.Gid) != gid || st.Mode&0o7777 != 0o600 {
			t.Errorf("%s after repair: uid %d gid %d mode %04o %v; want %d %d 0600", name, st.Uid, st.Gid, st.Mode&0o7777, err, uid, gid)
		}
		if b, _ := os.ReadFile(p); string(b) != "local 1 2\n" {
			t.Errorf("%s contents %q", name, b)
		}
		if dev, _ := Check(root); len(dev) != 0 {
			t.Errorf("check after repair: %q", dev)
		}
		os.Remove(p)
		os.Mkdir(p, 0o755)
		err := Install(o)
		want := p + ": is a directory, want a regular file: " + effects[name] + "; left alone (remove it, and run qmail-install again)"
		if err == nil || qerr.ExitCode(err) != 111 || !strings.Contains(err.Error(), want) {
			t.Errorf("repair of a directory %s: %v, want exit 111 and %q", name, err, want)
		}
		if fi, err := os.Lstat(p); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
			t.Errorf("directory %s changed: %v %v", name, fi, err)
		}
		if dev, _ := Check(root); len(dev) != 1 || !strings.HasPrefix(dev[0], rel+": is a directory, want a regular file: ") {
			t.Errorf("check of a directory %s: %q", name, dev)
		}
		os.Remove(p)
		os.Symlink("elsewhere", p)
		err = Install(o)
		want = p + ": is a symbolic link, want a regular file: not followed, as "
		tail := ": " + effects[name] + "; left alone (put the file it names in its place, and run qmail-install again)"
		if err == nil || qerr.ExitCode(err) != 111 || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), tail) {
			t.Errorf("repair of a symbolic link %s: %v, want exit 111 and %q...%q", name, err, want, tail)
		}
		if dev, _ := Check(root); len(dev) != 1 || !strings.HasPrefix(dev[0], rel+": is a symbolic link, want a regular file: ") {
			t.Errorf("check of a symbolic link %s: %q", name, dev)
		}
		os.Remove(p)
	}
	if err := Install(o); err != nil {
		t.Errorf("repair once they are gone: %v", err)
	}
}

// TestCheckDotlessHint: the advice for a defaultdomain equal to a
// dotless me names each name to add once.
func TestCheckDotlessHint(t *testing.T) {
	root, _ := installed(t)
	ctl := filepath.Join(root, "control")
	for _, me := range []string{"vm", "localhost", "LocalHost"} {
		os.WriteFile(filepath.Join(ctl, "me"), []byte(me+"\n"), 0o644)
		os.WriteFile(filepath.Join(ctl, "defaultdomain"), []byte(me+"\n"), 0o644)
		add := me + ".localdomain and localhost.localdomain"
		if strings.EqualFold(me, "localhost") {
			add = me + ".localdomain"
		}
		want := "control/defaultdomain: " + me + ", the dotless control/me " + me + ": mail to a bare user goes to user@" + me + "." + me +
			", which is not local; write localdomain to defaultdomain and plusdomain, and add " + add + " to locals and rcpthosts (as a new install does)"
		if dev, _ := Check(root); !slices.Equal(dev, []string{want}) {
			t.Errorf("me %s:\n got %q\nwant %q", me, dev, want)
		}
	}
}

// TestInstallLocalsLocalhost: a new tree's locals hold localhost and
// localhost.DEFAULTDOMAIN, the name qmail-inject makes of user@localhost
// (with me laptop.test, that mail went to the smarthost).
func TestInstallLocalsLocalhost(t *testing.T) {
	root := filepath.Join(searchableDir(t), "q")
	o := opts(t, root)
	o.Me = "laptop.test"
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"locals", "rcpthosts"} {
		if b, _ := os.ReadFile(filepath.Join(root, "control", n)); string(b) != "laptop.test\nlocalhost\nlocalhost.laptop.test\n" {
			t.Errorf("%s: %q", n, b)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "control", "defaultdomain")); string(b) != "laptop.test\n" {
		t.Errorf("defaultdomain: %q", b)
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Errorf("check: %q %v", dev, err)
	}
}

// TestCheckLocalhostLocal: -check names a control/locals (of a tree made
// before it held localhost.DEFAULTDOMAIN) that lacks the name
// qmail-inject gives user@localhost, with the line to add, to
// control/rcpthosts too when that one exists and lacks it (a new install
// writes it to both); a name control/virtualdomains delivers locally is
// no deviation.
func TestCheckLocalhostLocal(t *testing.T) {
	root, _ := installed(t)
	ctl := func(name, data string) {
		p := filepath.Join(root, "control", name)
		if data == "-" {
			os.Remove(p)
			return
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const tail = ": such mail is not local and is sent away; "
	// rcpthosts as an old install wrote it, unless a case says otherwise.
	const oldRcpt = "laptop.test\nlocalhost\n"
	for _, tc := range []struct {
		name                         string
		me, dom, locals, vdoms, want string
		rcpthosts                    string
	}{
		{"old locals", "laptop.test\n", "laptop.test\n", "laptop.test\nlocalhost\n", "-",
			"control/locals: lacks localhost.laptop.test, the domain qmail-inject and sendmail give mail to user@localhost " +
				"(they append .laptop.test, from control/defaultdomain, to a host without a dot)" + tail +
				"add the line localhost.laptop.test to control/locals and to control/rcpthosts (as a new install does), then run qmailctl reload", ""},
		{"old locals, rcpthosts has it", "laptop.test\n", "laptop.test\n", "laptop.test\nlocalhost\n", "-",
			"control/locals: lacks localhost.laptop.test, the domain qmail-inject and sendmail give mail to user@localhost " +
				"(they append .laptop.test, from control/defaultdomain, to a host without a dot)" + tail +
				"add the line localhost.laptop.test to control/locals (as a new install does), then run qmailctl reload",
			"laptop.test\nLocalhost.Laptop.Test\n"},
		{"old locals, no rcpthosts", "laptop.test\n", "laptop.test\n", "laptop.test\nlocalhost\n", "-",
			"control/locals: lacks localhost.laptop.test, the domain qmail-inject and sendmail give mail to user@localhost " +
				"(they append .laptop.test, from control/defaultdomain, to a host without a dot)" + tail +
				"add the line localhost.laptop.test to control/locals (as a new install does), then run qmailctl reload", "-"},
		{"no defaultdomain", "laptop.test\n", "-", "laptop.test\nlocalhost\n", "-",
			"control/locals: lacks localhost.laptop.test, the domain qmail-inject and sendmail give mail to user@localhost " +
				"(they append .laptop.test, from control/me in the absence of control/defaultdomain, to a host without a dot)" + tail +
				"add the line localhost.laptop.test to control/locals and to control/rcpthosts (as a new install does), then run qmailctl reload", ""},
		{"no defaultdomain, me with two dots", "mail.example.com\n", "-", "mail.example.com\nlocalhost\nlocalhost.example.com\n", "-",
			"control/locals: lacks localhost.mail.example.com, the domain qmail-inject and sendmail give mail to user@localhost " +
				"(they append .mail.example.com, from control/me in the absence of control/defaultdomain, to a host without a dot)" + tail +
				"add the line localhost.mail.example.com to control/locals and to control/rcpthosts (as a new install does), then run qmailctl reload", ""},
		{"no locals", "mail.example.com\n", "example.com\n", "-", "-",
			"control/locals: missing, so only control/me mail.example.com is local, not localhost.example.com, the domain qmail-inject " +
				"and sendmail give mail to user@localhost (they append .example.com, from control/defaultdomain, to a host without a dot)" + tail +
				"write mail.example.com, localhost and localhost.example.com to control/locals, one a line, " +
				"and add the line localhost.example.com to control/rcpthosts (as a new install does), then run qmailctl reload", ""},
		{"case", "laptop.test\n", "Laptop.Test\n", "LOCALHOST.laptop.TEST\n", "-", "", ""},
		{"virtual", "laptop.test\n", "laptop.test\n", "laptop.test\n", "localhost.laptop.test:alias\n", "", ""},
		{"virtual suffix", "laptop.test\n", "laptop.test\n", "laptop.test\n", ".laptop.test:alias\n", "", ""},
		{"virtual catch-all", "laptop.test\n", "laptop.test\n", "laptop.test\n", ":alias\n", "", ""},
		{"virtual exception", "laptop.test\n", "laptop.test\n", "laptop.test\n", "localhost.laptop.test:\n:alias\n",
			"control/locals: lacks localhost.laptop.test, ", ""},
		{"dotless me, localdomain", "vm\n", "localdomain\n", "vm\nlocalhost\nvm.localdomain\n", "-",
			"control/locals: lacks localhost.localdomain, ", ""},
		{"new dotless", "vm\n", "localdomain\n", "vm\nlocalhost\nvm.localdomain\nlocalhost.localdomain\n", "-", "", ""},
	} {
		ctl("me", tc.me)
		ctl("defaultdomain", tc.dom)
		ctl("locals", tc.locals)
		ctl("virtualdomains", tc.vdoms)
		ctl("rcpthosts", cmp.Or(tc.rcpthosts, oldRcpt))
		dev, err := Check(root)
		// A missing rcpthosts (qmail-smtpd accepts every domain) is
		// said first; a missing defaultdomain is me, no deviation.
		var missing []string
		if tc.rcpthosts == "-" {
			missing = append(missing, rcpthostsMissing)
		}
		if len(dev) < len(missing) || !slices.Equal(dev[:len(missing)], missing) {
			t.Errorf("%s: %q, want first %q", tc.name, dev, missing)
			continue
		}
		dev = dev[len(missing):]
		switch {
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want == "" && len(dev) != 0:
			t.Errorf("%s: %q, want nothing", tc.name, dev)
		case tc.want != "" && (len(dev) != 1 || !strings.HasPrefix(dev[0], tc.want)):
			t.Errorf("%s:\n got %q\nwant %q", tc.name, dev, tc.want)
		}
	}
}

// TestProgramsAreCmd: Programs names every program of cmd/, and only
// those: one missing would not be installed (the repair copies and
// changes only these).
func TestProgramsAreCmd(t *testing.T) {
	ents, err := os.ReadDir(filepath.Join("..", "..", "cmd"))
	if err != nil {
		t.Fatal("cmd/ of the module cannot be read:", err)
	}
	var cmds []string
	for _, e := range ents {
		if e.IsDir() {
			cmds = append(cmds, e.Name())
		}
	}
	got := slices.Clone(Programs)
	slices.Sort(got)
	if !slices.Equal(got, cmds) {
		t.Errorf("Programs %q, cmd/ has %q", got, cmds)
	}
}

// TestInstallFewDescriptors: under a descriptor limit too low for the
// tree's directories, which the run keeps open, qmail-install refuses at
// once and says what it needs, changing nothing. It stopped part way
// ("too many open files"), leaving a tree without etc/ids that -check
// then took for one qmail had installed, or the runtime died (QA limits).
func TestInstallFewDescriptors(t *testing.T) {
	if root := os.Getenv("HQMAIL_TEST_FEWFDS"); root != "" {
		lim := syscall.Rlimit{Cur: 64, Max: 64}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			fmt.Println("setrlimit:", err)
			os.Exit(1)
		}
		// Not opts: its t.TempDir would outlive this os.Exit (81 were
		// left in /tmp). The source goes beside root, in the parent's
		// temporary directory.
		src := filepath.Join(filepath.Dir(root), "src")
		os.Mkdir(src, 0o755)
		fmt.Println("result:", Install(optsFrom(root, fakeSourceIn(src))))
		os.Exit(0)
	}
	root := filepath.Join(searchableDir(t), "q")
	cmd := exec.Command(os.Args[0], "-test.run=^TestInstallFewDescriptors$")
	cmd.Env = append(os.Environ(), "HQMAIL_TEST_FEWFDS="+root)
	out, err := cmd.CombinedOutput()
	want := fmt.Sprintf("result: the descriptor limit is 64 (hard limit 64); qmail-install keeps each directory of the tree open while it works and needs %d", fdsNeeded)
	if err != nil || !strings.Contains(string(out), want) {
		t.Errorf("%v:\n%s\nwant %q", err, out, want)
	}
	if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the tree was started: %v", err)
	}
}
