package sched

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hqmail/hqmail/pkg/spawnproto"
)

// FuzzReports feeds arbitrary spawner output to the report path of a
// scheduler with three deliveries in flight: it must never panic, and slot
// and job accounting must stay consistent.
func FuzzReports(f *testing.F) {
	f.Add([]byte("\x00Kdid 1+0+0\n\x00"))
	f.Add([]byte("\x01Zlater\x00\x02Dno\x00\x00K\x00"))
	f.Add([]byte("\x05Kout of range\x00\x00\x00\x00"))
	f.Add([]byte("\x00?mangled\x00\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		root := newTree(t)
		id := uint64(28)
		q := filepath.Join(root, "queue")
		os.WriteFile(filepath.Join(q, fnSplit("mess", id)), []byte("x\n"), 0o644)
		os.WriteFile(filepath.Join(q, fnSplit("info", id)), []byte("Fa@b\x00"), 0o600)
		os.WriteFile(filepath.Join(q, fnChan(0, id)), []byte("Tx@l\x00Ty@l\x00Tz@l\x00"), 0o600)
		cf, err := loadConfig(root)
		if err != nil {
			t.Fatal(err)
		}
		s := &Sched{root: root, queue: q, cf: cf, log: logger{w: io.Discard}, now: func() int64 { return 1000 }}
		s.holds = loadHoldLog(q)
		s.concurrency = [2]int{3, 3}
		s.dels = [2][]delivery{make([]delivery, 3), make([]delivery, 3)}
		s.jobs = make([]job, 6)
		s.cleanAlive = false
		bare(t, s)
		j := s.jobOpen(id, 0)
		s.jobs[j].sender = "a@b"
		s.jobs[j].hiteof = true
		for i, r := range []string{"x@l", "y@l", "z@l"} {
			s.jobs[j].refs++
			s.jobs[j].numtodo++
			s.dels[0][i] = delivery{used: true, job: j, delid: uint64(i + 1), mpos: int64(i * 5), recip: r}
			s.used[0]++
		}
		s.jobClose(j) // the pass reference
		var dec spawnproto.ReportDecoder
		dec.Feed(data, func(r spawnproto.Report) { s.report(0, r) })
		inUse := 0
		for _, d := range s.dels[0] {
			if d.used {
				inUse++
			}
		}
		if inUse != s.used[0] || s.used[0] < 0 || s.used[0] > 3 {
			t.Fatalf("slots in use %d, counted %d", inUse, s.used[0])
		}
		if s.jobs[j].used && s.jobs[j].refs != inUse {
			t.Fatalf("job refs %d with %d deliveries", s.jobs[j].refs, inUse)
		}
		if inUse == 0 && s.jobs[j].used {
			t.Fatal("job still open with no references")
		}
	})
}
