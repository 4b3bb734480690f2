package aliases

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/hqmail/hqmail/pkg/qhome"
)

// includeFiles writes :include: files into dir, owned by owner (a uid
// other than root's; only root can give them away, otherwise they stay
// the caller's, and owner must be it).
func includeFiles(t *testing.T, dir string, owner int, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() == 0 {
			if err := os.Chown(p, owner, owner); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// searchableDir returns a new directory that any user can search, as
// can its parent (t.TempDir's parent is private to the test's user: the
// alias user newaliases checks for could not reach a file in it).
func searchableDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for _, p := range []string{filepath.Dir(d), d} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// otherUIDs returns a uid that owns the test's include files and another
// one for the delivering user.
func otherUIDs() (owner, deliver int) {
	if os.Geteuid() == 0 {
		return 4242, 4243
	}
	return os.Geteuid(), os.Geteuid() + 1
}

// TestIncludeWarnings: newaliases names each :include: file whose
// program and file lines fastforward will skip at delivery (the file, or
// one it is included from, belongs to neither root nor the delivering
// user), with its owner and those lines, once; a file that includes
// itself (fastforward bounces) and a missing file (fastforward defers)
// are named too; a file of addresses only, /dev/null and a file of the
// delivering user give nothing more.
func TestIncludeWarnings(t *testing.T) {
	dir := t.TempDir()
	owner, deliver := otherUIDs()
	p := func(n string) string { return filepath.Join(dir, n) }
	includeFiles(t, dir, owner, map[string]string{
		"staff.list": "bob@example.org, carol@example.org\n|/usr/bin/id\n# |not a line\n/var/log/staff.mbox\n/dev/null\n" +
			"/srv/Maildir/\n\"|/bin/prog a, b\"\n:include:" + p("sub.list") + "\n:include:" + p("staff.list") + "\n",
		"sub.list":   "|/bin/sub\n",
		"addrs.list": "dave@example.org\n/dev/null\n",
	})
	src := "aliases"
	aliases := "staff: :include:" + p("staff.list") + "\n" +
		"again: :include:" + p("staff.list") + "\n" +
		"addrs: :include:" + p("addrs.list") + "\n" +
		"gone: :include:" + p("missing.list") + "\n"
	as, errs := Parse(strings.NewReader(aliases), src)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	got := includeWarnings(as, Deliverer{UID: deliver})
	want := []string{
		`aliases:1: warning: alias "staff": :include: ` + p("staff.list") + " belongs to " + userName(owner) +
			", not to root or to " + userName(deliver) + `, whom fastforward runs as: its program and file lines "|/usr/bin/id", ` +
			`"/var/log/staff.mbox", "/srv/Maildir/" and 1 more will be skipped at delivery (its addresses are still used)`,
		`aliases:1: warning: alias "staff": :include: ` + p("sub.list") + " is included from " + p("staff.list") +
			", which belongs to " + userName(owner) + ", not to root or to " + userName(deliver) +
			`, whom fastforward runs as: its program and file line "|/bin/sub" will be skipped at delivery (its addresses are still used)`,
	}
	loopGone := []string{
		`aliases:1: warning: alias "staff": fastforward will bounce every message to it: Include loop: ` + p("staff.list") +
			` includes itself, directly or through other :include: files. (#5.4.6)`,
		`aliases:4: warning: alias "gone": fastforward will defer every message to it (the mail stays queued): Unable to read include file ` +
			p("missing.list") + `: file does not exist. (#4.2.1)`,
	}
	want = append(want, loopGone...)
	if !slices.Equal(got, want) {
		t.Errorf("warnings:\n got %q\nwant %q", got, want)
	}
	// The delivering user's own files are trusted.
	if got := includeWarnings(as, Deliverer{UID: owner}); !slices.Equal(got, loopGone) {
		t.Errorf("files of the delivering user:\n got %q\nwant %q", got, loopGone)
	}
	// And root's, whoever delivers.
	if os.Geteuid() == 0 {
		for _, n := range []string{"staff.list", "sub.list"} {
			os.Chown(p(n), 0, 0)
		}
		if got := includeWarnings(as, Deliverer{UID: deliver}); !slices.Equal(got, loopGone) {
			t.Errorf("files of root:\n got %q\nwant %q", got, loopGone)
		}
	}
	// A file its group can write is trusted as little as another
	// user's, whoever owns it (fastforward skips its program lines).
	os.Chmod(p("sub.list"), 0o664)
	st, err := os.Stat(p("sub.list"))
	if err != nil {
		t.Fatal(err)
	}
	gid := int(st.Sys().(*syscall.Stat_t).Gid)
	got = includeWarnings(as, Deliverer{UID: owner})
	want = []string{
		`aliases:1: warning: alias "staff": :include: ` + p("sub.list") + " is writable by its group (gid " + strconv.Itoa(gid) +
			`): its program and file line "|/bin/sub" will be skipped at delivery (its addresses are still used)`,
	}
	want = append(want, loopGone...)
	if !slices.Equal(got, want) {
		t.Errorf("group-writable:\n got %q\nwant %q", got, want)
	}
}

// TestNewaliasesWarnsInclude: newaliases and newaliases -n print the
// warning (the alias user from etc/ids), and compile as before: the exit
// code does not change.
func TestNewaliasesWarnsInclude(t *testing.T) {
	root := searchableDir(t)
	owner, deliver := otherUIDs()
	os.Mkdir(filepath.Join(root, "etc"), 0o755)
	ids := qhome.SharedIDs(deliver, deliver)
	if err := os.WriteFile(filepath.Join(root, qhome.IDsFile), []byte(ids.Format()), 0o644); err != nil {
		t.Fatal(err)
	}
	includeFiles(t, root, owner, map[string]string{"list": "|/usr/bin/id\nann@example.org\n"})
	src := filepath.Join(root, "aliases")
	os.WriteFile(src, []byte("postmaster: root\nlist: :include:"+filepath.Join(root, "list")+"\n"), 0o644)
	want := "newaliases: " + src + `:2: warning: alias "list": :include: ` + filepath.Join(root, "list") + " belongs to " + userName(owner) +
		", not to root or to " + userName(deliver) + `, whom fastforward runs as: its program and file line "|/usr/bin/id" will be skipped at delivery` +
		" (its addresses are still used)\n"
	for _, args := range [][]string{{"-f", src}, {"-n", "-f", src}} {
		var out, errb strings.Builder
		if code := NewaliasesMain(root, args, &out, &errb); code != 0 {
			t.Errorf("%v: exit %d\n%s", args, code, errb.String())
		}
		if errb.String() != want {
			t.Errorf("%v: stderr\n got %q\nwant %q", args, errb.String(), want)
		}
		if !strings.Contains(out.String(), "2 aliases") {
			t.Errorf("%v: stdout %q", args, out.String())
		}
	}
}
