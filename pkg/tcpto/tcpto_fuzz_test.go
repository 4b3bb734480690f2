package tcpto

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzTable (QA fuzz): queue/lock/tcpto of any contents and length (a
// crash, a disk error): Ready, Result, Entries and Report never panic, a
// timeout recorded leaves the address's count in 1..10 whatever the
// record said before, and Report prints one line per entry.
func FuzzTable(f *testing.F) {
	f.Add(make([]byte, Size), []byte{192, 0, 2, 1}, true, int64(1e9))
	f.Add(bytes.Repeat([]byte{0xff}, Size+7), []byte{255, 255, 255, 255}, true, int64(0))
	f.Add([]byte{192, 0, 2, 1, 200, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, []byte{192, 0, 2, 1}, false, int64(5))
	f.Fuzz(func(t *testing.T, file, ip []byte, timedOut bool, now int64) {
		if len(ip) != 4 {
			return
		}
		p := filepath.Join(t.TempDir(), "tcpto")
		if err := os.WriteFile(p, file, 0o600); err != nil {
			t.Fatal(err)
		}
		tab := &Table{Path: p, Now: func() time.Time { return time.Unix(now, 0) }, PID: 7}
		a := net.IP(ip)
		_, present := tab.Ready(a)
		tab.Result(a, timedOut, present)
		es, err := tab.Entries()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if !e.IP.Equal(a) {
				continue
			}
			// the first record of the address is the one find rewrites
			if timedOut && (e.Count < 1 || e.Count > 10) && !bytes.Equal(ip, []byte{0, 0, 0, 0}) {
				// A record just written says 1..10; an old one that
				// was not rewritten (a timeout within 120 s) may say more.
				if age, ok := e.age(now); !ok || age >= 120 {
					t.Fatalf("after a timeout %v has count %d", e.IP, e.Count)
				}
			}
			break
		}
		var out strings.Builder
		if err := tab.Report(&out); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(out.String(), "\n"); n != len(es) {
			t.Fatalf("%d entries, %d lines", len(es), n)
		}
	})
}
