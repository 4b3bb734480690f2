package maildir

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDeliverRoundTrip (QA fuzz): whatever the head and message bytes
// (NULs, "From " lines, no final newline), the one file Deliver puts in
// new/ holds exactly head then message, and tmp/ is left empty.
func FuzzDeliverRoundTrip(f *testing.F) {
	f.Add([]byte("Return-Path: <a@b>\n"), []byte("From x\n\nbody"))
	f.Add([]byte{}, []byte{0, '\r', '\n', '.', '\n'})
	f.Fuzz(func(t *testing.T, head, msg []byte) {
		d := t.TempDir()
		for _, s := range []string{"tmp", "new", "cur"} {
			os.Mkdir(filepath.Join(d, s), 0o700)
		}
		if err := Deliver(d, head, bytes.NewReader(msg)); err != nil {
			t.Fatal(err)
		}
		ents, _ := os.ReadDir(filepath.Join(d, "new"))
		if len(ents) != 1 {
			t.Fatalf("%d files in new/", len(ents))
		}
		got, _ := os.ReadFile(filepath.Join(d, "new", ents[0].Name()))
		if !bytes.Equal(got, append(append([]byte{}, head...), msg...)) {
			t.Fatalf("delivered %q", got)
		}
		if tmp, _ := os.ReadDir(filepath.Join(d, "tmp")); len(tmp) != 0 {
			t.Fatalf("tmp/ keeps %d files", len(tmp))
		}
	})
}
