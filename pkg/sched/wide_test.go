package sched

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/spawnproto"
)

// TestSpawnerForms: the remote spawner announces its limit in one byte
// (qmail) or in the wide form; qmail-send runs min(control, announced)
// deliveries at once, sends slots in the announced width, and never a
// slot at or above the effective limit.
func TestSpawnerForms(t *testing.T) {
	for _, tc := range []struct {
		name     string
		announce []byte
		control  string
		recips   int
		want     int // deliveries at once
	}{
		{"one byte 120 caps 300", []byte{120}, "300", 300, 120},
		{"one byte 255 caps 500", []byte{255}, "500", 300, 255},
		{"wide 500 allows 300", []byte{0, 1, 244}, "300", 300, 300},
		{"wide 500 allows 500", []byte{0, 1, 244}, "500", 500, 500},
		{"wide 200 caps 300", []byte{0, 0, 200}, "300", 250, 200},
		{"control above 500 is 500", []byte{0, 2, 0}, "999", 520, 500},
		{"wide small limit", []byte{0, 0, 3}, "20", 10, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := newTree(t)
			ctl(t, root, "concurrencyremote", tc.control+"\n")
			recips := make([]string, tc.recips)
			for i := range recips {
				recips[i] = fmt.Sprintf("u%d@remote.example", i)
			}
			queueMsg(t, root, "ann@example.org", recips...)
			release := make(chan struct{})
			held := func(spawnproto.Request) (byte, string) {
				<-release
				return 'K', "ok\n"
			}
			var closeOnce bool
			t.Cleanup(func() {
				if !closeOnce {
					close(release)
				}
			})
			e := startAnnouncing(t, root, ok, held, [2][]byte{nil, tc.announce})
			e.waitLog(fmt.Sprintf("remote 0/%d\n", tc.want), 1)
			e.wait(fmt.Sprintf("%d requests in flight", tc.want), func() bool {
				n, _, _ := e.spawn[chanRemote].counts()
				return n >= tc.want
			})
			e.waitLog(fmt.Sprintf("remote %d/%d\n", tc.want, tc.want), 1)
			close(release)
			closeOnce = true
			e.waitLog("end msg ", 1)
			n, peak, bad := e.spawn[chanRemote].counts()
			if n != tc.recips || peak != tc.want || bad != 0 {
				t.Errorf("requests %d peak %d out-of-range %d; want %d, %d, 0", n, peak, bad, tc.recips, tc.want)
			}
			wide := 0
			for _, r := range e.spawn[chanRemote].requests() {
				if r.Slot > 255 {
					wide++
				}
			}
			if (wide > 0) != (tc.want > 256) {
				t.Errorf("%d requests on slots above 255 with %d at once", wide, tc.want)
			}
			if got := e.log.count("success: ok/"); got != tc.recips {
				t.Errorf("%d successes", got)
			}
		})
	}
}

// TestSpawnerNoFire: a spawner that closes its pipe inside the wide
// announcement stops qmail-send at start.
func TestSpawnerNoFire(t *testing.T) {
	for _, ann := range []string{"", "\x00", "\x00\x01"} {
		root := newTree(t)
		var log lines
		var opt Options
		opt.Root = root
		opt.Log = &log
		for c := 0; c < 2; c++ {
			opt.SpawnReq[c] = io.Discard
			opt.SpawnRep[c] = strings.NewReader("\x78")
		}
		opt.SpawnRep[1] = strings.NewReader(ann)
		if code := Run(opt); code != 111 || !strings.Contains(log.String(), "alert: cannot start: hath the daemon spawn no fire?") {
			t.Errorf("%q: exit %d, log %q", ann, code, log.String())
		}
	}
}

// TestWideReportRange: with wide slots, a report for slot 300 when 300
// slots exist, or for an unused slot above 255, is out of range; a report
// for a used slot above 255 is handled.
func TestWideReportRange(t *testing.T) {
	root := newTree(t)
	id := uint64(28)
	q := filepath.Join(root, "queue")
	os.WriteFile(filepath.Join(q, fnSplit("mess", id)), []byte("x\n"), 0o644)
	os.WriteFile(filepath.Join(q, fnSplit("info", id)), []byte("Fa@b\x00"), 0o600)
	os.WriteFile(filepath.Join(q, fnChan(1, id)), []byte("Tx@r\x00"), 0o600)
	cf, err := loadConfig(root)
	if err != nil {
		t.Fatal(err)
	}
	var log lines
	s := &Sched{root: root, queue: q, cf: cf, log: logger{w: &log}, now: func() int64 { return 1000 }}
	s.holds = loadHoldLog(q)
	s.concurrency = [2]int{10, 300}
	s.dels = [2][]delivery{make([]delivery, 10), make([]delivery, 300)}
	s.jobs = make([]job, 310)
	s.cleanAlive = false
	bare(t, s)
	j := s.jobOpen(id, 1)
	s.jobs[j].hiteof = true
	s.jobs[j].refs++
	s.jobs[j].numtodo++
	s.dels[1][299] = delivery{used: true, job: j, delid: 7, recip: "x@r"}
	s.used[1]++
	s.jobClose(j) // the pass reference
	dec := spawnproto.ReportDecoder{Width: spawnproto.Wide}
	feed := func(slot int) {
		dec.Feed((&spawnproto.Report{Slot: slot, Letter: 'K', Text: "ok"}).EncodeWidth(spawnproto.Wide),
			func(r spawnproto.Report) { s.report(1, r) })
	}
	feed(300)
	feed(256)
	feed(65535)
	if n := log.count("warning: internal error: delivery report out of range\n"); n != 3 {
		t.Errorf("%d out-of-range warnings:\n%s", n, log.String())
	}
	feed(299)
	if !strings.Contains(log.String(), "delivery 7: success: ok\n") || s.used[1] != 0 || s.dels[1][299].used {
		t.Errorf("slot 299 not handled: used %d\n%s", s.used[1], log.String())
	}
}
