package maildir

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qerr"
)

func mkMaildir(t *testing.T, root string, subs ...string) string {
	t.Helper()
	d := filepath.Join(root, "Maildir")
	for _, s := range append([]string{""}, subs...) {
		if err := os.MkdirAll(filepath.Join(d, s), 0700); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func list(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range ents {
		n = append(n, e.Name())
	}
	return n
}

func TestDeliver(t *testing.T) {
	root := t.TempDir()
	d := mkMaildir(t, root, "tmp", "new", "cur")
	head := "Return-Path: <a@b>\nDelivered-To: c@d\n"
	for i := 0; i < 5; i++ {
		if err := Deliver(d+"/", []byte(head), strings.NewReader("Subject: x\n\nbody\n")); err != nil {
			t.Fatal(err)
		}
	}
	if n := list(t, filepath.Join(d, "tmp")); len(n) != 0 {
		t.Errorf("tmp/ not empty: %v", n)
	}
	names := list(t, filepath.Join(d, "new"))
	if len(names) != 5 {
		t.Fatalf("new/ holds %v, want 5 files", names)
	}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(d, "new", n))
		if err != nil || string(b) != head+"Subject: x\n\nbody\n" {
			t.Errorf("%s: %q %v", n, b, err)
		}
		if strings.ContainsAny(n, "/:") {
			t.Errorf("bad name %q", n)
		}
	}
}

func TestUniqueName(t *testing.T) {
	defer func(n func() time.Time, h func() (string, error)) { now, hostname = n, h }(now, hostname)
	now = func() time.Time { return time.Unix(1700000000, 123456789) }
	hostname = func() (string, error) { return "a/b:c", nil }
	n1, n2 := UniqueName(), UniqueName()
	if n1 == n2 {
		t.Errorf("names repeat: %s", n1)
	}
	pre := "1700000000.M123456P"
	if !strings.HasPrefix(n1, pre) || !strings.HasSuffix(n1, `.a\057b\072c`) {
		t.Errorf("name %q", n1)
	}
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, unix.EIO }

func TestDeliverErrors(t *testing.T) {
	defer func(r time.Duration) { Retry = r }(Retry)
	Retry = time.Millisecond
	root := t.TempDir()
	full := mkMaildir(t, root, "tmp", "new", "cur")
	noTmp := filepath.Join(root, "NoTmp")
	os.MkdirAll(filepath.Join(noTmp, "new"), 0700)
	noNew := filepath.Join(root, "NoNew")
	os.MkdirAll(filepath.Join(noNew, "tmp"), 0700)
	file := filepath.Join(root, "file")
	os.WriteFile(file, nil, 0600)
	tests := []struct {
		name string
		dir  string
		msg  io.Reader
		want string
	}{
		{"missing", filepath.Join(root, "nothere") + "/", strings.NewReader("x"), TextChdir},
		{"empty", "", strings.NewReader("x"), TextChdir},
		{"not a directory", file + "/", strings.NewReader("x"), TextChdir},
		{"no tmp", noTmp + "/", strings.NewReader("x"), TextTemp},
		{"no new", noNew + "/", strings.NewReader("x"), TextTemp},
		{"read error", full + "/", io.MultiReader(strings.NewReader("x\n"), failReader{}), TextRead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Deliver(tt.dir, []byte("H\n"), tt.msg)
			var qe *qerr.Error
			if !errors.As(err, &qe) || qe.Perm || qe.Text != tt.want {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
			for _, d := range []string{full, noNew} {
				if n := list(t, filepath.Join(d, "tmp")); len(n) != 0 {
					t.Errorf("%s/tmp not cleaned: %v", d, n)
				}
			}
		})
	}
	if n := list(t, filepath.Join(full, "new")); len(n) != 0 {
		t.Errorf("failed delivery left %v in new/", n)
	}
}

// TestDeliverNameInUse makes every name collide: Deliver tries Tries times
// and then fails temporarily.
func TestDeliverNameInUse(t *testing.T) {
	defer func(r time.Duration, n func() time.Time, h func() (string, error)) {
		Retry, now, hostname = r, n, h
	}(Retry, now, hostname)
	Retry = time.Millisecond
	d := mkMaildir(t, t.TempDir(), "tmp", "new", "cur")
	now = func() time.Time { return time.Unix(1, 0) }
	hostname = func() (string, error) { return "h", nil }
	// Pre-create the next Tries names.
	base := seq.Load()
	for i := 1; i <= Tries; i++ {
		seq.Store(base + uint64(i) - 1)
		os.WriteFile(filepath.Join(d, "tmp", UniqueName()), nil, 0600)
	}
	seq.Store(base)
	err := Deliver(d, nil, strings.NewReader("x"))
	var qe *qerr.Error
	if !errors.As(err, &qe) || qe.Text != TextTemp || !errors.Is(err, unix.EEXIST) {
		t.Fatalf("got %v", err)
	}
	if err := Deliver(d, nil, strings.NewReader("x")); err != nil {
		t.Fatalf("next delivery: %v", err)
	}
}

// blockReader never returns: Deliver must give up at Timeout. entered is
// closed at the first Read, when the tmp/ file exists.
type blockReader struct {
	entered chan struct{}
	once    *sync.Once
}

func (b blockReader) Read([]byte) (int, error) {
	b.once.Do(func() { close(b.entered) })
	select {} // the abandoned delivery goroutine stays here
}

func TestDeliverTimeout(t *testing.T) {
	defer func(d time.Duration) { Timeout = d }(Timeout)
	Timeout = 50 * time.Millisecond
	d := mkMaildir(t, t.TempDir(), "tmp", "new", "cur")
	b := blockReader{make(chan struct{}), new(sync.Once)}
	err := Deliver(d, nil, b)
	var qe *qerr.Error
	if !errors.As(err, &qe) || qe.Text != TextTimeout {
		t.Fatalf("got %v", err)
	}
	select {
	case <-b.entered:
		// The file was created before the timeout: it must be gone.
		if n := list(t, filepath.Join(d, "tmp")); len(n) != 0 {
			t.Errorf("tmp not cleaned after timeout: %v", n)
		}
	default:
		t.Log("timeout came before the tmp file was created; nothing to clean")
	}
	if n := list(t, filepath.Join(d, "new")); len(n) != 0 {
		t.Errorf("timed-out delivery in new/: %v", n)
	}
}

// unreadable fails the test that reads it.
type unreadable struct{ t *testing.T }

func (r unreadable) Read([]byte) (int, error) {
	r.t.Error("the message was read")
	return 0, io.EOF
}

// A delivery abandoned by its time-out before it created its tmp/ file
// (the time-out then had no file to remove) stops once it has created
// it: it removes the file and reads nothing, rather than leave the file in
// tmp/ while its read of the message blocks (keep mode lives on).
func TestDeliverAbandonedBeforeCreate(t *testing.T) {
	d := mkMaildir(t, t.TempDir(), "tmp", "new", "cur")
	g := &gate{dfd: -1}
	if !g.abandon() {
		t.Fatal("a fresh gate was not abandoned")
	}
	err := deliver(d, []byte("head\n"), unreadable{t}, g)
	var qe *qerr.Error
	if !errors.As(err, &qe) || qe.Text != TextTimeout {
		t.Fatalf("got %v, want the time-out", err)
	}
	for _, sub := range []string{"tmp", "new"} {
		if n := list(t, filepath.Join(d, sub)); len(n) != 0 {
			t.Errorf("%s/ holds %v", sub, n)
		}
	}
}

// releaseReader blocks its first Read until release is closed, then ends.
type releaseReader struct{ release chan struct{} }

func (r releaseReader) Read([]byte) (int, error) {
	<-r.release
	return 0, io.EOF
}

// TestDeliverTimeoutThenFinish: a delivery that times out and then gets
// going again (keep mode lives on after the time-out) must not link its
// message into new/: the time-out was reported, and the retry delivers.
func TestDeliverTimeoutThenFinish(t *testing.T) {
	defer func(d time.Duration) { Timeout = d }(Timeout)
	Timeout = 50 * time.Millisecond
	d := mkMaildir(t, t.TempDir(), "tmp", "new", "cur")
	base := runtime.NumGoroutine()
	r := releaseReader{make(chan struct{})}
	err := Deliver(d, []byte("head\n"), r)
	var qe *qerr.Error
	if !errors.As(err, &qe) || qe.Text != TextTimeout {
		t.Fatalf("got %v", err)
	}
	close(r.release)
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base {
		t.Fatalf("the abandoned delivery did not end: %d goroutines, %d before", n, base)
	}
	if n := list(t, filepath.Join(d, "new")); len(n) != 0 {
		t.Errorf("timed-out delivery linked into new/: %v", n)
	}
	if n := list(t, filepath.Join(d, "tmp")); len(n) != 0 {
		t.Errorf("tmp/ not cleaned: %v", n)
	}
}

// TestDeliverFlushFails: when new/ cannot be flushed after the link, the
// message is taken back and the delivery deferred; but one a reader has
// taken meanwhile (renamed into cur/) counts as delivered: it was
// deferred, and the retry left a second copy for the reader (QA maildir).
func TestDeliverFlushFails(t *testing.T) {
	root := t.TempDir()
	d := mkMaildir(t, root, "tmp", "new", "cur")
	old := syncDir
	t.Cleanup(func() { syncDir = old })
	eio := errors.New("input/output error")
	var reader bool
	syncDir = func(dfd int, sub string) error {
		if reader {
			for _, n := range list(t, filepath.Join(d, "new")) {
				os.Rename(filepath.Join(d, "new", n), filepath.Join(d, "cur", n+":2,S"))
			}
		}
		return eio
	}
	err := Deliver(d+"/", nil, strings.NewReader("Subject: x\n\nbody\n"))
	if !errors.Is(err, eio) && (err == nil || !strings.Contains(err.Error(), "Temporary error")) {
		t.Errorf("no reader: %v, want a deferral", err)
	}
	if n := len(list(t, filepath.Join(d, "new"))) + len(list(t, filepath.Join(d, "tmp"))); n != 0 {
		t.Errorf("no reader: %d files left in new/ and tmp/", n)
	}
	reader = true
	if err := Deliver(d+"/", nil, strings.NewReader("Subject: y\n\nbody\n")); err != nil {
		t.Errorf("taken by a reader: %v, want delivered", err)
	}
	if n := list(t, filepath.Join(d, "cur")); len(n) != 1 {
		t.Errorf("cur/ holds %v, want the message", n)
	}
	if n := list(t, filepath.Join(d, "tmp")); len(n) != 0 {
		t.Errorf("tmp/ holds %v", n)
	}
}
