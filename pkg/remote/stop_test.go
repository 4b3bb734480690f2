package remote

import (
	"bytes"
	"errors"
	"maps"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/dnsmx"
)

// A TERM (qmail-rspawn's, once qmail-send has gone without waiting for
// its deliveries) gives up a delivery whose final dot has not been sent,
// aborting its connection so that the peer never gets the dot, and leaves
// one whose dot has gone out to finish: only its answer tells whether the
// message went.

// heldDelivery begins a delivery of a message of size bytes to p over tcp,
// under a stopGate of its own, and waits for p to hold it. done gets the
// delivery's report.
func heldDelivery(t *testing.T, p *holdPeer, tcp *net.TCPConn, size int) (*stopGate, <-chan *report) {
	t.Helper()
	d, _ := newDelivery(bigMessage(t, size), 20*time.Second)
	g := newStopGate()
	d.stop = g
	if !g.begin() {
		t.Fatal("begin refused")
	}
	done := make(chan *report, 1)
	go func() {
		rep, _ := d.smtp(lateConn{tcp}, dnsmx.Addr{IP: p.addr.IP}, p.addr.Port, false).(*report)
		done <- rep
	}()
	select {
	case <-p.held:
	case <-time.After(20 * time.Second):
		t.Fatal("the peer did not hold the delivery")
	}
	return g, done
}

func TestStopBeforeDot(t *testing.T) {
	for _, at := range []string{"RCPT", "DATA"} {
		t.Run("held at "+at, func(t *testing.T) {
			p := newHoldPeer(t, at, 1)
			tcp, sndbuf := dialBig(t, p.addr)
			size := 1000
			if at == "DATA" {
				size = 8*sndbuf + 4<<20 // the client waits to write it
			}
			g, done := heldDelivery(t, p, tcp, size)
			g.request()
			var rep *report
			select {
			case rep = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("the delivery did not end at the TERM")
			}
			if rep == nil {
				t.Fatal("no report")
			}
			if rep = g.outcome(rep); rep.letter != 'Z' || rep.text != TextStopped {
				t.Errorf("report %c%q, want Z%q", rep.letter, rep.text, TextStopped)
			}
			checkAborted(t, p.end(t))
		})
	}
}

func TestStopAfterDot(t *testing.T) {
	p := newHoldPeer(t, "dot", 1)
	tcp, _ := dialBig(t, p.addr)
	g, done := heldDelivery(t, p, tcp, 1000)
	g.request() // the dot is out: the answer is still awaited
	p.release()
	var rep *report
	select {
	case rep = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the delivery did not end")
	}
	if rep = g.outcome(rep); rep.letter != 'K' {
		t.Errorf("report %c%q after a TERM that came after the dot, want K (the peer accepted it)", rep.letter, rep.text)
	}
	if r := p.end(t); !r.quit {
		t.Errorf("the peer's stream ended with %v before QUIT, want the dialogue ended in order", r.err)
	}
	if g.end(); !g.stopped() {
		t.Error("after the delivery the process is not told to end after the TERM")
	}
}

// A TERM before the delivery connects: no connection is made, and the
// address is not marked as unreachable (a stop says nothing of the peer).
func TestStopBeforeConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- struct{}{}
			c.Close()
		}
	}()
	d, _ := newDelivery(bigMessage(t, 100), 5*time.Second)
	d.root = t.TempDir()
	g := newStopGate()
	d.stop = g
	g.begin()
	g.request()
	a := ln.Addr().(*net.TCPAddr)
	d.routed, d.route = true, Route{Relay: "127.0.0.1", Port: a.Port}
	rep := d.connect([]dnsmx.Addr{{IP: a.IP}})
	if rep.letter != 'Z' || rep.text != TextStopped {
		t.Errorf("report %c%q, want Z%q", rep.letter, rep.text, TextStopped)
	}
	select {
	case <-accepted:
		t.Error("a connection was made after the TERM")
	case <-time.After(200 * time.Millisecond):
	}
	if g2 := newStopGate(); !g2.begin() {
		t.Error("a fresh gate refuses to begin")
	}
}

// A TERM while the host is looked up cuts the lookup short: a DNS server
// gone with the link (silent here, with a time-out of 30 s for each of 2 x
// 2 queries) does not hold the stop, and the report is the stop's.
func TestStopDuringLookup(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	asked := make(chan struct{}, 16)
	go func() {
		buf := make([]byte, 512)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			asked <- struct{}{}
		}
	}()
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(conf, []byte("nameserver "+pc.LocalAddr().String()+"\noptions timeout:30 attempts:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, _ := newDelivery(bigMessage(t, 100), 5*time.Second)
	d.cfg.ResolvConf = conf
	d.host = "gone.test"
	g := newStopGate()
	d.stop = g
	g.begin()
	done := make(chan *report, 1)
	go func() {
		_, rep := d.addresses()
		done <- rep
	}()
	select {
	case <-asked:
	case <-time.After(20 * time.Second):
		t.Fatal("no query reached the DNS server")
	}
	g.request()
	select {
	case rep := <-done:
		if rep == nil || rep.letter != 'Z' || rep.text != TextStopped {
			t.Errorf("report %+v, want Z%q", rep, TextStopped)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the lookup went on after the TERM")
	}
}

// In one-shot mode a TERM before the delivery begins is reported at once.
func TestStopBeforeBegin(t *testing.T) {
	g := newStopGate()
	g.request()
	var out bytes.Buffer
	mainGate(t.TempDir(), []string{"h.test", "f@x.test", "r@h.test"}, bigMessage(t, 10), &out, g)
	if got, want := out.String(), "Z"+TextStopped+"\x00"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
}

// serving runs serveGate(root, g) on one end of a new socket pair and
// reads its hello on the other, which it returns (the spawner's end, to
// be closed by the caller), with a channel closed when Serve returns.
func serving(t *testing.T, root string, g *stopGate) (int, <-chan struct{}) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		serveGate(root, fds[1], g)
		close(done)
	}()
	hello := make([]byte, 64)
	n, err := unix.Read(fds[0], hello)
	if err != nil || string(hello[:n]) != KeepHello {
		t.Fatalf("hello %q, %v", hello[:max(n, 0)], err)
	}
	return fds[0], done
}

// Keep mode: a TERM between deliveries ends Serve as end of file does
// (the idle wait is cut by shutting the socket for reading); one during a
// delivery is answered, and Serve ends after the answer.
func TestStopKeepIdle(t *testing.T) {
	g := newStopGate()
	sock, done := serving(t, t.TempDir(), g)
	defer unix.Close(sock)
	g.request()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not end at a TERM between deliveries")
	}
}

func TestStopKeepBusy(t *testing.T) {
	g := newStopGate()
	sock, done := serving(t, t.TempDir(), g)
	defer unix.Close(sock)
	buf := make([]byte, 4096)
	// A TERM that comes while the request is on its way: the delivery is
	// not made, its answer is the stop, and Serve ends after it.
	g.mu.Lock()
	g.busy = true // as if the request had just been taken
	g.mu.Unlock()
	g.request()
	msg := bigMessage(t, 10)
	req := []byte("h.test\x00f@x.test\x00r@h.test\x00")
	if err := unix.Sendmsg(sock, req, unix.UnixRights(int(msg.Fd())), nil, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.Read(sock, buf)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(buf[:n]), "Z"+TextStopped+"\x00"; got != want {
		t.Errorf("answer %q, want %q", got, want)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not end after answering")
	}
	if n, err := unix.Read(sock, buf); n != 0 || err != nil && !errors.Is(err, unix.ECONNRESET) {
		t.Errorf("after the answer: %d bytes, %v; want end of file", n, err)
	}
}

// peerRoot is a tree (me: h.test) whose mail goes to the peer on
// 127.0.0.1 at port, with the control files more besides; the test's
// working directory is put back at its end (run changes into the root).
func peerRoot(t *testing.T, port int, more map[string]string) string {
	t.Helper()
	root := t.TempDir()
	ctl := filepath.Join(root, "control")
	if err := os.Mkdir(ctl, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"me": "h.test\n", "smtproutes": ":[127.0.0.1]:" + itoa(port) + "\n"}
	maps.Copy(files, more)
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(ctl, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(root)
	return root
}

// The spawner going away (qmail-rspawn killed) is a TERM too: nobody can
// read the answer. Kept: end of file on the socket during a delivery;
// one-shot: the reader of descriptor 1 gone.
func TestStopSpawnerGone(t *testing.T) {
	t.Run("kept", func(t *testing.T) {
		p := newHoldPeer(t, "RCPT", 1)
		sock, done := serving(t, peerRoot(t, p.addr.Port, nil), newStopGate())
		msg := bigMessage(t, 1000)
		if err := unix.Sendmsg(sock, []byte("far.test\x00f@x.test\x00r@far.test\x00"), unix.UnixRights(int(msg.Fd())), nil, 0); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.held:
		case <-time.After(20 * time.Second):
			t.Fatal("the peer was not reached")
		}
		unix.Close(sock) // the spawner is gone
		checkAborted(t, p.end(t))
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("Serve did not end")
		}
	})
	t.Run("one-shot", func(t *testing.T) {
		// Seen at the dot: the message is larger than the socket buffers
		// hold, so the delivery is still writing it when the reader goes.
		p := newHoldPeer(t, "DATA", 1)
		root := peerRoot(t, p.addr.Port, nil)
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		done := make(chan struct{})
		go func() {
			mainGate(root, []string{"far.test", "f@x.test", "r@far.test"}, bigMessage(t, 16<<20), w, oneShotGate(w))
			close(done)
		}()
		select {
		case <-p.held:
		case <-time.After(20 * time.Second):
			t.Fatal("the peer was not reached")
		}
		r.Close() // the spawner is gone
		checkAborted(t, p.end(t))
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("the delivery did not end")
		}
	})
}
