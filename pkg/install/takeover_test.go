package install

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/cdb"
)

// optionalControls are the control files whose absence has a
// qmail-defined default: qmail-install makes them in a new tree only.
var optionalControls = []string{"defaultdomain", "plusdomain", "locals", "rcpthosts"}

// rcpthostsLine is what the repair and -check say of a tree with me and
// without rcpthosts, written out (rcpthostsMissing).
const rcpthostsLine = "control/rcpthosts: missing, so qmail-smtpd accepts mail for every domain, an open relay if it listens on the network; " +
	"list the domains this host takes mail for in control/rcpthosts, one a line: control/me, localhost, and those of control/locals " +
	"and control/virtualdomains (qmail-install makes it only in a new tree)"

// TestTakeoverKeepsAbsentControls: a qmail tree taken over (control/me,
// no etc/ids) that lacks defaultdomain, plusdomain, locals and
// rcpthosts keeps lacking them: qmail's defaults (me; every domain
// accepted) were what it did, and files made from me (the parent domain
// in defaultdomain, a rcpthosts of me and localhost) changed it (QA:
// mail for the virtualdomains refused with 553). The run says a missing
// rcpthosts, and -check says it the same way; neither names the others
// as missing. A repair of a tree hqmail made does the same.
func TestTakeoverKeepsAbsentControls(t *testing.T) {
	absent := func(what, root string) {
		t.Helper()
		for _, n := range optionalControls {
			if _, err := os.Lstat(filepath.Join(root, "control", n)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: control/%s made (%v)", what, n, err)
			}
		}
	}
	checkLines := func(what, root string) {
		t.Helper()
		dev, err := Check(root)
		if err != nil || !slices.Contains(dev, rcpthostsLine) {
			t.Errorf("%s: check %q %v lacks %q", what, dev, err, rcpthostsLine)
		}
		for _, l := range dev {
			if strings.Contains(l, ": missing (a re-run makes it") {
				t.Errorf("%s: check says %q", what, l)
			}
		}
	}
	var log bytes.Buffer

	// qmail's tree: control/me and queue/, no etc/ids.
	root := filepath.Join(searchableDir(t), "q")
	for _, d := range []string{"control", "queue"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "control", "me"), []byte("mail.example.org\n"), 0o644)
	o := opts(t, root)
	o.Me = ""
	o.Log = &log
	if err := Install(o); err != nil {
		t.Fatalf("takeover: %v\n%s", err, log.String())
	}
	absent("takeover", root)
	if !strings.Contains(log.String(), "qmail-install: warning: "+rcpthostsLine+"\n") {
		t.Errorf("takeover: log %q lacks the rcpthosts line", log.String())
	}
	if b, _ := os.ReadFile(filepath.Join(root, "control", "me")); string(b) != "mail.example.org\n" {
		t.Errorf("control/me: %q", b)
	}
	checkLines("takeover", root)

	// A tree hqmail made, the four removed: a repair leaves them so.
	root, o = installed(t)
	for _, n := range optionalControls {
		os.Remove(filepath.Join(root, "control", n))
	}
	log.Reset()
	o.Log = &log
	if err := Install(o); err != nil {
		t.Fatalf("repair: %v\n%s", err, log.String())
	}
	absent("repair", root)
	if strings.Count(log.String(), rcpthostsLine) != 1 {
		t.Errorf("repair: log %q, want the rcpthosts line once", log.String())
	}
	checkLines("repair", root)

	// With rcpthosts there, nothing is said of it.
	os.WriteFile(filepath.Join(root, "control", "rcpthosts"), []byte("mx.example.org\n"), 0o644)
	log.Reset()
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(log.String(), "rcpthosts") {
		t.Errorf("repair with rcpthosts: log %q", log.String())
	}
	if dev, _ := Check(root); slices.Contains(dev, rcpthostsLine) {
		t.Errorf("check with rcpthosts: %q", dev)
	}
}

// TestNewInstallMakesControls: a new tree gets all of DefaultControl and
// no word about rcpthosts; so does one whose first run stopped before it
// made control/me (written last), keeping what that run made, and one
// whose first run stopped before etc/ids, with queue/ and an empty
// control/ made, which looks like a tree qmail installed but cannot be
// one that ran.
func TestNewInstallMakesControls(t *testing.T) {
	for _, partial := range []string{"", "before me", "before etc/ids"} {
		root := filepath.Join(searchableDir(t), "q")
		o := opts(t, root)
		switch partial {
		case "before me":
			os.MkdirAll(filepath.Join(root, "control"), 0o755)
			os.WriteFile(filepath.Join(root, "control", "locals"), []byte("kept.example\n"), 0o644)
		case "before etc/ids":
			// A full disk, say, when etc/ids is renamed into place.
			t.Cleanup(func() { testHook = nil })
			testHook = func(step, rel string) {
				if step == "rename" && rel == "etc/ids" {
					tmps, _ := filepath.Glob(filepath.Join(root, "etc", ".ids.new*"))
					for _, p := range tmps {
						os.Remove(p)
					}
				}
			}
			if err := Install(o); err == nil {
				t.Fatal("the first run did not stop")
			}
			testHook = nil
			if !qmailInstalled(root) {
				t.Fatal("the first run that stopped before etc/ids left no tree that looks like qmail's: the case tests nothing")
			}
		}
		var log bytes.Buffer
		o.Log = &log
		if err := Install(o); err != nil {
			t.Fatalf("partial %q: %v\n%s", partial, err, log.String())
		}
		for n, data := range DefaultControl(o.Me) {
			if partial == "before me" && n == "locals" {
				data = "kept.example\n"
			}
			if b, err := os.ReadFile(filepath.Join(root, "control", n)); err != nil || string(b) != data {
				t.Errorf("partial %q: control/%s %q %v, want %q", partial, n, b, err, data)
			}
		}
		if strings.Contains(log.String(), "rcpthosts") {
			t.Errorf("partial %q: log %q", partial, log.String())
		}
	}
}

// qmailNewuCDB is users/cdb as qmail 1.03's qmail-newu writes it from
// assign: a record for every line, in order, a key that repeats
// included, and the "" record of the wildcard characters last.
func qmailNewuCDB(t *testing.T, assign string) []byte {
	t.Helper()
	var db bytes.Buffer
	w := cdb.NewWriter(&db)
	var wild []byte
	for _, line := range strings.Split(assign, "\n") {
		if strings.HasPrefix(line, ".") {
			break
		}
		name, rest, _ := strings.Cut(line, ":")
		f := strings.Split(rest, ":")
		key := "!" + strings.ToLower(name[1:])
		if name[0] == '+' {
			if c := name[len(name)-1]; len(name) > 1 && bytes.IndexByte(wild, c) < 0 {
				wild = append(wild, c)
			}
		} else {
			key += "\x00"
		}
		if err := w.Add([]byte(key), []byte(strings.Join(f[:6], "\x00"))); err != nil {
			t.Fatal(err)
		}
	}
	w.Add(nil, wild)
	hdr, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	b := db.Bytes()
	copy(b, hdr[:])
	return b
}

// TestCheckQmailNewuCDB: a users/cdb that qmail's qmail-newu built is no
// deviation when it answers every lookup as the repair's would, though
// its bytes differ where users/assign repeats a key (=alice and =ALICE:
// qmail-newu keeps both records, the repair the first); -check said
// "not compiled from the users/assign there". One that answers a lookup
// otherwise (the lines the other way round, a key missing or added) is
// still named.
func TestCheckQmailNewuCDB(t *testing.T) {
	root, o := installed(t)
	const assign = "=alice:alice:1001:1001:/home/alice:::\n" +
		"=ALICE:other:1002:1002:/home/other:::\n" +
		"+foo-:foo:1003:1003:/home/foo:-::\n" +
		"+FOO-:bar:1004:1004:/home/bar:-::\n" +
		"+:alias:1005:1005:/home/alias:-::\n" +
		".\n"
	if err := os.WriteFile(filepath.Join(root, "users", "assign"), []byte(assign), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	cdbPath := filepath.Join(root, "users", "cdb")
	ours, err := os.ReadFile(cdbPath)
	if err != nil {
		t.Fatal(err)
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Fatalf("check of the repair's users/cdb: %q %v", dev, err)
	}
	const stale = "users/cdb: not compiled from the users/assign there (a re-run rebuilds it, as qmail-newu does)"
	for _, tc := range []struct {
		name, from string
		ok         bool
	}{
		{"qmail-newu's", assign, true},
		{"lines the other way round", strings.Replace(assign, "=alice:alice:1001:1001:/home/alice:::\n=ALICE:other:1002:1002:/home/other:::\n",
			"=ALICE:other:1002:1002:/home/other:::\n=alice:alice:1001:1001:/home/alice:::\n", 1), false},
		{"a key missing", strings.Replace(assign, "+foo-:foo:1003:1003:/home/foo:-::\n+FOO-:bar:1004:1004:/home/bar:-::\n", "", 1), false},
		{"a key added", "=bob:bob:1006:1006:/home/bob:::\n" + assign, false},
		{"another wildcard set", strings.Replace(assign, "+:alias", "+x:alias", 1), false},
	} {
		db := qmailNewuCDB(t, tc.from)
		if tc.ok && bytes.Equal(db, ours) {
			t.Fatalf("%s: the same bytes as the repair's: the case tests nothing", tc.name)
		}
		if err := os.WriteFile(cdbPath, db, 0o644); err != nil {
			t.Fatal(err)
		}
		dev, err := Check(root)
		switch {
		case err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.ok && len(dev) != 0:
			t.Errorf("%s: check %q, want nothing", tc.name, dev)
		case !tc.ok && !slices.Equal(dev, []string{stale}):
			t.Errorf("%s: check %q, want %q", tc.name, dev, stale)
		}
	}
	// A damaged one (cut short) is named too.
	os.WriteFile(cdbPath, qmailNewuCDB(t, assign)[:2100], 0o644)
	if dev, _ := Check(root); !slices.Equal(dev, []string{stale}) {
		t.Errorf("a damaged users/cdb: check %q", dev)
	}
}

// TestTakeoverWithoutMe: a qmail tree taken over that has no control/me
// (qmail runs with locals alone) is not new, though me is absent: no
// optional control file is made, neither at the takeover nor at a later
// run, once etc/ids makes it no longer look like qmail's (QA: rcpthosts
// of me and localhost made, and mail for its virtualdomains refused with
// 553, the bug of ad89439 again). me alone is made, and said, as
// hqmail's qmail-remote and qmail-smtpd cannot work without it; -check
// names it before.
func TestTakeoverWithoutMe(t *testing.T) {
	root, o := installed(t)
	ctl := filepath.Join(root, "control")
	for _, n := range []string{"me", "rcpthosts", "defaultdomain", "plusdomain"} {
		if err := os.Remove(filepath.Join(ctl, n)); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(ctl, "virtualdomains"), []byte("virt.example:alias-virt\n"), 0o644)
	// An hqmail tree so, not new (users/assign is there): -check names me.
	if dev, err := Check(root); err != nil || !slices.Contains(dev, meMissing) {
		t.Errorf("before: check %q %v lacks the line on me", dev, err)
	}
	// qmail's tree: no etc/ids.
	if err := os.Remove(filepath.Join(root, "etc", "ids")); err != nil {
		t.Fatal(err)
	}
	locals, _ := os.ReadFile(filepath.Join(ctl, "locals"))
	var log bytes.Buffer
	o.Log = &log
	me := o.Me // the name locals was made for
	for _, run := range []string{"takeover", "the run after it"} {
		log.Reset()
		if err := Install(o); err != nil {
			t.Fatalf("%s: %v\n%s", run, err, log.String())
		}
		if b, err := os.ReadFile(filepath.Join(ctl, "me")); err != nil || string(b) != me+"\n" {
			t.Errorf("%s: control/me %q %v", run, b, err)
		}
		for _, n := range []string{"rcpthosts", "defaultdomain", "plusdomain"} {
			if _, err := os.Lstat(filepath.Join(ctl, n)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: control/%s made (%v)", run, n, err)
			}
		}
		if b, _ := os.ReadFile(filepath.Join(ctl, "locals")); !bytes.Equal(b, locals) {
			t.Errorf("%s: control/locals %q, want %q", run, b, locals)
		}
		if !strings.Contains(log.String(), "qmail-install: warning: "+rcpthostsLine+"\n") {
			t.Errorf("%s: log %q lacks the rcpthosts line", run, log.String())
		}
		made := strings.Contains(log.String(), "qmail-install: note: "+meMade(me)+"\n")
		if made != (run == "takeover") {
			t.Errorf("%s: log %q: note on me %v", run, log.String(), made)
		}
		// (Its advice on locals, which lacks localhost.ME now that
		// defaultdomain is gone, is right: not looked at here.)
		dev, err := Check(root)
		if err != nil || !slices.Contains(dev, rcpthostsLine) || slices.Contains(dev, meMissing) {
			t.Errorf("%s: check %q %v, want the rcpthosts line and none on me", run, dev, err)
		}
	}
}

// TestTakeoverWithoutMeOrLocals: a qmail tree (no etc/ids) with neither
// me nor locals gets me alone at its takeover.
func TestTakeoverWithoutMeOrLocals(t *testing.T) {
	root := filepath.Join(searchableDir(t), "q")
	for _, d := range []string{"control", "queue"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "control", "virtualdomains"), []byte("virt.example:alias-virt\n"), 0o644)
	var log bytes.Buffer
	o := opts(t, root)
	o.Log = &log
	if err := Install(o); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if b, err := os.ReadFile(filepath.Join(root, "control", "me")); err != nil || string(b) != o.Me+"\n" {
		t.Errorf("control/me: %q %v", b, err)
	}
	for _, n := range optionalControls {
		if _, err := os.Lstat(filepath.Join(root, "control", n)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("control/%s made (%v)", n, err)
		}
	}
	if !strings.Contains(log.String(), "qmail-install: note: "+meMade(o.Me)+"\n") {
		t.Errorf("log %q lacks the note on me", log.String())
	}
}

// TestCheckNewTreeWithoutMe: a tree with etc/ids but without control/me
// and users/assign (its first run stopped before them) is new: -check
// names each missing control file as one a re-run makes, and the re-run
// makes them.
func TestCheckNewTreeWithoutMe(t *testing.T) {
	root, o := installed(t)
	for _, rel := range []string{"control/me", "control/plusdomain", "users/assign", "users/cdb"} {
		if err := os.Remove(filepath.Join(root, rel)); err != nil {
			t.Fatal(err)
		}
	}
	dev, err := Check(root)
	for _, l := range []string{
		"control/me: missing (a re-run makes it, as a new install does)",
		"control/plusdomain: missing (a re-run makes it, as a new install does)",
	} {
		if err != nil || !slices.Contains(dev, l) {
			t.Errorf("check %q %v lacks %q", dev, err, l)
		}
	}
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	for n, data := range DefaultControl(o.Me) {
		if b, err := os.ReadFile(filepath.Join(root, "control", n)); err != nil || string(b) != data {
			t.Errorf("control/%s %q %v, want %q", n, b, err, data)
		}
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Errorf("check after the re-run: %q %v", dev, err)
	}
}
