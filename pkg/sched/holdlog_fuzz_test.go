package sched

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzHoldLog (QA fuzz): queue/bounce/holdperiods after a crash or a disk
// error may hold anything. Loading never panics, every well-formed line
// of the file is kept (a damaged line elsewhere must not lose the held
// time the others record), save+load is a round trip, and the period
// arithmetic never yields a negative held time.
func FuzzHoldLog(f *testing.F) {
	f.Add([]byte("local 100 200\nremote 150 0\nremotesome 150 0\n"), int64(120), int64(1000))
	f.Add([]byte("remote -9223372036854775808 9223372036854775807\nremote 1 2\n"), int64(0), int64(10))
	f.Fuzz(func(t *testing.T, raw []byte, birth, now int64) { checkHoldLog(t, raw, birth, now) })
}

// TestHoldLogLongLine: a line over 64 KB (a damaged file) made
// loadHoldLog's bufio.Scanner stop, silently, and every period after it
// was lost (QA fuzz).
func TestHoldLogLongLine(t *testing.T) {
	checkHoldLog(t, []byte("local 100 200\n"+strings.Repeat("x", 70000)+"\nremote 5 0\n"), 0, 10)
}

func checkHoldLog(t *testing.T, raw []byte, birth, now int64) {
	t.Helper()
	q := t.TempDir()
	if err := os.Mkdir(filepath.Join(q, "bounce"), 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(q, "bounce", HoldLogName)
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	h := loadHoldLog(q)
	if h.err != nil {
		t.Fatalf("load: %v", h.err)
	}
	// Every well-formed line must be among the periods, in order.
	var want []period
	for _, l := range bytes.Split(raw, []byte("\n")) {
		fs := strings.Fields(string(l))
		if len(fs) != 3 {
			continue
		}
		c := map[string]int{"local": chanLocal, "remote": chanRemote, "remotesome": kindRemoteSome}
		k, ok := c[fs[0]]
		s, e1 := strconv.ParseInt(fs[1], 10, 64)
		e, e2 := strconv.ParseInt(fs[2], 10, 64)
		if ok && e1 == nil && e2 == nil {
			want = append(want, period{k, s, e})
		}
	}
	if len(want) != len(h.periods) {
		t.Fatalf("%d well-formed lines, %d periods loaded", len(want), len(h.periods))
	}
	for i := range want {
		if want[i] != h.periods[i] {
			t.Fatalf("period %d: %+v, file says %+v", i, h.periods[i], want[i])
		}
	}
	if err := h.save(); err != nil {
		t.Fatal(err)
	}
	h2 := loadHoldLog(q)
	if len(h2.periods) != len(h.periods) {
		t.Fatalf("round trip: %d periods, then %d", len(h.periods), len(h2.periods))
	}
	for c := 0; c < 3; c++ {
		if birth <= now {
			if w := h.heldWithin(c, birth, now); w < 0 {
				t.Fatalf("heldWithin(%d, %d, %d) = %d < 0", c, birth, now, w)
			}
		}
	}
	h.lifetime = 604800
	h.prune(now)
	h.squeeze()
	h.inOrder()
}
