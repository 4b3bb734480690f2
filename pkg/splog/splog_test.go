package splog

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"syscall"
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
		// Kern is user, as glibc's openlog(3) and syslog(3) make it for
		// qmail's splogger: no kern line from user space.
		{"0", 1, false}, {"kern", 1, false}, {"KERN", 1, false}, {"user", 1, false}, {"8", 1, false},
		{"00", 1, false},
	} {
		got, err := ParseFacility(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && got != tc.want) {
			t.Errorf("ParseFacility(%q) = %d, %v; want %d, bad=%v", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

// TestKernIsUser: "splogger qmail 0" and "splogger qmail kern" send
// user.info ("<14>"), as qmail's splogger does through glibc, never a
// kern line ("<6>") that a log daemon files as the kernel's.
func TestKernIsUser(t *testing.T) {
	for _, in := range []string{"0", "kern"} {
		fac, err := ParseFacility(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := string(Format(fac, Severity("new msg 1"), time.Unix(0, 0), "qmail", "x")); !strings.HasPrefix(got, "<14>") {
			t.Errorf("facility %q: %q, want <14>", in, got)
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

// listenStream makes a stream syslog socket at path, as syslog-ng's
// unix-stream("/dev/log") does; Accept and reads give up after 10 s.
func listenStream(t *testing.T, path string) *net.UnixListener {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	l.SetDeadline(time.Now().Add(10 * time.Second))
	return l
}

// acceptStream accepts the next connection on l, with a read deadline.
func acceptStream(t *testing.T, l *net.UnixListener) *net.UnixConn {
	t.Helper()
	c, err := l.AcceptUnix()
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	return c
}

// readMessage reads one NUL-terminated message from c.
func readMessage(t *testing.T, c net.Conn) string {
	t.Helper()
	var msg []byte
	b := make([]byte, 1)
	for {
		if _, err := c.Read(b); err != nil {
			t.Fatalf("read after %q: %v", msg, err)
		}
		if b[0] == 0 {
			return string(msg)
		}
		msg = append(msg, b[0])
	}
}

// TestRunStreamSocket: when the syslog socket is a stream socket, every
// line goes out on one stream connection, each message NUL-terminated.
func TestRunStreamSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.sock")
	l := listenStream(t, path)
	long := "warning: " + strings.Repeat("x", MaxLine-9+10)
	in := "new msg 12\n\nwarning: trouble\n" + long + "\nafter"
	var warn testutil.SyncBuffer
	runErr := make(chan error, 1)
	go func() { runErr <- Run(strings.NewReader(in), path, "qmail", 2, &warn) }()
	c := acceptStream(t, l)
	data, err := io.ReadAll(c) // to EOF: Run closes the connection at its end
	if err != nil {
		t.Fatalf("read %q: %v", data, err)
	}
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	if warn.String() != "" {
		t.Errorf("warnings %q", warn.String())
	}
	if !strings.HasSuffix(string(data), "\x00") {
		t.Fatalf("stream does not end with a NUL: %q", data)
	}
	got := strings.Split(strings.TrimSuffix(string(data), "\x00"), "\x00")
	wantEnd := []string{" new msg 12", " warning: trouble", " " + long[:MaxLine], "+xxxxxxxxxx", " after"}
	wantPri := []string{"<22>", "<20>", "<20>", "<20>", "<22>"}
	if len(got) != len(wantEnd) {
		t.Fatalf("%d messages, want %d: %q", len(got), len(wantEnd), got)
	}
	for i, m := range got {
		if !strings.HasPrefix(m, wantPri[i]) || !strings.Contains(m, " qmail: ") || !strings.HasSuffix(m, wantEnd[i]) || strings.Contains(m, "\n") {
			t.Errorf("message %d: %q", i, m)
		}
	}
}

// TestRunStreamPeerGoes: a stream peer that closes its connection is
// reconnected to at once (no line lost, no warning); when its socket is
// gone too, lines are dropped with one warning, as on a datagram socket,
// until a new listener is there.
func TestRunStreamPeerGoes(t *testing.T) {
	t.Cleanup(func(d time.Duration) func() { return func() { retryEvery = d } }(retryEvery))
	retryEvery = 10 * time.Millisecond
	path := filepath.Join(t.TempDir(), "log.sock")
	l := listenStream(t, path)
	pr, pw := io.Pipe()
	var warn testutil.SyncBuffer
	done := make(chan error, 1)
	go func() { done <- Run(pr, path, "qmail", 2, &warn) }()
	ended := false
	t.Cleanup(func() { // a test that failed early: end Run
		pw.Close()
		if !ended {
			<-done
		}
	})

	io.WriteString(pw, "one\n")
	c1 := acceptStream(t, l)
	if m := readMessage(t, c1); !strings.HasSuffix(m, " one") {
		t.Fatalf("first message %q", m)
	}
	c1.Close() // the peer goes; the socket stays
	io.WriteString(pw, "two\n")
	c2 := acceptStream(t, l)
	if m := readMessage(t, c2); !strings.HasSuffix(m, " two") {
		t.Fatalf("message after reconnecting %q", m)
	}
	if w := warn.String(); w != "" {
		t.Errorf("warnings after a reconnection %q", w)
	}

	c2.Close()
	l.Close() // removes the socket: the next line is dropped
	io.WriteString(pw, "three\n")
	for i := 0; i < 500 && !strings.Contains(warn.String(), "dropping lines"); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	l = listenStream(t, path)
	got := make(chan string, 1)
	go func() {
		defer close(got)
		c, err := l.AcceptUnix()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		if m, err := r.ReadString(0); err == nil {
			got <- strings.TrimSuffix(m, "\x00")
		}
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
	ended = true
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !strings.Contains(first, " probe ") {
		t.Errorf("first message on the new socket %q", first)
	}
	w := warn.String()
	if strings.Count(w, "dropping lines") != 1 || !strings.Contains(w, "is back") {
		t.Errorf("warnings %q", w)
	}
}

// halfConn takes half of the first write, then fails; it records what it
// was given and whether it was closed.
type halfConn struct {
	net.Conn
	written []byte
	writes  int
	closed  bool
}

func (h *halfConn) Write(b []byte) (int, error) {
	h.writes++
	n := len(b) / 2
	h.written = append(h.written, b[:n]...)
	return n, syscall.EAGAIN
}

func (h *halfConn) Close() error { h.closed = true; return nil }

func (h *halfConn) SetWriteDeadline(time.Time) error { return nil }

// TestSendStreamPartialWrite: after a stream write that took part of a
// message, nothing more goes on that connection (the rest would run into
// the next message); the whole message goes on a new connection.
func TestSendStreamPartialWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.sock")
	l := listenStream(t, path)
	half := &halfConn{}
	var warn testutil.SyncBuffer
	s := &sender{path: path, errw: &warn, conn: half, stream: true}
	msg := Format(2, sevInfo, time.Now(), "qmail", "1.000000 a message")
	got := make(chan []byte, 1)
	go func() {
		defer close(got)
		c, err := l.AcceptUnix()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if data, err := io.ReadAll(c); err == nil {
			got <- data
		}
	}()
	s.send(msg)
	s.close()
	if half.writes != 1 || !half.closed {
		t.Errorf("half-written connection: %d writes, closed %v", half.writes, half.closed)
	}
	if data := <-got; string(data) != string(msg)+"\x00" {
		t.Errorf("new connection got %q, want %q", data, string(msg)+"\x00")
	}
	if w := warn.String(); w != "" {
		t.Errorf("warnings %q", w)
	}
}

// TestConnectStreamOnlyOnWrongType: a stream connection is tried only when
// the datagram one fails with EPROTOTYPE, not when syslog is just away.
func TestConnectStreamOnlyOnWrongType(t *testing.T) {
	defer func(d func(string, string) (net.Conn, error)) { dial = d }(dial)
	var tried []string
	dial = func(network, addr string) (net.Conn, error) {
		tried = append(tried, network)
		return net.Dial(network, addr)
	}
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock") // a socket file nobody reads
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: stale, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	pc.Close()
	live := filepath.Join(dir, "gram.sock")
	pc, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: live, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	stream := filepath.Join(dir, "stream.sock")
	listenStream(t, stream)
	for _, tc := range []struct {
		path   string
		ok     bool
		tried  string
		stream bool
	}{
		{filepath.Join(dir, "missing.sock"), false, "unixgram", false},
		{stale, false, "unixgram", false},
		{live, true, "unixgram", false},
		{stream, true, "unixgram unix", true},
	} {
		tried = nil
		s := &sender{path: tc.path, errw: io.Discard}
		ok := s.connect()
		s.close()
		if ok != tc.ok || strings.Join(tried, " ") != tc.tried || s.stream != tc.stream {
			t.Errorf("%s: connected %v, tried %q, stream %v; want %v, %q, %v",
				filepath.Base(tc.path), ok, tried, s.stream, tc.ok, tc.tried, tc.stream)
		}
	}
}
