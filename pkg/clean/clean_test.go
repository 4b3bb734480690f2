package clean

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func mkqueue(t *testing.T) string {
	t.Helper()
	q := t.TempDir()
	for _, d := range []string{"pid", "intd", "todo", "mess/5"} {
		if err := os.MkdirAll(filepath.Join(q, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return q
}

func touch(t *testing.T, p string) {
	t.Helper()
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestServe(t *testing.T) {
	// 28 mod 23 = 5
	tests := []struct {
		name    string
		in      string
		files   []string // created before
		want    string
		removed []string
		kept    []string
	}{
		{"foop", "foop/28\x00", []string{"intd/28", "mess/5/28", "todo/29"}, "+", []string{"intd/28", "mess/5/28"}, []string{"todo/29"}},
		{"todo", "todo/28\x00", []string{"intd/28", "todo/28", "mess/5/28"}, "+", []string{"intd/28", "todo/28"}, []string{"mess/5/28"}},
		{"already gone", "foop/28\x00todo/28\x00", nil, "++", nil, nil},
		{"bad prefix", "barf/28\x00", []string{"mess/5/28"}, "x", nil, []string{"mess/5/28"}},
		{"short", "foop/\x00", nil, "x", nil, nil},
		{"not digits", "foop/2x8\x00", nil, "x", nil, nil},
		{"too long", "foop/" + strings.Repeat("1", 100) + "\x00", nil, "x", nil, nil},
		{"several", "foop/28\x00junk\x00todo/28\x00", []string{"mess/5/28", "todo/28"}, "+x+", []string{"mess/5/28", "todo/28"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := mkqueue(t)
			for _, f := range tc.files {
				touch(t, filepath.Join(q, f))
			}
			var out bytes.Buffer
			c := &Cleaner{Queue: q}
			if err := c.Serve(strings.NewReader(tc.in), &out); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Errorf("replies %q, want %q", out.String(), tc.want)
			}
			for _, f := range tc.removed {
				if _, err := os.Stat(filepath.Join(q, f)); err == nil {
					t.Errorf("%s still exists", f)
				}
			}
			for _, f := range tc.kept {
				if _, err := os.Stat(filepath.Join(q, f)); err != nil {
					t.Errorf("%s removed: %v", f, err)
				}
			}
		})
	}
}

func TestUnlinkFailure(t *testing.T) {
	q := mkqueue(t)
	// A directory in place of the file: unlink fails with EISDIR/EPERM.
	if err := os.MkdirAll(filepath.Join(q, "todo/7/x"), 0o755); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	c := &Cleaner{Queue: q}
	if err := c.Serve(strings.NewReader("todo/7\x00"), &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != "!" {
		t.Errorf("reply %q, want !", out.String())
	}
}

func TestSweep(t *testing.T) {
	q := mkqueue(t)
	now := time.Now()
	old := filepath.Join(q, "pid", "1.2.1")
	fresh := filepath.Join(q, "pid", "3.4.1")
	touch(t, old)
	touch(t, fresh)
	past := now.Add(-StaleAge - time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	c := &Cleaner{Queue: q, Now: func() time.Time { return now }}
	c.Sweep()
	if _, err := os.Stat(old); err == nil {
		t.Error("stale pid file kept")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Error("fresh pid file removed")
	}
}

// hookReader runs hook before its first read, i.e. after Serve's start sweep.
type hookReader struct {
	r    *bytes.Buffer
	hook func()
}

func (h *hookReader) Read(p []byte) (int, error) {
	if h.hook != nil {
		h.hook()
		h.hook = nil
	}
	return h.r.Read(p)
}

func TestSweepEvery30(t *testing.T) {
	now := time.Now()
	for _, n := range []int{SweepEvery - 1, SweepEvery} {
		q := mkqueue(t)
		c := &Cleaner{Queue: q, Now: func() time.Time { return now }}
		old := filepath.Join(q, "pid", "9.9.1")
		var in bytes.Buffer
		for i := 0; i < n; i++ {
			in.WriteString("foop/1\x00")
		}
		hr := &hookReader{r: &in, hook: func() {
			touch(t, old)
			past := now.Add(-StaleAge - time.Hour)
			if err := os.Chtimes(old, past, past); err != nil {
				t.Fatal(err)
			}
		}}
		var out bytes.Buffer
		if err := c.Serve(hr, &out); err != nil {
			t.Fatal(err)
		}
		_, err := os.Stat(old)
		if gone := err != nil; gone != (n == SweepEvery) {
			t.Errorf("%d requests: stale file gone=%v", n, gone)
		}
	}
}

// An input that ends inside a request ends the service with 0 and no
// answer for that request (qmail: the loop stops at a line without its
// NUL, exit 0); a read error other than EOF is still trouble (111).
func TestEndInsideRequest(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"todo/1", ""},
		{"todo/1\x00todo/1", "+"},
		{"foop/28\x00fo", "+"},
		{"x", ""},
	} {
		q := mkqueue(t)
		var out bytes.Buffer
		c := &Cleaner{Queue: q}
		if err := c.Serve(strings.NewReader(tc.in), &out); err != nil {
			t.Errorf("%q: Serve: %v", tc.in, err)
		}
		if out.String() != tc.want {
			t.Errorf("%q: replies %q, want %q", tc.in, out.String(), tc.want)
		}
	}

	root := t.TempDir()
	if err := os.Rename(mkqueue(t), filepath.Join(root, "queue")); err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(wd) // Main changes directory; put it back afterwards
	var out bytes.Buffer
	if code := Main(root, strings.NewReader("todo/1\x00todo/1"), &out); code != 0 || out.String() != "+" {
		t.Errorf("Main, partial request: exit %d, replies %q; want 0, %q", code, out.String(), "+")
	}
	out.Reset()
	in := io.MultiReader(strings.NewReader("todo/1\x00"), errReader{})
	if code := Main(root, in, &out); code != 111 || out.String() != "+" {
		t.Errorf("Main, read error: exit %d, replies %q; want 111, %q", code, out.String(), "+")
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, syscall.EIO }
