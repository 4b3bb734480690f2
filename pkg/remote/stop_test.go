package remote

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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

// holdPeer is a loopback SMTP peer with a small receive buffer that holds
// the first transaction at one point until resume is closed: "RCPT" (no
// answer to RCPT), "DATA" (after its 354 it stops reading) or "dot" (it
// reads the message and its dot, and answers 250 only then). held is
// closed when it holds; ended gets what it read after resuming and how
// its stream ended, dots the number of final dots it read.
type holdPeer struct {
	addr   *net.TCPAddr
	held   chan struct{}
	resume chan struct{}
	ended  chan peerEnd
}

func newHoldPeer(t *testing.T, at string) *holdPeer {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		rc.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 4096) })
		return nil
	}}
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdPeer{addr: ln.Addr().(*net.TCPAddr), held: make(chan struct{}),
		resume: make(chan struct{}), ended: make(chan peerEnd, 1)}
	t.Cleanup(func() {
		ln.Close()
		p.release()
	})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		br := bufio.NewReader(c)
		hold := func() {
			close(p.held)
			<-p.resume
		}
		rest := func(quit bool) {
			b, err := io.ReadAll(br)
			if err == nil {
				err = io.EOF
			}
			p.ended <- peerEnd{quit: quit, rest: b, err: err}
		}
		c.Write([]byte("220 hi\r\n"))
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				p.ended <- peerEnd{err: err}
				return
			}
			verb, _, _ := strings.Cut(strings.TrimRight(l, "\r\n"), " ")
			switch strings.ToUpper(verb) {
			case "QUIT":
				c.Write([]byte("221 bye\r\n"))
				rest(true)
				return
			case "RCPT":
				if at == "RCPT" {
					hold()
					rest(false)
					return
				}
				c.Write([]byte("250 ok\r\n"))
			case "DATA":
				c.Write([]byte("354 go\r\n"))
				if at == "DATA" {
					hold()
					rest(false)
					return
				}
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						p.ended <- peerEnd{err: err}
						return
					}
					if l == ".\r\n" {
						break
					}
				}
				if at == "dot" {
					hold()
				}
				c.Write([]byte("250 accepted\r\n"))
			default:
				c.Write([]byte("250 ok\r\n"))
			}
		}
	}()
	return p
}

func (p *holdPeer) release() {
	select {
	case <-p.resume:
	default:
		close(p.resume)
	}
}

// end lets the peer go on and returns how its stream ended.
func (p *holdPeer) end(t *testing.T) peerEnd {
	t.Helper()
	p.release()
	select {
	case r := <-p.ended:
		return r
	case <-time.After(40 * time.Second):
		t.Fatal("the peer did not finish")
	}
	return peerEnd{}
}

func TestStopBeforeDot(t *testing.T) {
	for _, at := range []string{"RCPT", "DATA"} {
		t.Run("held at "+at, func(t *testing.T) {
			p := newHoldPeer(t, at)
			tcp, sndbuf := dialBig(t, p.addr)
			size := 1000
			if at == "DATA" {
				size = 8*sndbuf + 4<<20 // the client waits to write it
			}
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
				t.Fatal("the peer was not reached")
			}
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
			if rep = g.outcome(rep); rep.letter != 'Z' || rep.text != txtStopped {
				t.Errorf("report %c%q, want Z%q", rep.letter, rep.text, txtStopped)
			}
			checkAborted(t, p.end(t))
		})
	}
}

func TestStopAfterDot(t *testing.T) {
	p := newHoldPeer(t, "dot")
	tcp, _ := dialBig(t, p.addr)
	d, _ := newDelivery(bigMessage(t, 1000), 20*time.Second)
	g := newStopGate()
	d.stop = g
	g.begin()
	done := make(chan *report, 1)
	go func() {
		rep, _ := d.smtp(lateConn{tcp}, dnsmx.Addr{IP: p.addr.IP}, p.addr.Port, false).(*report)
		done <- rep
	}()
	select {
	case <-p.held:
	case <-time.After(20 * time.Second):
		t.Fatal("the peer did not get the dot")
	}
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
	if !g.end() {
		t.Error("end: the process is not told to end after the TERM")
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
	if rep.letter != 'Z' || rep.text != txtStopped {
		t.Errorf("report %c%q, want Z%q", rep.letter, rep.text, txtStopped)
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

// In one-shot mode a TERM before the delivery begins is reported at once.
func TestStopBeforeBegin(t *testing.T) {
	g := newStopGate()
	g.request()
	var out bytes.Buffer
	mainGate(t.TempDir(), []string{"h.test", "f@x.test", "r@h.test"}, bigMessage(t, 10), &out, g)
	if got, want := out.String(), "Z"+txtStopped+"\x00"; got != want {
		t.Errorf("output %q, want %q", got, want)
	}
}

// Keep mode: a TERM between deliveries ends Serve as end of file does
// (the idle wait is cut by shutting the socket for reading); one during a
// delivery is answered, and Serve ends after the answer.
func TestStopKeepIdle(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	g := newStopGate()
	done := make(chan struct{})
	go func() {
		serveGate(t.TempDir(), fds[1], g)
		close(done)
	}()
	hello := make([]byte, 64)
	n, err := unix.Read(fds[0], hello)
	if err != nil || string(hello[:n]) != KeepHello {
		t.Fatalf("hello %q, %v", hello[:max(n, 0)], err)
	}
	g.request()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not end at a TERM between deliveries")
	}
}

func TestStopKeepBusy(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	g := newStopGate()
	done := make(chan struct{})
	go func() {
		serveGate(t.TempDir(), fds[1], g)
		close(done)
	}()
	buf := make([]byte, 4096)
	if _, err := unix.Read(fds[0], buf); err != nil {
		t.Fatal(err)
	}
	// A TERM that comes while the request is on its way: the delivery is
	// not made, its answer is the stop, and Serve ends after it.
	g.mu.Lock()
	g.busy = true // as if the request had just been taken
	g.mu.Unlock()
	g.request()
	msg := bigMessage(t, 10)
	req := []byte("h.test\x00f@x.test\x00r@h.test\x00")
	if err := unix.Sendmsg(fds[0], req, unix.UnixRights(int(msg.Fd())), nil, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.Read(fds[0], buf)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(buf[:n]), "Z"+txtStopped+"\x00"; got != want {
		t.Errorf("answer %q, want %q", got, want)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not end after answering")
	}
	if n, err := unix.Read(fds[0], buf); n != 0 || err != nil && !errors.Is(err, unix.ECONNRESET) {
		t.Errorf("after the answer: %d bytes, %v; want end of file", n, err)
	}
}

// stopRoot is a tree whose mail goes to the peer at addr.
func stopRoot(t *testing.T, addr *net.TCPAddr) string {
	t.Helper()
	root := t.TempDir()
	ctl := filepath.Join(root, "control")
	if err := os.Mkdir(ctl, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{
		"me":         "h.test\n",
		"smtproutes": ":[127.0.0.1]:" + itoa(addr.Port) + "\n",
	} {
		if err := os.WriteFile(filepath.Join(ctl, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(root) // run changes into root; this puts the test's directory back
	return root
}

// The spawner going away (qmail-rspawn killed) is a TERM too: nobody can
// read the answer. Kept: end of file on the socket during a delivery;
// one-shot: the reader of descriptor 1 gone.
func TestStopSpawnerGone(t *testing.T) {
	t.Run("kept", func(t *testing.T) {
		p := newHoldPeer(t, "RCPT")
		root := stopRoot(t, p.addr)
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			serveGate(root, fds[1], newStopGate())
			close(done)
		}()
		buf := make([]byte, 4096)
		if _, err := unix.Read(fds[0], buf); err != nil {
			t.Fatal(err)
		}
		msg := bigMessage(t, 1000)
		if err := unix.Sendmsg(fds[0], []byte("far.test\x00f@x.test\x00r@far.test\x00"), unix.UnixRights(int(msg.Fd())), nil, 0); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.held:
		case <-time.After(20 * time.Second):
			t.Fatal("the peer was not reached")
		}
		unix.Close(fds[0]) // the spawner is gone
		checkAborted(t, p.end(t))
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("Serve did not end")
		}
	})
	t.Run("one-shot", func(t *testing.T) {
		p := newHoldPeer(t, "RCPT")
		root := stopRoot(t, p.addr)
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		done := make(chan struct{})
		go func() {
			mainGate(root, []string{"far.test", "f@x.test", "r@far.test"}, bigMessage(t, 1000), w, newStopGate())
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
