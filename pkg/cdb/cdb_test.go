package cdb

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, recs []Record) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "db.cdb")
	if err := WriteFile(p, 0o644, recs); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 2, 255, 256, 1000, 5000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var recs []Record
			for i := 0; i < n; i++ {
				recs = append(recs, Record{Key: []byte(fmt.Sprintf("key%d", i)), Data: bytes.Repeat([]byte{byte(i)}, i%50)})
			}
			f, err := Open(write(t, recs))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, r := range recs {
				d, ok, err := f.Get(r.Key)
				if err != nil || !ok || !bytes.Equal(d, r.Data) {
					t.Fatalf("Get(%q) = %q, %v, %v", r.Key, d, ok, err)
				}
			}
			if _, ok, err := f.Get([]byte("absent")); ok || err != nil {
				t.Errorf("absent key: %v %v", ok, err)
			}
		})
	}
}

func TestSpecialKeys(t *testing.T) {
	recs := []Record{
		{Key: []byte(""), Data: []byte("empty key")},
		{Key: []byte("dup"), Data: []byte("first")},
		{Key: []byte("dup"), Data: []byte("second")},
		{Key: []byte("!joe\x00"), Data: []byte("joe\x001\x00")},
		{Key: []byte("bin\xff\x00"), Data: nil},
	}
	f, err := Open(write(t, recs))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tc := range []struct{ key, data string }{
		{"", "empty key"}, {"dup", "first"}, {"!joe\x00", "joe\x001\x00"}, {"bin\xff\x00", ""},
	} {
		d, ok, err := f.Get([]byte(tc.key))
		if err != nil || !ok || string(d) != tc.data {
			t.Errorf("Get(%q) = %q, %v, %v; want %q", tc.key, d, ok, err, tc.data)
		}
	}
	if _, ok, _ := f.Get([]byte("!joe")); ok {
		t.Error("prefix of a key found")
	}
}

func TestHash(t *testing.T) {
	// h = 5381; h = (h*33) ^ c
	if Hash(nil) != 5381 {
		t.Errorf("Hash(nil) = %d", Hash(nil))
	}
	if want := uint32(5381*33) ^ 'a'; Hash([]byte("a")) != want {
		t.Errorf("Hash(a) = %d, want %d", Hash([]byte("a")), want)
	}
}

// Damaged databases give errors or misses, never a panic.
func TestDamaged(t *testing.T) {
	var recs []Record
	for i := 0; i < 100; i++ {
		recs = append(recs, Record{Key: []byte(fmt.Sprint(i)), Data: []byte("data")})
	}
	good, _ := os.ReadFile(write(t, recs))
	if _, err := NewReader(bytes.NewReader(good[:100]), 100); !errors.Is(err, ErrFormat) {
		t.Errorf("short header: %v", err)
	}
	for _, cut := range []int{2048, 2100, len(good) / 2, len(good) - 8} {
		r, err := NewReader(bytes.NewReader(good[:cut]), int64(cut))
		if err != nil {
			continue
		}
		for i := 0; i < 100; i++ {
			r.Get([]byte(fmt.Sprint(i)))
		}
	}
	bad := append([]byte(nil), good...)
	for i := 2048; i < len(bad); i += 7 {
		bad[i] ^= 0xff
	}
	r, err := NewReader(bytes.NewReader(bad), int64(len(bad)))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		r.Get([]byte(fmt.Sprint(i)))
	}
}

func TestWriteFileLeavesNoTmp(t *testing.T) {
	p := write(t, []Record{{Key: []byte("k"), Data: []byte("v")}})
	if left, _ := filepath.Glob(p + ".tmp*"); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode: %v %v", fi, err)
	}
	if err := WriteFile(filepath.Join(t.TempDir(), "no", "such", "dir"), 0o644, nil); err == nil {
		t.Error("WriteFile into a missing dir succeeded")
	}
}

// TestWriteFileConcurrent: writers at once each install a whole database
// (the last rename wins); none is ever a mix of two.
func TestWriteFileConcurrent(t *testing.T) {
	p := filepath.Join(t.TempDir(), "db.cdb")
	recs := func(prefix string) []Record {
		var r []Record
		for i := 0; i < 5000; i++ {
			r = append(r, Record{Key: []byte(fmt.Sprint(prefix, i)), Data: []byte(prefix)})
		}
		return r
	}
	for round := 0; round < 5; round++ {
		errs := make(chan error, 2)
		for _, prefix := range []string{"a", "b"} {
			go func() { errs <- WriteFile(p, 0o644, recs(prefix)) }()
		}
		for i := 0; i < 2; i++ {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		r, err := NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		_, okA, _ := r.Get([]byte("a4999"))
		_, okB, _ := r.Get([]byte("b4999"))
		_, okA0, _ := r.Get([]byte("a0"))
		_, okB0, _ := r.Get([]byte("b0"))
		if okA == okB || okA != okA0 || okB != okB0 {
			t.Fatalf("round %d: a mixed database (a4999 %v, b4999 %v, a0 %v, b0 %v)", round, okA, okB, okA0, okB0)
		}
	}
}

// TestTinycdb cross-checks the format with tinycdb's cdb(1) when present.
func TestTinycdb(t *testing.T) {
	tool, err := exec.LookPath("cdb")
	if err != nil {
		t.Skip("tinycdb's cdb not installed")
	}
	recs := []Record{{Key: []byte("one"), Data: []byte("1")}, {Key: []byte("two"), Data: []byte("22")}, {Key: []byte(""), Data: []byte("e")}}
	p := write(t, recs)
	out, err := exec.Command(tool, "-d", p).Output()
	if err != nil {
		t.Fatalf("cdb -d: %v", err)
	}
	if want := "+3,1:one->1\n+3,2:two->22\n+0,1:->e\n\n"; string(out) != want {
		t.Errorf("cdb -d:\n%q\nwant\n%q", out, want)
	}
	// And the other way: tinycdb builds, we read.
	q := filepath.Join(t.TempDir(), "t.cdb")
	cmd := exec.Command(tool, "-c", q)
	cmd.Stdin = strings.NewReader("+5,3:alpha->abc\n+1,0:b->\n\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cdb -c: %v %s", err, out)
	}
	f, err := Open(q)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if d, ok, _ := f.Get([]byte("alpha")); !ok || string(d) != "abc" {
		t.Errorf("alpha = %q %v", d, ok)
	}
	if d, ok, _ := f.Get([]byte("b")); !ok || len(d) != 0 {
		t.Errorf("b = %q %v", d, ok)
	}
}
