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

func newTable(t *testing.T) (*Table, *int64) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tcpto")
	if err := os.WriteFile(p, make([]byte, Size), 0644); err != nil {
		t.Fatal(err)
	}
	now := int64(1_000_000)
	return &Table{Path: p, PID: 32, Now: func() time.Time { return time.Unix(now, 0) }}, &now
}

func TestTimeoutsAndBackoff(t *testing.T) {
	tb, now := newTable(t)
	ip := net.ParseIP("192.0.2.7")
	steps := []struct {
		advance  int64
		timeout  bool
		ready    bool
		present  bool
		count    int
		describe string
	}{
		{0, true, true, false, 1, "first timeout creates a record"},
		{10, true, true, true, 1, "second within 120 s leaves it alone"},
		{200, true, true, true, 2, "after 120 s counts again"},
		// pid 32: (60 + 0) * 64 = 3840 s of back-off once count >= 2.
		{100, true, false, true, 2, "skipped while backing off"},
		{3840, false, true, true, 0, "ready after the back-off; success clears"},
	}
	for _, s := range steps {
		*now += s.advance
		ready, present := tb.Ready(ip)
		if ready != s.ready || present != s.present {
			t.Fatalf("%s: Ready = %v,%v want %v,%v", s.describe, ready, present, s.ready, s.present)
		}
		if ready {
			tb.Result(ip, s.timeout, present)
		}
		es, err := tb.Entries()
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		if len(es) == 1 {
			got = es[0].Count
		}
		if got != s.count {
			t.Fatalf("%s: count %d want %d (%v)", s.describe, got, s.count, es)
		}
	}
}

func TestCountCapsAtTen(t *testing.T) {
	tb, now := newTable(t)
	ip := net.ParseIP("192.0.2.8")
	for i := 0; i < 15; i++ {
		*now += 121
		tb.Result(ip, true, i > 0)
	}
	es, _ := tb.Entries()
	if len(es) != 1 || es[0].Count != 10 {
		t.Fatalf("entries %v", es)
	}
}

func TestVictimSelection(t *testing.T) {
	tb, now := newTable(t)
	for i := 0; i < Records; i++ {
		*now++
		tb.Result(net.IPv4(10, 0, 0, byte(i)), true, false)
	}
	*now++
	tb.Result(net.ParseIP("10.1.0.0"), true, false)
	es, _ := tb.Entries()
	if len(es) != Records {
		t.Fatalf("%d entries", len(es))
	}
	// The oldest record (10.0.0.0, smallest last) was replaced.
	if !es[0].IP.Equal(net.ParseIP("10.1.0.0")) {
		t.Fatalf("record 0 is %v", es[0].IP)
	}
}

func TestIPv6Ignored(t *testing.T) {
	tb, _ := newTable(t)
	ip := net.ParseIP("2001:db8::1")
	tb.Result(ip, true, false)
	if r, p := tb.Ready(ip); !r || p {
		t.Fatalf("Ready = %v %v", r, p)
	}
	if es, _ := tb.Entries(); len(es) != 0 {
		t.Fatalf("entries %v", es)
	}
}

func TestMissingFileIsReady(t *testing.T) {
	tb := &Table{Path: filepath.Join(t.TempDir(), "none")}
	ip := net.ParseIP("192.0.2.1")
	tb.Result(ip, true, false)
	if r, _ := tb.Ready(ip); !r {
		t.Fatal("not ready")
	}
	if err := tb.Clear(); err == nil {
		t.Fatal("Clear created the file")
	}
}

func TestReportAndClear(t *testing.T) {
	tb, now := newTable(t)
	tb.Result(net.ParseIP("192.0.2.9"), true, false)
	*now += 42
	var b bytes.Buffer
	if err := tb.Report(&b); err != nil {
		t.Fatal(err)
	}
	want := "192.0.2.9 timed out 42 seconds ago; # recent timeouts: 1\n"
	if b.String() != want {
		t.Fatalf("got %q", b.String())
	}
	if err := tb.Clear(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(tb.Path)
	if len(data) != Size || strings.Trim(string(data), "\x00") != "" {
		t.Fatal("not zero-filled")
	}
}

// TestFutureLastIsExpired: a record whose last timeout lies in the future
// (the clock was set back a year after it was written) counts as expired:
// the address is tried, not skipped until the clock catches up (QA: Ready
// was false at +0, +1 h and +30 days, and qmail-tcpto printed "timed out
// -31536200 seconds ago"); the next timeout is recorded at once, with the
// time now.
func TestFutureLastIsExpired(t *testing.T) {
	tb, now := newTable(t)
	*now = 1_700_000_000
	ip := net.ParseIP("192.0.2.10")
	tb.Result(ip, true, false)
	*now += 200
	tb.Result(ip, true, true)
	if r, _ := tb.Ready(ip); r {
		t.Fatal("two recent timeouts: want skipped")
	}
	*now -= 365 * 86400 // the clock goes back a year
	for _, step := range []int64{0, 3600, 30 * 86400} {
		*now += step
		if r, p := tb.Ready(ip); !r || !p {
			t.Fatalf("+%d s: Ready = %v,%v, want true,true", step, r, p)
		}
	}
	var b bytes.Buffer
	if err := tb.Report(&b); err != nil {
		t.Fatal(err)
	}
	if want := "192.0.2.10 timed out in the future (clock went back?); # recent timeouts: 2\n"; b.String() != want {
		t.Fatalf("report %q, want %q", b.String(), want)
	}
	tb.Result(ip, true, true)
	es, _ := tb.Entries()
	if len(es) != 1 || es[0].Count != 3 || es[0].Last != *now {
		t.Fatalf("timeout after the clock went back: %+v, want count 3 at %d", es, *now)
	}
	if r, _ := tb.Ready(ip); r {
		t.Fatal("timed out again just now: want skipped")
	}
}

// TestVictimFutureLast: of full records, one whose last timeout lies in the
// future is replaced first (it counts as expired), not kept for ever.
func TestVictimFutureLast(t *testing.T) {
	tb, now := newTable(t)
	for i := 0; i < Records; i++ {
		*now++
		tb.Result(net.IPv4(10, 0, 0, byte(i)), true, false)
	}
	// Record 5 claims a time a day ahead.
	f, err := os.OpenFile(tb.Path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var r [RecordSize]byte
	encode(r[:], Entry{IP: net.IPv4(10, 0, 0, 5), Count: 1, Last: *now + 86400})
	if _, err := f.WriteAt(r[:], 5*RecordSize); err != nil {
		t.Fatal(err)
	}
	f.Close()
	*now++
	tb.Result(net.ParseIP("10.1.0.0"), true, false)
	es, _ := tb.Entries()
	if len(es) != Records || !es[5].IP.Equal(net.ParseIP("10.1.0.0")) {
		t.Fatalf("record 5 is %v, want the new address", es[5].IP)
	}
}

// TestLinkedTableRefused: tcpto lives in qmailq's queue/lock and
// qmail-tcpto runs as root: a symbolic link there (to a file whose bytes
// would be listed as records) is not read, nor a hard link written.
func TestLinkedTableRefused(t *testing.T) {
	dir := t.TempDir()
	lock := filepath.Join(dir, "queue", "lock")
	os.MkdirAll(lock, 0o755)
	victim := filepath.Join(dir, "victim")
	secret := make([]byte, Size)
	copy(secret, []byte{192, 0, 2, 77, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1})
	os.WriteFile(victim, secret, 0o600)
	p := filepath.Join(lock, "tcpto")
	os.Symlink(victim, p)
	tb := &Table{Path: p, PID: 32}
	var b bytes.Buffer
	if err := tb.Report(&b); err == nil {
		t.Errorf("a linked tcpto was read: %q", b.String())
	}
	os.Remove(p)
	os.Link(victim, p)
	tb.Result(net.ParseIP("192.0.2.9"), true, false)
	if got, _ := os.ReadFile(victim); !bytes.Equal(got, secret) {
		t.Error("a hard-linked tcpto was written")
	}
	// Listing it only reads, as every queue file may be read (upg2 QA:
	// qmail-tcpto failed with "has more than one link; not written").
	b.Reset()
	if err := tb.Report(&b); err != nil {
		t.Errorf("listing a hard-linked tcpto: %v", err)
	}
}
