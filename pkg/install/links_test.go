package install

import (
	"bytes"
	"io/fs"
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

// fileState is what the repair could change of a file: kind, mode,
// owner, size, contents.
type fileState struct {
	mode     uint32
	uid, gid uint32
	size     int64
	data     string
}

// snapshot records every path below dir (symbolic links not followed).
func snapshot(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	m := map[string]fileState{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		s := fileState{mode: st.Mode, uid: st.Uid, gid: st.Gid}
		if st.Mode&syscall.S_IFMT == syscall.S_IFREG {
			b, _ := os.ReadFile(p)
			s.size, s.data = st.Size, string(b)
		}
		rel, _ := filepath.Rel(dir, p)
		m[rel] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// sameSnapshot reports the differences between two snapshots.
func sameSnapshot(t *testing.T, what string, before, after map[string]fileState) {
	t.Helper()
	for p, a := range after {
		b, ok := before[p]
		switch {
		case !ok:
			t.Errorf("%s: %s was created outside the tree (mode %o, uid %d)", what, p, a.mode, a.uid)
		case a != b:
			t.Errorf("%s: %s changed outside the tree: %+v, was %+v", what, p, a, b)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			t.Errorf("%s: %s removed outside the tree", what, p)
		}
	}
}

// decoy makes a directory outside the tree that holds, when full is set,
// what the repair would touch below rel, as files of the caller with
// modes no entry has (0751 for directories, 0640 for files, "decoy"
// inside), and returns it.
func decoy(t *testing.T, rel string, full bool) string {
	t.Helper()
	d := filepath.Join(searchableDir(t), "decoy")
	if err := os.Mkdir(d, 0o751); err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o751)
	if !full {
		return d
	}
	extra := map[string][]string{
		"queue/bounce": {"holdperiods", "heldmsgs"},
		"queue/lock":   {"queued"},
		"bin":          {"qmail-queue", "qmail-inject"},
		"etc":          {"ids", "aliases.cdb"},
		"users":        {"assign", "cdb"},
		"control":      {"me"},
	}
	mk := func(sub string, dir bool) {
		p := filepath.Join(d, sub)
		if dir {
			os.Mkdir(p, 0o751)
			os.Chmod(p, 0o751)
			return
		}
		os.WriteFile(p, []byte("decoy\n"), 0o640)
		os.Chmod(p, 0o640)
	}
	for _, e := range Tree("") {
		if sub, ok := strings.CutPrefix(e.Path, rel+"/"); ok {
			mk(sub, e.Kind == Dir)
		}
	}
	for dir, names := range extra {
		sub, ok := strings.CutPrefix(dir, rel+"/")
		if dir == rel {
			sub, ok = "", true
		}
		if !ok {
			continue
		}
		for _, n := range names {
			mk(filepath.Join(sub, n), false)
		}
	}
	return d
}

// TestRepairDoesNotFollowDirLinks: a symbolic link in place of any
// directory of the table in a directory a qmail user owns (queue/info ->
// /somewhere, alias/Maildir -> /var) is reported and left alone with
// everything below it, never followed: nothing outside the tree changes
// owner or mode, and nothing is made there, whether the link's target
// holds what the repair would fix or is empty. The message says what to
// do. (Links in root's directories: TestRepairFollowsRootLinks.)
func TestRepairDoesNotFollowDirLinks(t *testing.T) {
	root, o := installed(t)
	for _, e := range Tree("") {
		if e.Kind != Dir || e.Path == "." || rootDirs[filepath.Dir(e.Path)] {
			continue
		}
		// Of the split directories (queue/info/0..22), the first and
		// the last stand for all.
		if n := filepath.Base(e.Path); n != "0" && n != strconv.Itoa(qhome.Split-1) && strings.Trim(n, "0123456789") == "" {
			continue
		}
		for _, full := range []bool{false, true} {
			out := decoy(t, e.Path, full)
			before := snapshot(t, out)
			p := filepath.Join(root, e.Path)
			if err := os.Rename(p, p+".saved"); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(out, p); err != nil {
				t.Fatal(err)
			}
			err := Install(o)
			want := p + ": is a symbolic link, want a directory: not followed, as " + whyNotFollowed(filepath.Dir(e.Path)) +
				"; it and everything below it were left alone " +
				"(put the directory itself in its place, or remove the link, and run qmail-install again)"
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s a link: error %v, want %q", e.Path, err, want)
			}
			sameSnapshot(t, e.Path+" a link (decoy full "+strconv.FormatBool(full)+")", before, snapshot(t, out))
			os.Remove(p)
			if err := os.Rename(p+".saved", p); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Errorf("check after the links went: %q %v", dev, err)
	}
}

// TestRepairDoesNotFollowFileLinks: a symbolic link in place of a file,
// FIFO or record of the tree in a directory a qmail user owns is never
// followed: its target keeps its owner, mode and contents. In root's
// directories a link is followed for reading, and its target's owner,
// mode and contents are kept too.
func TestRepairDoesNotFollowFileLinks(t *testing.T) {
	root, o := installed(t)
	table := map[string]bool{}
	paths := []string{"queue/bounce/holdperiods", "queue/bounce/heldmsgs", "etc/aliases.cdb", "users/assign"}
	for _, e := range Tree("") {
		if e.Kind != Dir {
			paths = append(paths, e.Path)
			table[e.Path] = true
		}
	}
	for _, rel := range paths {
		out := filepath.Join(searchableDir(t), "target")
		os.WriteFile(out, []byte("secret\n"), 0o640)
		before := snapshot(t, filepath.Dir(out))
		p := filepath.Join(root, rel)
		os.Rename(p, p+".saved")
		if err := os.Symlink(out, p); err != nil {
			t.Fatal(err)
		}
		err := Install(o)
		if fi, lerr := os.Lstat(p); lerr != nil || fi.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("%s: the link is gone: %v", rel, lerr)
		}
		sameSnapshot(t, rel+" a link", before, snapshot(t, filepath.Dir(out)))
		if table[rel] {
			want := p + ": is a symbolic link, want a "
			if err == nil || !strings.Contains(err.Error(), want) ||
				!strings.Contains(err.Error(), ": not followed, as "+whyNotFollowed(filepath.Dir(rel))+"; left alone") ||
				!strings.Contains(err.Error(), "; left alone (put a ") {
				t.Errorf("%s a link: error %v, want %q...", rel, err, want)
			}
		}
		if rel == "users/assign" && (err == nil || !strings.Contains(err.Error(), "bad format in users/assign")) {
			// Read through (it is no users/assign): that is said.
			t.Errorf("users/assign a link to a bad file: %v", err)
		}
		os.Remove(p)
		os.Rename(p+".saved", p)
	}
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Errorf("check after the links went: %q %v", dev, err)
	}
}

// TestRepairRace: the directories are opened once, from the root, and
// every change is made relative to them, so a directory swapped for a
// link while the repair runs (a qmail user racing root, renameat2
// RENAME_EXCHANGE in a loop) changes nothing outside the tree. The swaps
// are made at the worst moments: just after the repair opened the
// directory (it goes on in the real one, renamed), and just before it
// opens a name (the link is met, not followed).
func TestRepairRace(t *testing.T) {
	root, o := installed(t)
	t.Cleanup(func() { testHook = nil })
	swap := func(rel, out string) {
		p := filepath.Join(root, rel)
		if err := os.Rename(p, p+".real"); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(out, p); err != nil {
			t.Fatal(err)
		}
	}
	unswap := func(rel string) {
		p := filepath.Join(root, rel)
		os.Remove(p)
		if err := os.Rename(p+".real", p); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		step, at, swapped string
		full              bool
		err               string // "" none
	}{
		// alias/Maildir opened, then swapped for a link to an empty
		// directory: cur, new and tmp are made in the real one.
		{"opened", "alias/Maildir", "alias/Maildir", false, ""},
		// queue/info opened, then swapped for a link to a directory of
		// the caller holding 0..22.
		{"opened", "queue/info", "queue/info", true, ""},
		// queue/info swapped just before its subdirectory 1 is opened.
		{"open", "queue/info/1", "queue/info", true, ""},
		// alias/Maildir swapped just before the repair opens it: the
		// link is met.
		{"open", "alias/Maildir", "alias/Maildir", false, "alias/Maildir: is a symbolic link, want a directory: not followed"},
		// tcpto swapped for a link just before it is opened.
		{"open", "queue/lock/tcpto", "queue/lock/tcpto", false, "queue/lock/tcpto: is a symbolic link, want a regular file: not followed"},
	} {
		name := tc.step + " " + tc.at
		var out string
		if tc.swapped == "queue/lock/tcpto" {
			out = filepath.Join(searchableDir(t), "target")
			os.WriteFile(out, []byte("secret\n"), 0o640)
		} else {
			out = decoy(t, tc.swapped, tc.full)
		}
		before := snapshot(t, filepath.Dir(out))
		// What the repair must make or fix in the real directory.
		for _, s := range []string{"cur", "new", "tmp"} {
			os.Remove(filepath.Join(root, "alias", "Maildir", s))
		}
		os.Chmod(filepath.Join(root, "queue", "info", "1"), 0o755)
		os.Chmod(filepath.Join(root, "queue", "info", "14"), 0o755)
		done := false
		testHook = func(step, rel string) {
			if !done && step == tc.step && rel == tc.at {
				done = true
				swap(tc.swapped, out)
			}
		}
		err := Install(o)
		testHook = nil
		if !done {
			t.Fatalf("%s: the hook never ran", name)
		}
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want %q", name, err, tc.err)
		}
		sameSnapshot(t, name, before, snapshot(t, filepath.Dir(out)))
		if tc.err == "" {
			real := filepath.Join(root, tc.swapped+".real")
			for _, sub := range []string{"alias/Maildir/cur", "queue/info/1", "queue/info/14"} {
				if s, ok := strings.CutPrefix(sub, tc.swapped+"/"); ok {
					if fi, err := os.Stat(filepath.Join(real, s)); err != nil || fi.Mode().Perm() != 0o700 {
						t.Errorf("%s: %s in the real directory: %v %v", name, s, fi, err)
					}
				}
			}
		}
		unswap(tc.swapped)
	}
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Errorf("check after the races: %q %v", dev, err)
	}
}

// TestRepairHardLinks: a file of the tree with another link in a
// directory a qmail user owns is never changed through that name (a
// chown reaches it under every name): one whose owner and mode are right
// is left as it is; a cache (tcpto, sendstatus, the FIFOs) that must
// change is replaced by a new one; a file with data is left alone and
// reported (TestRepairKeepsLinkedData). qmails linking qmailr's tcpto as
// queue/bounce/holdperiods made the repair give the one file to qmailr
// 0664, then to qmails 0600, on every run; now tcpto is left as it is,
// holdperiods named. -check says the same.
func TestRepairHardLinks(t *testing.T) {
	root, ids := rootTree(t)
	o := opts(t, root)
	o.Source = filepath.Join(root, "bin") // programs kept, not copied anew
	q := func(p ...string) string { return filepath.Join(append([]string{root, "queue"}, p...)...) }
	stat := func(p string) syscall.Stat_t {
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	install := func(wantErr string) string {
		t.Helper()
		var log bytes.Buffer
		o.Log = &log
		err := Install(o)
		switch {
		case wantErr == "" && err != nil:
			t.Fatal(err)
		case wantErr != "" && (err == nil || qerr.ExitCode(err) != 111 || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("error %v, want exit 111 and %q", err, wantErr)
		}
		return log.String()
	}

	tcpto, hp := q("lock", "tcpto"), q("bounce", "holdperiods")
	b := make([]byte, TcptoSize)
	b[0] = 9
	os.WriteFile(tcpto, b, 0o664)
	ino := stat(tcpto).Ino
	if err := os.Link(tcpto, hp); err != nil {
		t.Fatal(err)
	}
	dev, _ := Check(root)
	want := []string{
		"queue/bounce/holdperiods: owner " + strconv.Itoa(ids.Qmailr.UID) + ", want " + strconv.Itoa(ids.Qmails.UID) + " (qmails)",
		"queue/bounce/holdperiods: mode 0664, want 0600",
		"queue/bounce/holdperiods: 2 hard links, want 1: a re-run leaves it alone while it must change; remove the other link " +
			"and run qmail-install again",
	}
	if !slices.Equal(dev, want) {
		t.Errorf("check of a linked tcpto:\n got %q\nwant %q", dev, want)
	}
	for i := 0; i < 2; i++ {
		log := install(hp + ": 2 hard links and owner qmailr, want qmails and mode 0664, want 0600: left alone; remove the other link " +
			"and run qmail-install again")
		if strings.Contains(log, "hard links") {
			t.Errorf("run %d: log %q", i, log)
		}
		st := stat(tcpto)
		if st.Ino != ino || st.Nlink != 2 || int(st.Uid) != ids.Qmailr.UID || st.Mode&0o7777 != 0o664 {
			t.Errorf("run %d: tcpto inode %d (was %d) links %d uid %d mode %04o", i, st.Ino, ino, st.Nlink, st.Uid, st.Mode&0o7777)
		}
		if got, _ := os.ReadFile(tcpto); !bytes.Equal(got, b) {
			t.Errorf("run %d: tcpto changed", i)
		}
	}
	os.Remove(hp)
	install("")
	if dev, _ := Check(root); len(dev) != 0 {
		t.Errorf("check once the link is gone: %q", dev)
	}

	// A cache that must change is replaced: tcpto of a wrong mode, size
	// or both (as new: its contents may be another file's).
	for _, tc := range []struct {
		mode os.FileMode
		size int
		what string
	}{
		{0o644, TcptoSize, "mode 0644, want 0664"},
		{0o664, 10, "size 10, want 1024"},
		{0o600, 2000, "mode 0600, want 0664 and size 2000, want 1024"},
	} {
		other := filepath.Join(searchableDir(t), "tcpto")
		os.WriteFile(tcpto, bytes.Repeat([]byte{7}, tc.size), 0o664)
		os.Chmod(tcpto, tc.mode)
		if err := os.Link(tcpto, other); err != nil {
			t.Fatal(err)
		}
		if dev, _ := Check(root); !slices.Contains(dev, "queue/lock/tcpto: 2 hard links, want 1 (a re-run replaces it)") {
			t.Errorf("%s: check %q", tc.what, dev)
		}
		if log := install(""); !strings.Contains(log, "qmail-install: warning: queue/lock/tcpto: 2 hard links and "+tc.what+"; replaced\n") {
			t.Errorf("%s: log %q", tc.what, log)
		}
		st := stat(tcpto)
		got, _ := os.ReadFile(tcpto)
		if st.Nlink != 1 || int(st.Uid) != ids.Qmailr.UID || st.Mode&0o7777 != 0o664 || !bytes.Equal(got, make([]byte, TcptoSize)) {
			t.Errorf("%s: tcpto links %d uid %d mode %04o, %d bytes", tc.what, st.Nlink, st.Uid, st.Mode&0o7777, len(got))
		}
		if st := stat(other); st.Mode&0o7777 != uint32(tc.mode) || st.Size != int64(tc.size) {
			t.Errorf("%s: the other link: mode %04o size %d", tc.what, st.Mode&0o7777, st.Size)
		}
	}

	// One of root's files linked into the tree as sendstatus keeps its
	// owner, mode and contents, which the replacement does not get; a
	// FIFO linked elsewhere with a wrong mode is replaced too.
	secret := filepath.Join(searchableDir(t), "secret")
	os.WriteFile(secret, []byte("secret\n"), 0o640)
	os.Remove(q("lock", "sendstatus"))
	if err := os.Link(secret, q("lock", "sendstatus")); err != nil {
		t.Fatal(err)
	}
	os.Chmod(q("lock", "trigger"), 0o666)
	os.Link(q("lock", "trigger"), q("bounce", "trigger"))
	dev, _ = Check(root)
	for _, l := range []string{"queue/lock/sendstatus: 2 hard links, want 1 (a re-run with qmail-send stopped replaces it)",
		"queue/lock/trigger: 2 hard links, want 1 (a re-run with qmail-send stopped replaces it)"} {
		if !slices.Contains(dev, l) {
			t.Errorf("check: %q lacks %q", dev, l)
		}
	}
	log := install("")
	for _, l := range []string{"sendstatus: 2 hard links and owner root, want qmails and group root, want qmail and mode 0640, want 0644; replaced",
		"trigger: 2 hard links and mode 0666, want 0622; replaced"} {
		if !strings.Contains(log, l) {
			t.Errorf("log %q lacks %q", log, l)
		}
	}
	if st := stat(secret); st.Uid != 0 || st.Mode&0o7777 != 0o640 || st.Nlink != 1 {
		t.Errorf("root's file: uid %d mode %04o links %d", st.Uid, st.Mode&0o7777, st.Nlink)
	}
	if b, _ := os.ReadFile(secret); string(b) != "secret\n" {
		t.Errorf("root's file now holds %q", b)
	}
	if b, _ := os.ReadFile(q("lock", "sendstatus")); len(b) != 0 {
		t.Errorf("sendstatus got the linked file's contents: %q", b)
	}
	if st := stat(q("lock", "trigger")); st.Mode&syscall.S_IFMT != syscall.S_IFIFO || st.Nlink != 1 || st.Mode&0o7777 != 0o622 {
		t.Errorf("trigger: mode %o links %d", st.Mode, st.Nlink)
	}
	os.Remove(q("bounce", "trigger"))

	// A record of qmails' with a second name whose owner and mode are
	// right is left as it is: nothing to change, no word.
	os.WriteFile(q("bounce", "heldmsgs"), []byte("held 1\n"), 0o600)
	os.Chown(q("bounce", "heldmsgs"), ids.Qmails.UID, ids.Qmail)
	os.Link(q("bounce", "heldmsgs"), q("bounce", "heldmsgs.old"))
	ino = stat(q("bounce", "heldmsgs")).Ino
	if dev, _ := Check(root); len(dev) != 0 {
		t.Errorf("check with a right heldmsgs linked: %q", dev)
	}
	if log := install(""); strings.Contains(log, "hard links") {
		t.Errorf("a right heldmsgs linked: %q", log)
	}
	if st := stat(q("bounce", "heldmsgs")); st.Ino != ino || st.Nlink != 2 {
		t.Errorf("heldmsgs: inode %d (was %d), %d links", st.Ino, ino, st.Nlink)
	}
	os.Remove(q("bounce", "heldmsgs.old"))
	if dev, _ := Check(root); len(dev) != 0 {
		t.Errorf("check after repair: %q", dev)
	}

	// A program with a second name (ln bin/sendmail /usr/sbin/sendmail)
	// is root's in a directory only root writes: left in place.
	other := filepath.Join(searchableDir(t), "qmail-inject")
	if err := os.Link(filepath.Join(root, "bin", "qmail-inject"), other); err != nil {
		t.Fatal(err)
	}
	if dev, _ := Check(root); len(dev) != 0 {
		t.Errorf("check with a program linked: %q", dev)
	}
	if log := install(""); strings.Contains(log, "hard links") {
		t.Errorf("a linked program: %q", log)
	}
	if st := stat(other); st.Nlink != 2 {
		t.Errorf("the program's link: %d links", st.Nlink)
	}
}

// TestRepairKeepsLinkedData: after a "cp -al" snapshot every file of the
// tree has a second link. One that holds data (heldmsgs, holdperiods,
// an edited ~alias/.qmail-default) and has a wrong owner (an old qmails
// uid) was replaced by an empty new file, and the holds were lost. Now
// it is left alone, neither chowned nor replaced, with what to do, and
// the run exits 111; -check says the same. Once the other link is gone,
// the repair changes it in place, contents kept.
func TestRepairKeepsLinkedData(t *testing.T) {
	root, ids := rootTree(t)
	o := opts(t, root)
	files := map[string]string{
		"queue/bounce/heldmsgs":    "held 1234 qmailctl\n",
		"queue/bounce/holdperiods": "remote 1 2\n",
		"alias/.qmail-default":     "|../bin/fastforward -d\n./Maildir/\n",
	}
	snap := searchableDir(t)
	ino := map[string]uint64{}
	for rel, data := range files {
		p := filepath.Join(root, rel)
		os.WriteFile(p, []byte(data), 0o600)
		if err := os.Chown(p, 12345, ids.Qmail); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(p, filepath.Join(snap, filepath.Base(rel))); err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		syscall.Stat(p, &st)
		ino[rel] = st.Ino
	}
	fix := ": left alone; remove the other link and run qmail-install again"
	dev, _ := Check(root)
	err := Install(o)
	if err == nil || qerr.ExitCode(err) != 111 {
		t.Fatalf("repair: %v, want exit 111", err)
	}
	for rel, data := range files {
		p := filepath.Join(root, rel)
		want := p + ": 2 hard links and owner 12345, want qmails" + fix
		if rel == "alias/.qmail-default" {
			want = p + ": 2 hard links and owner 12345, want alias" + fix
		}
		if rel == "queue/bounce/heldmsgs" {
			want += " (qmail-send does not start: it cannot tell which messages qmailctl holds)"
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
		var st syscall.Stat_t
		syscall.Stat(p, &st)
		if b, _ := os.ReadFile(p); string(b) != data || st.Ino != ino[rel] || st.Uid != 12345 || st.Nlink != 2 {
			t.Errorf("%s: %q, inode %d (was %d), uid %d, %d links", rel, b, st.Ino, ino[rel], st.Uid, st.Nlink)
		}
		l := rel + ": 2 hard links, want 1: a re-run leaves it alone while it must change; remove the other link " +
			"and run qmail-install again"
		if !slices.Contains(dev, l) {
			t.Errorf("check %q lacks %q", dev, l)
		}
	}
	// The other links gone, it is repaired in place.
	for rel := range files {
		os.Remove(filepath.Join(snap, filepath.Base(rel)))
	}
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	for rel, data := range files {
		if b, _ := os.ReadFile(filepath.Join(root, rel)); string(b) != data {
			t.Errorf("%s after the repair: %q", rel, b)
		}
	}
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Errorf("check: %q %v", dev, err)
	}
}

// TestCheckAliasesDB: an etc/aliases.cdb the alias user cannot read
// makes every delivery through ~alias/.qmail-default defer: -check names
// it, and the repair gives it mode 0644.
func TestCheckAliasesDB(t *testing.T) {
	root, _ := rootTree(t)
	o := opts(t, root)
	p := filepath.Join(root, "etc", "aliases.cdb")
	effect := "fastforward defers every delivery through ~alias/.qmail-default"
	if err := os.WriteFile(p, make([]byte, 2048), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o600)
	want := "etc/aliases.cdb: not readable by alias (fastforward): mode 0600, owner root, group root (chmod 644): " + effect
	if dev, _ := Check(root); !slices.Equal(dev, []string{want}) {
		t.Errorf("check of a 0600 aliases.cdb:\n got %q\nwant %q", dev, want)
	}
	if err := Install(o); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("after repair: %v %v", fi, err)
	}
	if dev, _ := Check(root); len(dev) != 0 {
		t.Errorf("check after repair: %q", dev)
	}
	os.Remove(p)
	os.Mkdir(p, 0o755)
	want = "etc/aliases.cdb: is a directory, want a regular file: " + effect + " (remove it and run newaliases)"
	if dev, _ := Check(root); !slices.Equal(dev, []string{want}) {
		t.Errorf("check of a directory:\n got %q\nwant %q", dev, want)
	}
	os.Remove(p)
	if dev, _ := Check(root); len(dev) != 0 {
		t.Errorf("check without aliases.cdb: %q", dev)
	}
}

// lockDown makes every directory below (and including) dir mode 0700
// and every file 0600, root's as made: what a link into /root looks like.
func lockDown(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			os.Chmod(p, 0o700)
		} else {
			os.Chmod(p, 0o600)
		}
		return nil
	})
}

// TestCheckDoesNotFollowDirLinks: a symbolic link in place of a
// directory of the table (queue/bounce, alias/Maildir, pointing to a
// directory of root's) is named once by -check, and nothing below it is
// examined: no owner, mode or search permission of the link's target is
// reported, and no chmod or chown advised that would reach it (the check
// gave "chmod o+x TARGET" and "owner 0, want N" for the files there).
func TestCheckDoesNotFollowDirLinks(t *testing.T) {
	root, _ := rootTree(t)
	link := func(rel, out string) func() {
		p := filepath.Join(root, rel)
		if err := os.Rename(p, p+".saved"); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(out, p); err != nil {
			t.Fatal(err)
		}
		return func() {
			os.Remove(p)
			if err := os.Rename(p+".saved", p); err != nil {
				t.Fatal(err)
			}
		}
	}
	lineOf := func(rel string) string {
		return rel + ": is a symbolic link, want a directory: not followed; nothing below it was checked"
	}
	noneOutside := func(what string, dev []string, out string) {
		t.Helper()
		for _, l := range dev {
			if strings.Contains(l, out) {
				t.Errorf("%s: a line names the link's target: %q", what, l)
			}
		}
	}

	// The two of the report, at once.
	bounce, maildir := decoy(t, "queue/bounce", true), decoy(t, "alias/Maildir", true)
	lockDown(t, bounce)
	lockDown(t, maildir)
	undo1, undo2 := link("queue/bounce", bounce), link("alias/Maildir", maildir)
	dev, err := Check(root)
	want := []string{lineOf("alias/Maildir"), lineOf("queue/bounce")}
	if err != nil || !slices.Equal(dev, want) {
		t.Errorf("queue/bounce and alias/Maildir links:\n got %q\nwant %q (%v)", dev, want, err)
	}
	noneOutside("queue/bounce", dev, bounce)
	noneOutside("alias/Maildir", dev, maildir)
	undo1()
	undo2()

	// Every directory of the table in a directory a qmail user owns (of
	// the split ones, the first and the last), each a link to a
	// directory of root's holding what the table puts below it. (Links
	// in root's directories: TestRepairFollowsRootLinks.)
	for _, e := range Tree("") {
		if e.Kind != Dir || e.Path == "." || rootDirs[filepath.Dir(e.Path)] {
			continue
		}
		if n := filepath.Base(e.Path); n != "0" && n != strconv.Itoa(qhome.Split-1) && strings.Trim(n, "0123456789") == "" {
			continue
		}
		out := decoy(t, e.Path, true)
		lockDown(t, out)
		undo := link(e.Path, out)
		dev, err := Check(root)
		want := []string{lineOf(e.Path)}
		if err != nil || !slices.Equal(dev, want) {
			t.Errorf("%s a link:\n got %q\nwant %q (%v)", e.Path, dev, want, err)
		}
		noneOutside(e.Path, dev, out)
		undo()
	}

	// A regular file where a directory belongs: its own lines, nothing
	// below it.
	lock := filepath.Join(root, "queue", "lock")
	os.Rename(lock, lock+".saved")
	os.WriteFile(lock, nil, 0o644)
	dev, _ = Check(root)
	if len(dev) == 0 || dev[0] != "queue/lock: is a regular file, want a directory; nothing below it was checked" {
		t.Errorf("queue/lock a file: %q", dev)
	}
	for _, l := range dev {
		if strings.HasPrefix(l, "queue/lock/") {
			t.Errorf("queue/lock a file: below it: %q", l)
		}
	}
	os.Remove(lock)
	os.Rename(lock+".saved", lock)

	// A link in place of a file of the table gets one line: a chmod or
	// chown of that name would change its target.
	tcpto := filepath.Join(root, "queue", "lock", "tcpto")
	target := filepath.Join(searchableDir(t), "target")
	os.WriteFile(target, []byte("secret\n"), 0o600)
	os.Rename(tcpto, tcpto+".saved")
	os.Symlink(target, tcpto)
	dev, _ = Check(root)
	if want := []string{"queue/lock/tcpto: is a symbolic link, want a regular file"}; !slices.Equal(dev, want) {
		t.Errorf("tcpto a link:\n got %q\nwant %q", dev, want)
	}
	os.Remove(tcpto)
	os.Rename(tcpto+".saved", tcpto)
	if dev, err := Check(root); err != nil || len(dev) != 0 {
		t.Errorf("check after the links went: %q %v", dev, err)
	}
}

// TestCheckFollowsRoot: the root itself may be a symbolic link (the
// administrator named it), as the repair follows it.
func TestCheckFollowsRoot(t *testing.T) {
	root, _ := rootTree(t)
	l := filepath.Join(searchableDir(t), "link")
	if err := os.Symlink(root, l); err != nil {
		t.Fatal(err)
	}
	if dev, err := Check(l); err != nil || len(dev) != 0 {
		t.Errorf("check through a link to the root: %q %v", dev, err)
	}
}
