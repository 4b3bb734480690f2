package mbox

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qerr"
)

func TestNeedsQuote(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"From x", true},
		{"From \n", true},
		{">From x", true},
		{">>>From ", true},
		{"From", false},
		{"From:x", false},
		{" From x", false},
		{"from x", false},
		{">", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := NeedsQuote([]byte(tt.in)); got != tt.want {
			t.Errorf("NeedsQuote(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// oneByte feeds a reader one byte per Read, to cross every boundary.
type oneByte struct{ r io.Reader }

func (o oneByte) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}

func TestCopyQuoted(t *testing.T) {
	long := strings.Repeat(">", 70000) + "From long\n"
	tests := []struct{ in, want string }{
		{"", "\n"},
		{"a\n", "a\n\n"},
		{"a", "a\n\n"},
		{"\n", "\n\n"},
		{"From x\nFrom:y\n>From z\nx From y\n", ">From x\nFrom:y\n>>From z\nx From y\n\n"},
		{"From ", ">From \n\n"},
		{"From", "From\n\n"},
		{">>", ">>\n\n"},
		{">F\n>>Fro", ">F\n>>Fro\n\n"},
		{"FFrom a\nFrFrom b\n", "FFrom a\nFrFrom b\n\n"},
		{">\nFrom \n", ">\n>From \n\n"},
		{"body\n\nFrom me\n", "body\n\n>From me\n\n"},
		{long, ">" + long + "\n"},
		{strings.Repeat("x", 70000) + "\nFrom a", strings.Repeat("x", 70000) + "\n>From a\n\n"},
	}
	for _, tt := range tests {
		for _, slow := range []bool{false, true} {
			var out bytes.Buffer
			w := newWriter(&out)
			var r io.Reader = strings.NewReader(tt.in)
			if slow {
				r = oneByte{r}
			}
			if err := copyQuoted(w, r); err != nil {
				t.Fatal(err)
			}
			w.Flush()
			if out.String() != tt.want {
				t.Errorf("copyQuoted(%.40q, slow=%v) = %.60q, want %.60q", tt.in, slow, out.String(), tt.want)
			}
		}
	}
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, unix.EIO }

func TestDeliver(t *testing.T) {
	dir := t.TempDir()
	fn := filepath.Join(dir, "Mailbox")
	old := "From old Mon Jan  5 08:00:00 2026\nold\n\n"
	if err := os.WriteFile(fn, []byte(old), 0600); err != nil {
		t.Fatal(err)
	}
	head := "From a@b Thu Nov 26 03:22:00 2026\nReturn-Path: <a@b>\nDelivered-To: c@d\n"
	if err := Deliver(fn, []byte(head), strings.NewReader("Subject: x\n\nFrom here\nend")); err != nil {
		t.Fatal(err)
	}
	want := old + head + "Subject: x\n\n>From here\nend\n\n"
	got, _ := os.ReadFile(fn)
	if string(got) != want {
		t.Errorf("mbox = %q, want %q", got, want)
	}

	// A read error cuts the file back.
	err := Deliver(fn, []byte(head), io.MultiReader(strings.NewReader("partial\n"), failReader{}))
	if err == nil || qerr.IsPerm(err) || err.Error() != "Unable to read message: input/output error. (#4.3.0)" {
		t.Errorf("read error: %v", err)
	}
	got, _ = os.ReadFile(fn)
	if string(got) != want {
		t.Errorf("after read error mbox = %q, want %q", got, want)
	}

	// A new file is created 0600 under the umask, and its directory is
	// flushed; appending to an existing file flushes no directory.
	var synced []string
	oldSync := dirSync
	dirSync = func(d string) error { synced = append(synced, d); return oldSync(d) }
	t.Cleanup(func() { dirSync = oldSync })
	fn2 := filepath.Join(dir, "new-mbox")
	for i := 0; i < 2; i++ {
		if err := Deliver(fn2, []byte(head), strings.NewReader("x\n")); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := os.Stat(fn2); err != nil || st.Mode().Perm()&^0600 != 0 {
		t.Errorf("new mbox mode: %v %v", st.Mode(), err)
	}
	if len(synced) != 1 || synced[0] != dir {
		t.Errorf("directories flushed: %q, want [%s]", synced, dir)
	}

	// A symbolic link to a file not there yet: the target is made (0600)
	// and its directory flushed, as qmail's open(O_CREAT) follows it.
	synced = nil
	spool := filepath.Join(dir, "spool")
	os.Mkdir(spool, 0o755)
	link := filepath.Join(dir, "Linked")
	if err := os.Symlink(filepath.Join(spool, "user"), link); err != nil {
		t.Fatal(err)
	}
	if err := Deliver(link, []byte(head), strings.NewReader("x\n")); err != nil {
		t.Fatalf("dangling link: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(spool, "user")); string(got) != head+"x\n\n" {
		t.Errorf("link target = %q", got)
	}
	if st, err := os.Stat(filepath.Join(spool, "user")); err != nil || st.Mode().Perm()&^0600 != 0 {
		t.Errorf("link target mode: %v %v", st.Mode(), err)
	}
	if len(synced) != 1 || synced[0] != spool {
		t.Errorf("directories flushed: %q, want [%s]", synced, spool)
	}

	// Open errors name the file with qmail's errno text.
	err = Deliver(filepath.Join(dir, "nodir", "x"), nil, strings.NewReader(""))
	if err == nil || !strings.HasSuffix(err.Error(), "/nodir/x: file does not exist. (#4.2.1)") || !strings.HasPrefix(err.Error(), "Unable to open ") {
		t.Errorf("open error: %v", err)
	}
}

// TestDeliverCutBackFails: when a failed delivery cannot cut the mailbox
// back (shrinking a file needs space on btrfs at a quota limit), the
// report says part of the message is left; when it can, the file is as
// before and the report is qmail's.
func TestDeliverCutBackFails(t *testing.T) {
	fn := filepath.Join(t.TempDir(), "Mailbox")
	old := "From old Mon Jan  5 08:00:00 2026\nold\n\n"
	if err := os.WriteFile(fn, []byte(old), 0600); err != nil {
		t.Fatal(err)
	}
	head := []byte("From a@b Thu Nov 26 03:22:00 2026\n")
	// More than the writer's buffer, so that part reaches the file
	// before the read fails.
	big := strings.Repeat("line of a long message\n", 8000)
	deliver := func() error {
		return Deliver(fn, head, io.MultiReader(strings.NewReader(big), failReader{}))
	}

	err := deliver()
	if err == nil || err.Error() != "Unable to read message: input/output error. (#4.3.0)" {
		t.Errorf("read error, cut back: %v", err)
	}
	if got, _ := os.ReadFile(fn); string(got) != old {
		t.Errorf("after a cut back the mbox has %d bytes, want the %d it had", len(got), len(old))
	}

	real := cutBack
	t.Cleanup(func() { cutBack = real })
	cutBack = func(*os.File, int64) error { return unix.EDQUOT }
	err = deliver()
	want := "Unable to read message: input/output error. Unable to cut it back to its old length (disk quota exceeded): part of the message is left at its end. (#4.3.0)"
	if err == nil || qerr.IsPerm(err) || err.Error() != want {
		t.Errorf("read error, no cut back: %v, want %q", err, want)
	}
	if got, _ := os.ReadFile(fn); len(got) <= len(old) {
		t.Errorf("the test wrote nothing before the read failed: %d bytes", len(got))
	}
}

func TestDeliverLocked(t *testing.T) {
	dir := t.TempDir()
	fn := filepath.Join(dir, "Mailbox")
	f, err := os.OpenFile(fn, os.O_CREATE|os.O_WRONLY, 0600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// flock locks belong to open file descriptions: a second open of the
	// same file conflicts even inside one process.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	old := LockTimeout
	LockTimeout = 300 * time.Millisecond
	defer func() { LockTimeout = old }()
	err = Deliver(fn, []byte("x\n"), strings.NewReader("y\n"))
	var qe *qerr.Error
	if !errors.As(err, &qe) || qe.Perm || qe.Text != TextLocked {
		t.Errorf("locked: %v", err)
	}
	if st, _ := os.Stat(fn); st.Size() != 0 {
		t.Errorf("locked mbox was written: %d bytes", st.Size())
	}
}
