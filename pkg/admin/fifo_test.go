package admin

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bounded runs f, failing the test when it has not returned in 10
// seconds: then the FIFO it waits on is opened for writing and closed,
// which gives its reader an end of file, so that no goroutine is left
// blocked.
func bounded(t *testing.T, fifo string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
		<-done
		t.Fatalf("still reading %s after 10s: a FIFO was opened as a file", fifo)
	}
}

// TestNewmrhFIFO: a FIFO as control/morercpthosts, or a symbolic link to
// one, is refused at once, as the other tools refuse it, not waited on.
func TestNewmrhFIFO(t *testing.T) {
	for _, link := range []bool{false, true} {
		root := t.TempDir()
		dir := filepath.Join(root, "control")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		fifo := filepath.Join(dir, "morercpthosts")
		if link {
			fifo = filepath.Join(root, "fifo")
			if err := os.Symlink(fifo, filepath.Join(dir, "morercpthosts")); err != nil {
				t.Fatal(err)
			}
		}
		if err := syscall.Mkfifo(fifo, 0o644); err != nil {
			t.Fatal(err)
		}
		var errb bytes.Buffer
		var code int
		bounded(t, fifo, func() { code = NewmrhMain(root, &errb) })
		want := "qmail-newmrh: fatal: unable to read control/morercpthosts: not a regular file\n"
		if code != 111 || errb.String() != want {
			t.Errorf("link %v: exit %d, %q; want 111, %q", link, code, errb.String(), want)
		}
		if _, err := os.Lstat(filepath.Join(dir, "morercpthosts.cdb")); err == nil {
			t.Errorf("link %v: morercpthosts.cdb written", link)
		}
	}
	// A directory is refused too, and /dev/null reads as an empty list.
	root := t.TempDir()
	dir := filepath.Join(root, "control")
	if err := os.MkdirAll(filepath.Join(dir, "morercpthosts"), 0o755); err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	if code := NewmrhMain(root, &errb); code != 111 || !strings.Contains(errb.String(), "is a directory") {
		t.Errorf("directory: exit %d, %q", code, errb.String())
	}
	os.Remove(filepath.Join(dir, "morercpthosts"))
	if err := os.Symlink(os.DevNull, filepath.Join(dir, "morercpthosts")); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if code := NewmrhMain(root, &errb); code != 0 {
		t.Errorf("/dev/null: exit %d, %q", code, errb.String())
	}
}

// TestPw2uFIFO: a FIFO as any of the optional files of users/ is refused
// at once with exit 111, not waited on.
func TestPw2uFIFO(t *testing.T) {
	for _, name := range []string{"include", "exclude", "mailnames", "subusers", "append"} {
		root := t.TempDir()
		users := filepath.Join(root, "users")
		if err := os.Mkdir(users, 0o755); err != nil {
			t.Fatal(err)
		}
		fifo := filepath.Join(users, name)
		if err := syscall.Mkfifo(fifo, 0o644); err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		var code int
		bounded(t, fifo, func() {
			code = Pw2uMain(root, []string{"-H"}, strings.NewReader("joe:x:1000:1000::/home/joe:/bin/sh\n"), &out, &errb)
		})
		want := "qmail-pw2u: fatal: unable to read users/" + name + ": not a regular file\n"
		if code != 111 || errb.String() != want || out.Len() != 0 {
			t.Errorf("%s: exit %d, stderr %q, stdout %q; want 111, %q", name, code, errb.String(), out.String(), want)
		}
	}
}
