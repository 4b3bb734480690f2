package install

import (
	"errors"
	"os"
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
		{"mail.example.com", "example.com", "mail.example.com\nlocalhost\n"},
		{"a.b.c.d", "b.c.d", "a.b.c.d\nlocalhost\n"},
		{"example.com", "example.com", "example.com\nlocalhost\n"},
		// Without a dot, qmail-inject makes root root@NAME.localdomain:
		// that must be local.
		{"vm", "localdomain", "vm\nlocalhost\nvm.localdomain\nlocalhost.localdomain\n"},
		{"localhost", "localdomain", "localhost\nlocalhost.localdomain\n"},
		{"[192.0.2.1]", "[192.0.2.1]", "[192.0.2.1]\nlocalhost\n"},
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
	os.MkdirAll(filepath.Join(root, "control"), 0o755)
	old := MailnameFile
	t.Cleanup(func() { MailnameFile = old })
	MailnameFile = filepath.Join(root, "mailname")
	host, _ := os.Hostname()
	check := func(want string) {
		t.Helper()
		if got, err := mailName(root); err != nil || got != want {
			t.Errorf("mailName = %q, %v; want %q", got, err, want)
		}
	}
	check(host)
	os.WriteFile(MailnameFile, []byte("shortname\n"), 0o644)
	check(host)
	os.WriteFile(MailnameFile, []byte("mail.example.net\n"), 0o644)
	check("mail.example.net")
	os.WriteFile(filepath.Join(root, "control", "me"), []byte("kept.example\n"), 0o644)
	check("kept.example")
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

// fakeSource is a directory with two "programs" and a non-executable file.
func fakeSource(t *testing.T) string {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "qmail-queue"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(src, "qmail-inject"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(src, "README"), []byte("not a program\n"), 0o644)
	return src
}

func opts(t *testing.T, root string) Options {
	o := Options{Root: root, Me: "mx.example.org", Source: fakeSource(t)}
	if os.Geteuid() == 0 {
		o.UIDBase = 64110
	}
	return o
}

func TestInstallAndCheck(t *testing.T) {
	root := filepath.Join(t.TempDir(), "q")
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
		dev, _ = Check(root)
		if !slices.Contains(dev, "control/holdremote: mode 0600, not readable by qmail's users (chmod 644)") ||
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
	os.Remove(filepath.Join(root, "control", "defaultdomain")) // defaults to me
	if dev, _ := Check(root); len(dev) != 1 || !strings.Contains(dev[0], "user@vm.vm") {
		t.Errorf("dotless me, no defaultdomain: %q", dev)
	}
	os.WriteFile(filepath.Join(root, "control", "defaultdomain"), []byte("localdomain\n"), 0o644)
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
