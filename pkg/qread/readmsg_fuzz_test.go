package qread

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/hqmail/hqmail/pkg/qhome"
)

// FuzzReadMessage (QA fuzz): qmail-qread over a queue whose info, local,
// remote and todo files hold anything (a crash, a disk error, a hand
// edit): no panic, and the listing has only printable bytes, tabs and
// newlines, one line per message plus one per recipient.
func FuzzReadMessage(f *testing.F) {
	f.Add([]byte("Fa@b\x00"), []byte("Tu@l\x00Dv@l\x00"), []byte("Tx@r\x00"), []byte{}, false, uint8(0))
	f.Add([]byte("F\x00"), []byte("T\n\x1b[31m\x00"), []byte("X\x00\x00T"), []byte("Fa\x00Tb\x00"), true, uint8(3))
	f.Add([]byte(""), []byte("T"), []byte(""), []byte("\x00\x00"), true, uint8(1))
	f.Fuzz(func(t *testing.T, info, local, remote, todo []byte, withTodo bool, missing uint8) {
		q := t.TempDir()
		const id = 1234
		sub := Sub(id)
		for _, d := range []string{"info", "local", "remote", "mess"} {
			for i := uint64(0); i < qhome.Split; i++ {
				os.MkdirAll(filepath.Join(q, d, Sub(i)), 0o700)
			}
		}
		os.MkdirAll(filepath.Join(q, "todo"), 0o700)
		os.MkdirAll(filepath.Join(q, "bounce"), 0o700)
		write := func(rel string, b []byte) {
			if err := os.WriteFile(filepath.Join(q, rel), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if missing&1 == 0 {
			write("info/"+sub+"/1234", info)
		}
		if missing&2 == 0 {
			write("mess/"+sub+"/1234", []byte("x"))
		}
		if missing&4 == 0 {
			write("local/"+sub+"/1234", local)
		}
		if missing&8 == 0 {
			write("remote/"+sub+"/1234", remote)
		}
		if missing&16 != 0 {
			write("bounce/1234", nil)
		}
		if withTodo {
			write("todo/1234", todo)
			if td, found := ReadTodo(q, id); found && td.ID != id {
				t.Fatalf("ReadTodo id %d", td.ID)
			}
			if _, err := ScanTodo(q); err != nil {
				t.Fatal(err)
			}
		}
		m, found, err := ReadMessage(q, id)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := Scan(q)
		if err != nil {
			t.Fatal(err)
		}
		if found != (len(msgs) == 1) {
			t.Fatalf("ReadMessage found=%v, Scan %d messages", found, len(msgs))
		}
		if !found {
			return
		}
		var out bytes.Buffer
		if err := Format(&out, []Message{m}, Holds{Msgs: map[uint64]bool{}}); err != nil {
			t.Fatal(err)
		}
		for _, c := range out.Bytes() {
			if (c < 32 && c != '\t' && c != '\n') || c > 126 {
				t.Fatalf("listing has byte %#x: %q", c, out.String())
			}
		}
		want := 1
		if m.Err == nil {
			want += len(m.Local) + len(m.Remote)
		}
		if n := bytes.Count(out.Bytes(), []byte("\n")); n != want {
			t.Fatalf("listing has %d lines, want %d: %q", n, want, out.String())
		}
	})
}
