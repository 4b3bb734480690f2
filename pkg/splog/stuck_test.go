package splog

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hqmail/hqmail/internal/testutil"
)

// shortTimeouts makes writes to syslog give up after 50 ms and the socket
// be tried again every 10 ms, for the length of the test.
func shortTimeouts(t *testing.T) {
	w, r := writeTimeout, retryEvery
	t.Cleanup(func() { writeTimeout, retryEvery = w, r })
	writeTimeout, retryEvery = 50*time.Millisecond, 10*time.Millisecond
}

// stuckInput is many log lines, more than any socket buffer holds.
func stuckInput() string {
	var b strings.Builder
	pad := strings.Repeat("x", 200)
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&b, "line %d %s\n", i, pad)
	}
	return b.String()
}

// runStuck runs Run on in in the background, the rest of its input
// coming from the returned pipe writer. Run's result arrives on the
// channel; the test fails if it has not ended 20 s after the pipe is
// closed (end), as Run blocked for good in a write did.
func runStuck(t *testing.T, path, in string, warn io.Writer) (pw *io.PipeWriter, end func()) {
	t.Helper()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- Run(io.MultiReader(strings.NewReader(in), pr), path, "qmail", 2, warn) }()
	ended := false
	end = func() {
		t.Helper()
		pw.Close()
		if ended {
			return
		}
		ended = true
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("Run has not finished its input 20 s after its end: blocked writing to a syslog that does not read")
		}
	}
	t.Cleanup(func() { pw.Close() })
	return pw, end
}

// waitFor waits (bounded) until the warnings contain s.
func waitFor(t *testing.T, warn *testutil.SyncBuffer, s string) {
	t.Helper()
	for i := 0; i < 2000 && !strings.Contains(warn.String(), s); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(warn.String(), s) {
		t.Fatalf("no %q in the warnings %q", s, warn.String())
	}
}

// TestRunDatagramNotRead: a syslogd that is alive but does not read lets
// its datagram socket fill up. splogger still reads all its input (the
// lines it cannot send dropped, with a warning), and once the socket is
// read again, later lines arrive and splogger says syslog is back.
func TestRunDatagramNotRead(t *testing.T) {
	shortTimeouts(t)
	path := filepath.Join(t.TempDir(), "log.sock")
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	var warn testutil.SyncBuffer
	pw, end := runStuck(t, path, stuckInput(), &warn)

	// Every line of the input is read while nothing is: a line written
	// after them is taken (the pipe write returns), with a bounded wait.
	wrote := make(chan struct{})
	go func() { io.WriteString(pw, "after the flood\n"); close(wrote) }()
	select {
	case <-wrote:
	case <-time.After(20 * time.Second):
		t.Fatal("splogger stopped reading its input: blocked writing to a syslog that does not read")
	}
	waitFor(t, &warn, "dropping lines")

	// The daemon reads again: later lines arrive.
	got := make(chan string, 1)
	go func() {
		defer close(got)
		buf := make([]byte, 4096)
		pc.SetReadDeadline(time.Now().Add(20 * time.Second))
		for {
			n, err := pc.Read(buf)
			if err != nil {
				return
			}
			if m := string(buf[:n]); strings.Contains(m, " probe ") {
				got <- m
				return
			}
		}
	}()
	var first string
	for i := 0; i < 1000 && first == ""; i++ {
		io.WriteString(pw, fmt.Sprintf("probe %d\n", i))
		select {
		case first = <-got:
		case <-time.After(20 * time.Millisecond):
		}
	}
	end()
	if first == "" {
		t.Fatalf("no line arrived once the socket was read again; warnings %q", warn.String())
	}
	if w := warn.String(); !strings.Contains(w, "no message taken in") || !strings.Contains(w, "is back; ") {
		t.Errorf("warnings %q", w)
	}
}

// TestRunStreamNotRead: the same with a stream socket whose daemon accepts
// connections and never reads them. A connection a write timed out on is
// closed: what came on it is whole messages, then at most part of one and
// the end, never part of one followed by the next. Once the daemon reads,
// later lines arrive.
func TestRunStreamNotRead(t *testing.T) {
	shortTimeouts(t)
	path := filepath.Join(t.TempDir(), "log.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	l.SetDeadline(time.Now().Add(30 * time.Second))
	read := make(chan struct{}) // closed when the daemon starts reading
	var (
		mu      sync.Mutex
		data    [][]byte // what came on each connection, to its end
		readers sync.WaitGroup
	)
	accepting := make(chan struct{})
	go func() {
		defer close(accepting)
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			readers.Add(1)
			go func() {
				defer readers.Done()
				defer c.Close()
				<-read
				c.SetReadDeadline(time.Now().Add(20 * time.Second))
				b, _ := io.ReadAll(c)
				mu.Lock()
				data = append(data, b)
				mu.Unlock()
			}()
		}
	}()
	var warn testutil.SyncBuffer
	pw, end := runStuck(t, path, stuckInput(), &warn)
	defer func() {
		select {
		case <-read:
		default:
			close(read)
		}
	}()

	wrote := make(chan struct{})
	go func() { io.WriteString(pw, "after the flood\n"); close(wrote) }()
	select {
	case <-wrote:
	case <-time.After(20 * time.Second):
		t.Fatal("splogger stopped reading its input: blocked writing to a syslog that does not read")
	}
	waitFor(t, &warn, "dropping lines")

	close(read)
	for i := 0; i < 200; i++ {
		io.WriteString(pw, fmt.Sprintf("probe %d\n", i))
		time.Sleep(5 * time.Millisecond)
	}
	end()
	l.Close()
	<-accepting
	readers.Wait()

	probes := 0
	mu.Lock()
	defer mu.Unlock()
	for _, b := range data {
		msgs := bytes.Split(b, []byte{0})
		for _, m := range msgs[:len(msgs)-1] { // the last: a part or nothing
			s := string(m)
			if !strings.HasPrefix(s, "<22>") || strings.Count(s, " qmail: ") != 1 || strings.Contains(s[1:], "<22>") {
				t.Fatalf("malformed message on a stream: %.200q", s)
			}
			if strings.Contains(s, " probe ") {
				probes++
			}
		}
	}
	if probes == 0 {
		t.Errorf("no line arrived once the socket was read again (%d connections); warnings %q", len(data), warn.String())
	}
	if len(data) < 2 {
		t.Errorf("%d connections: the one a write timed out on was not closed for a new one", len(data))
	}
	if w := warn.String(); !strings.Contains(w, "dropping lines") || !strings.Contains(w, "is back; ") {
		t.Errorf("warnings %q", w)
	}
}
