package qhome

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hqmail/hqmail/internal/testutil"
)

func TestRootOf(t *testing.T) {
	for _, tc := range []struct{ exe, want string }{
		{"/var/qmail/bin/qmail-queue", "/var/qmail"},
		{"/tmp/x/bin/qmail-send", "/tmp/x"},
		{"/usr/local/go-build/exe/qmail-queue", DefaultRoot},
		{"/bin/sendmail", "/"},
		{"qmail-queue", DefaultRoot},
	} {
		if got := RootOf(tc.exe); got != tc.want {
			t.Errorf("RootOf(%q) = %q, want %q", tc.exe, got, tc.want)
		}
	}
	// The test binary does not live in a bin/ directory.
	if r := Root(); r == "" {
		t.Error("Root() empty")
	}
}

func TestIDsRoundTrip(t *testing.T) {
	ids := &IDs{
		Alias: User{7790, 2108}, Qmaild: User{7791, 2108}, Qmaill: User{7792, 2108}, Qmailp: User{7793, 2108},
		Qmailq: User{7794, 2107}, Qmailr: User{7795, 2107}, Qmails: User{7796, 2107}, Qmail: 2107, Nofiles: 2108,
	}
	for _, in := range []*IDs{ids, SharedIDs(1000, 1000)} {
		got, err := ParseIDs(in.Format())
		if err != nil {
			t.Fatal(err)
		}
		if *got != *in {
			t.Errorf("round trip %+v -> %+v", in, got)
		}
	}
	if u := ids.UserByName("qmails"); u == nil || u.UID != 7796 {
		t.Errorf("UserByName(qmails) = %v", u)
	}
	if ids.UserByName("root") != nil || ids.GroupByName("wheel") != nil {
		t.Error("unknown names resolve")
	}
	if g := ids.GroupByName("nofiles"); g == nil || *g != 2108 {
		t.Errorf("GroupByName(nofiles) = %v", g)
	}
	s := SharedIDs(5, 6)
	if !s.Shared || s.Qmailr.UID != 5 || s.Qmail != 6 || !strings.Contains(s.Format(), "shared yes\n") {
		t.Errorf("SharedIDs %+v", s)
	}
}

func TestParseIDsErrors(t *testing.T) {
	good := SharedIDs(1, 1).Format()
	for _, tc := range []struct{ name, in string }{
		{"missing user", strings.Replace(good, "user qmails 1 1\n", "", 1)},
		{"missing group", strings.Replace(good, "group nofiles 1\n", "", 1)},
		{"bad number", strings.Replace(good, "user alias 1 1", "user alias x 1", 1)},
		{"negative", strings.Replace(good, "user alias 1 1", "user alias -1 1", 1)},
		{"unknown user", good + "user postfix 1 1\n"},
		{"unknown keyword", good + "hello\n"},
		{"short line", good + "user alias 1\n"},
	} {
		if _, err := ParseIDs(tc.in); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	// Comments and blank lines are fine.
	if _, err := ParseIDs("# c\n\n" + good); err != nil {
		t.Errorf("comments: %v", err)
	}
}

func TestLoadIDs(t *testing.T) {
	root := t.TempDir()
	if _, err := LoadIDs(root); err == nil {
		t.Error("no ids file: no error")
	}
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, IDsFile), []byte(SharedIDs(3, 4).Format()), 0o644)
	ids, err := LoadIDs(root)
	if err != nil || ids.Alias.UID != 3 {
		t.Errorf("%+v %v", ids, err)
	}
}

func TestOpenRegular(t *testing.T) {
	dir := t.TempDir()
	file, fifo := filepath.Join(dir, "file"), filepath.Join(dir, "fifo")
	os.WriteFile(file, []byte("x"), 0o644)
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadRegular(file); err != nil || string(b) != "x" {
		t.Errorf("regular file: %q, %v", b, err)
	}
	// Without a writer (or reader) a blocking open of the FIFO would never
	// return: these must, with ErrNotRegular or ENXIO.
	if _, err := OpenRegular(fifo, os.O_RDONLY); !errors.Is(err, ErrNotRegular) {
		t.Errorf("FIFO for reading: %v", err)
	}
	if _, err := OpenRegular(fifo, os.O_WRONLY); err == nil {
		t.Error("FIFO for writing opened")
	}
	if _, err := OpenRegular(dir, os.O_RDONLY); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("directory: %v", err)
	}
	// /dev/null (a control file linked there means "empty") reads as such;
	// /dev/zero, which never ends, is refused.
	os.Symlink(os.DevNull, filepath.Join(dir, "null"))
	if b, err := ReadRegular(filepath.Join(dir, "null")); err != nil || len(b) != 0 {
		t.Errorf("/dev/null: %q, %v", b, err)
	}
	if _, err := OpenRegular("/dev/zero", os.O_RDONLY); !errors.Is(err, ErrNotRegular) {
		t.Errorf("/dev/zero: %v", err)
	}
	if _, err := OpenRegular(filepath.Join(dir, "none"), os.O_RDONLY); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestReadCapped: a file past MaxReadSize (here sparse, as truncate makes
// one) is ErrTooLarge for each whole-file reader, not read into memory; one
// of exactly MaxReadSize bytes is read.
func TestReadCapped(t *testing.T) {
	dir := t.TempDir()
	big, edge := filepath.Join(dir, "big"), filepath.Join(dir, "edge")
	for name, size := range map[string]int64{big: 10 << 30, edge: MaxReadSize} {
		f, err := os.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			t.Skipf("no sparse file of %d bytes here: %v", size, err)
		}
		f.Close()
	}
	if _, err := ReadRegular(big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ReadRegular of 10 GB: %v", err)
	}
	if _, err := ReadQueueFile(big); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ReadQueueFile of 10 GB: %v", err)
	}
	var pe *os.PathError
	if _, err := ReadRegular(big); !errors.As(err, &pe) || pe.Path != big {
		t.Errorf("error does not name the file: %v", err)
	}
	if b, err := ReadRegular(edge); err != nil || len(b) != MaxReadSize {
		t.Errorf("ReadRegular of MaxReadSize bytes: %d bytes, %v", len(b), err)
	}
	// One byte more is too many.
	w, err := os.OpenFile(edge, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("x"))
	w.Close()
	if _, err := ReadRegular(edge); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ReadRegular of MaxReadSize+1 bytes: %v", err)
	}
}

// TestReplaceFile: the new contents replace the old with the mode asked
// for whatever the umask, prep runs on the new file, and a failure leaves
// the old file and no temporary one.
func TestReplaceFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte("old"), 0o600)
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	prepped := false
	if err := ReplaceFile(p, []byte("new"), 0o644, func(*os.File) error { prepped = true; return nil }); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	st, _ := os.Stat(p)
	if string(b) != "new" || st.Mode().Perm() != 0o644 || !prepped {
		t.Errorf("contents %q, mode %v, prep run %v", b, st.Mode().Perm(), prepped)
	}
	boom := errors.New("boom")
	if err := ReplaceFile(p, []byte("lost"), 0o644, func(*os.File) error { return boom }); err != boom {
		t.Errorf("failing prep: %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new" {
		t.Errorf("after a failure: %q", b)
	}
	if _, err := os.Stat(p + ".tmp"); err == nil {
		t.Error("temporary file left")
	}
}

// TestAppendWhole: data goes on the end whole, prep runs on a file it
// makes only, and a write cut short (here by the file size limit, as by a
// full disk) leaves an existing file as it was and no new one.
func TestAppendWhole(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old")
	if err := os.WriteFile(old, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	preps := 0
	prep := func(*os.File) error { preps++; return nil }
	if err := AppendWhole(old, []byte("second\n"), 0o600, prep); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(old); string(b) != "first\nsecond\n" || preps != 0 {
		t.Errorf("append to an existing file: %q, prep run %d times", b, preps)
	}
	made := filepath.Join(dir, "made")
	if err := AppendWhole(made, []byte("x\n"), 0o600, prep); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(made); string(b) != "x\n" || preps != 1 {
		t.Errorf("new file: %q, prep run %d times", b, preps)
	}
	big := []byte(strings.Repeat("y", 4000))
	var errOld, errNew error
	testutil.WithFileSizeLimit(t, 1000, func() {
		errOld = AppendWhole(old, big, 0o600, nil)
		errNew = AppendWhole(filepath.Join(dir, "new"), big, 0o600, nil)
	})
	if errOld == nil || errNew == nil {
		t.Fatalf("writes past the limit succeeded: %v, %v", errOld, errNew)
	}
	if b, _ := os.ReadFile(old); string(b) != "first\nsecond\n" {
		t.Errorf("existing file after a cut-short write: %d bytes", len(b))
	}
	if _, err := os.Stat(filepath.Join(dir, "new")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a new file is left after a cut-short write (%v)", err)
	}
}

// TestOpenQueueFile: a queue file is never opened through a symbolic link
// (even one to /dev/null, or to nothing) and must be a regular file.
func TestOpenQueueFile(t *testing.T) {
	dir := t.TempDir()
	file, fifo := filepath.Join(dir, "file"), filepath.Join(dir, "fifo")
	os.WriteFile(file, []byte("x"), 0o644)
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadQueueFile(file); err != nil || string(b) != "x" {
		t.Errorf("regular file: %q, %v", b, err)
	}
	for name, target := range map[string]string{"link": file, "null": os.DevNull, "dangling": filepath.Join(dir, "none")} {
		p := filepath.Join(dir, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		for _, flag := range []int{os.O_RDONLY, os.O_RDWR, os.O_WRONLY | os.O_CREATE} {
			f, err := OpenQueueFile(p, flag)
			if err == nil {
				f.Close()
			}
			if !errors.Is(err, ErrSymlink) || !strings.Contains(err.Error(), p) {
				t.Errorf("symlink %s, flag %#x: %v", name, flag, err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "none")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a dangling link's target was made")
	}
	if _, err := OpenQueueFile(fifo, os.O_RDONLY); !errors.Is(err, ErrNotRegular) {
		t.Errorf("FIFO: %v", err)
	}
	if _, err := OpenQueueFile(dir, os.O_RDONLY); !errors.Is(err, syscall.EISDIR) {
		t.Errorf("directory: %v", err)
	}
	if _, err := OpenQueueFile(os.DevNull, os.O_RDONLY); !errors.Is(err, ErrNotRegular) {
		t.Errorf("/dev/null: %v", err)
	}
	if _, err := OpenQueueFile(filepath.Join(dir, "none"), os.O_RDONLY); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestAppendWholeRefusesLinks: a symbolic link at the path (to a file, or
// to nothing), or a FIFO, is refused before anything is written; the
// target stays as it was, prep never runs.
func TestAppendWholeRefusesLinks(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("precious\n"), 0o600)
	link, dangling, fifo := filepath.Join(dir, "link"), filepath.Join(dir, "dangling"), filepath.Join(dir, "fifo")
	os.Symlink(target, link)
	os.Symlink(filepath.Join(dir, "made-through-link"), dangling)
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// A reader on the FIFO: a non-blocking open for writing succeeds, and
	// only the type check refuses it.
	r, err := os.OpenFile(fifo, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	prep := func(*os.File) error { t.Error("prep run"); return nil }
	for _, tc := range []struct {
		p    string
		want error
	}{{link, ErrSymlink}, {dangling, ErrSymlink}, {fifo, ErrNotRegular}} {
		err := AppendWhole(tc.p, []byte("attacker text\n"), 0o600, prep)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.p) {
			t.Errorf("%s: %v, want %v naming the file", tc.p, err, tc.want)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "precious\n" {
		t.Errorf("target written through the link: %q", b)
	}
	if _, err := os.Lstat(filepath.Join(dir, "made-through-link")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a file was made through a dangling link")
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link itself changed: %v", err)
	}
}

// TestReplaceFileTmpLink: a symbolic or hard link left at path.tmp is
// replaced, never written through (nor chmod'ed, nor given to prep).
func TestReplaceFileTmpLink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("precious\n"), 0o600)
	for _, mk := range []func(string, string) error{os.Symlink, os.Link} {
		p := filepath.Join(dir, "f")
		os.Remove(p + ".tmp")
		if err := mk(target, p+".tmp"); err != nil {
			t.Fatal(err)
		}
		if err := ReplaceFile(p, []byte("new\n"), 0o644, nil); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(target)
		st, _ := os.Stat(target)
		if string(b) != "precious\n" || st.Mode().Perm() != 0o600 {
			t.Errorf("target changed: %q, mode %v", b, st.Mode().Perm())
		}
		if b, _ := os.ReadFile(p); string(b) != "new\n" {
			t.Errorf("file = %q", b)
		}
		if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("file is not a regular file: %v", err)
		}
	}
}

// TestOpenFIFOForWritingNotRegular: a FIFO with no reader, opened for
// writing, is ErrNotRegular naming the file (the kernel's ENXIO, "no such
// device or address", said nothing of what was there), for OpenRegular and
// OpenQueueFile alike.
func TestOpenFIFOForWritingNotRegular(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for name, open := range map[string]func(string, int) (*os.File, error){"OpenRegular": OpenRegular, "OpenQueueFile": OpenQueueFile} {
		_, err := open(fifo, os.O_WRONLY)
		var pe *os.PathError
		if !errors.Is(err, ErrNotRegular) || !errors.As(err, &pe) || pe.Path != fifo {
			t.Errorf("%s: %v, want %v naming %s", name, err, ErrNotRegular, fifo)
		}
	}
}
