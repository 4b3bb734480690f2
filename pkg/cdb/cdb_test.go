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
	if _, err := os.Stat(p + ".tmp"); err == nil {
		t.Error(".tmp left")
	}
	if err := WriteFile(filepath.Join(t.TempDir(), "no", "such", "dir"), 0o644, nil); err == nil {
		t.Error("WriteFile into a missing dir succeeded")
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
