package splog

import (
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/internal/testutil"
)

func TestParseFacility(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		bad  bool
	}{
		{"mail", 2, false}, {"LOCAL0", 16, false}, {"16", 2, false}, {"128", 16, false},
		{"2", 2, false}, {"bogus", 0, true}, {"-1", 0, true}, {"1000", 0, true},
	} {
		got, err := ParseFacility(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && got != tc.want) {
			t.Errorf("ParseFacility(%q) = %d, %v; want %d, bad=%v", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func TestSeverityAndClean(t *testing.T) {
	if Severity("alert: oh no") != sevAlert || Severity("warning: x") != sevWarning || Severity("new msg 1") != sevInfo {
		t.Fatal("severity mapping wrong")
	}
	if got := Clean("a\tb\x80c"); got != "a?b?c" {
		t.Fatalf("Clean = %q", got)
	}
}

func TestRunSendsEveryLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.sock")
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	long := "warning: " + strings.Repeat("x", MaxLine-9+10)
	// Empty lines are not sent; a line of any length is read (2 MB).
	huge := strings.Repeat("h", 2<<20)
	in := "new msg 12\n\nwarning: trouble\n" + long + "\n" + huge + "\nafter"
	// Read while Run sends: its datagrams outnumber the socket's buffer.
	runErr := make(chan error, 1)
	go func() { runErr <- Run(strings.NewReader(in), path, "qmail", 2, io.Discard) }()
	defer func() {
		pc.Close() // a Run still sending (the test failed early) then ends
		if err := <-runErr; err != nil {
			t.Error(err)
		}
	}()
	var got []string
	buf := make([]byte, 4096)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	want := 4 + (len(huge)+MaxLine-1)/MaxLine + 1
	for len(got) < want {
		n, err := pc.Read(buf)
		if err != nil {
			t.Fatalf("read after %d datagrams: %v", len(got), err)
		}
		got = append(got, string(buf[:n]))
	}
	if !strings.HasPrefix(got[0], "<22>") || !strings.Contains(got[0], " qmail: ") || !strings.HasSuffix(got[0], " new msg 12") {
		t.Errorf("first datagram %q", got[0])
	}
	if !strings.HasPrefix(got[1], "<20>") || !strings.HasSuffix(got[1], " warning: trouble") {
		t.Errorf("second datagram %q", got[1])
	}
	// The pieces of a long line: the first with a space after the stamp,
	// the rest with '+', the same stamp and the first piece's priority.
	stamp := func(d string) string {
		_, msg, _ := strings.Cut(d, " qmail: ")
		return msg[:strings.IndexAny(msg, " +")]
	}
	if !strings.HasPrefix(got[3], "<20>") || !strings.HasSuffix(got[3], "+xxxxxxxxxx") || stamp(got[3]) != stamp(got[2]) {
		t.Errorf("split line: %q then %q", got[2], got[3])
	}
	if !strings.HasSuffix(got[len(got)-1], " after") || !strings.Contains(got[len(got)-2], "+hhh") {
		t.Errorf("after the huge line: %q", got[len(got)-1])
	}
	for _, d := range got {
		if _, msg, _ := strings.Cut(d, " qmail: "); !strings.ContainsAny(msg[len(stamp(d)):len(stamp(d))+1], " +") || len(msg) == len(stamp(d))+1 {
			t.Errorf("empty or malformed datagram %q", d)
		}
	}
}

// TestRunOutlivesSyslog: with no syslog socket at the start, Run keeps
// reading (dropping lines, one warning), and once the socket is there the
// lines go out again; it ends without error at the end of its input.
func TestRunOutlivesSyslog(t *testing.T) {
	defer func(d time.Duration) { retryEvery = d }(retryEvery)
	retryEvery = 10 * time.Millisecond
	path := filepath.Join(t.TempDir(), "log.sock")
	pr, pw := io.Pipe()
	var warn testutil.SyncBuffer
	done := make(chan error, 1)
	go func() { done <- Run(pr, path, "qmail", 2, &warn) }()
	io.WriteString(pw, "lost line\n") // no socket yet: dropped
	for i := 0; i < 500 && !strings.Contains(warn.String(), "dropping lines"); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	// Keep logging until a line arrives (bounded): the socket is tried
	// again at most every retryEvery.
	got := make(chan string, 1)
	go func() {
		buf := make([]byte, 4096)
		pc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := pc.Read(buf); err == nil {
			got <- string(buf[:n])
		}
		close(got)
	}()
	var first string
	for i := 0; i < 500 && first == ""; i++ {
		io.WriteString(pw, fmt.Sprintf("probe %d\n", i))
		select {
		case first = <-got:
		case <-time.After(20 * time.Millisecond):
		}
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !strings.Contains(first, " probe ") {
		t.Errorf("first datagram %q", first)
	}
	w := warn.String()
	if strings.Count(w, "dropping lines") != 1 || !strings.Contains(w, "is back") {
		t.Errorf("warnings %q", w)
	}
}
