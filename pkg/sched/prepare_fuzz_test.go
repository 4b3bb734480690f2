package sched

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hqmail/hqmail/pkg/qread"
)

// FuzzPrepare (QA fuzz): preprocessing a todo/ID that holds anything (a
// crash, a disk error) never panics; when it succeeds, the info file has
// the F records and the channel files hold one T record per T record of
// todo/ID (a complete one, NUL-ended), and qmail-qread reads them back.
func FuzzPrepare(f *testing.F) {
	f.Add([]byte("u0\x00p12\x00Fa@b\x00Tx@mx.example.org\x00Ty@remote.test\x00"))
	f.Add([]byte("Fa\x00Tb\x00Tc"))
	f.Add([]byte("\x00"))
	f.Add([]byte("F\x00T@\x00T\x00T%@mx.example.org\x00"))
	f.Fuzz(func(t *testing.T, todo []byte) {
		root := newTree(t)
		ctl(t, root, "virtualdomains", "v.test:vu\n.w.test:wu\n:all\n")
		ctl(t, root, "percenthack", "mx.example.org\n")
		q := filepath.Join(root, "queue")
		cf, err := loadConfig(root)
		if err != nil {
			t.Fatal(err)
		}
		const id = 4242
		for _, n := range append(remains(id), fnSplit("mess", id), fnFlat("todo", id)) {
			os.Remove(filepath.Join(q, n))
		}
		os.WriteFile(filepath.Join(q, fnSplit("mess", id)), []byte("x"), 0o600)
		os.WriteFile(filepath.Join(q, fnFlat("todo", id)), todo, 0o600)
		s := &Sched{root: root, queue: q, cf: cf, log: logger{w: io.Discard}, now: func() int64 { return 1000 }}
		p := s.prepare(id)
		if p == nil {
			return
		}
		p.close()
		var fs, ts int
		for _, rec := range bytes.Split(todo, []byte{0})[:bytes.Count(todo, []byte{0})] {
			if len(rec) > 0 && rec[0] == 'F' {
				fs++
			}
			if len(rec) > 0 && rec[0] == 'T' {
				ts++
			}
		}
		info, _ := os.ReadFile(filepath.Join(q, fnSplit("info", id)))
		if bytes.Count(info, []byte{0}) != fs || (fs > 0 && info[0] != 'F') {
			t.Fatalf("todo %q: info %q", todo, info)
		}
		n := 0
		for c := 0; c < 2; c++ {
			b, err := os.ReadFile(filepath.Join(q, fnChan(c, id)))
			if err != nil {
				if p.chans[c] {
					t.Fatal(err)
				}
				continue
			}
			if len(b) > 0 && b[len(b)-1] != 0 {
				t.Fatalf("channel %d file %q not NUL-ended", c, b)
			}
			n += len(qread.ParseChannel(b))
		}
		if n != ts {
			t.Fatalf("todo %q: %d T records, %d in the channel files", todo, ts, n)
		}
	})
}
