package test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/test/harness"
)

// heldSink is a scripted SMTP peer that holds the first connection's
// transaction at one point ("RCPT": no answer to RCPT; "dot": the message
// and its dot read, no answer yet) until release is called; other
// connections go straight through. copies counts the messages it accepted;
// firstEnd gets how the first connection ended: nil after QUIT, the read
// error otherwise (a reset when the client aborted it).
type heldSink struct {
	ln       net.Listener
	held     chan struct{}
	copies   atomic.Int32
	firstEnd chan error

	release func()
}

func newHeldSink(t *testing.T, at string) *heldSink {
	t.Helper()
	s := &heldSink{ln: listen(t, "", 2525), held: make(chan struct{}), firstEnd: make(chan error, 1)}
	resume := make(chan struct{})
	var once sync.Once
	s.release = func() { once.Do(func() { close(resume) }) }
	var conns atomic.Int32
	scripted(t, s.ln, func(c net.Conn, br *bufio.Reader) {
		first := conns.Add(1) == 1
		end := func(err error) {
			if first {
				s.firstEnd <- err
			}
		}
		hold := func() {
			if first {
				close(s.held)
				<-resume
			}
		}
		fmt.Fprintf(c, "220 sink\r\n")
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				end(err)
				return
			}
			verb, _, _ := strings.Cut(strings.ToUpper(strings.TrimRight(l, "\r\n")), " ")
			switch verb {
			case "RCPT":
				if at == "RCPT" {
					hold()
				}
				fmt.Fprintf(c, "250 ok\r\n")
			case "DATA":
				fmt.Fprintf(c, "354 go\r\n")
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						end(err)
						return
					}
					if l == ".\r\n" {
						break
					}
				}
				if at == "dot" {
					hold()
				}
				s.copies.Add(1)
				fmt.Fprintf(c, "250 accepted\r\n")
			case "QUIT":
				fmt.Fprintf(c, "221 bye\r\n")
				end(nil)
				return
			default:
				fmt.Fprintf(c, "250 ok\r\n")
			}
		}
	})
	t.Cleanup(s.release) // before scripted's, which waits for the handlers
	return s
}

// waitHeld waits for the first transaction to reach its hold.
func (s *heldSink) waitHeld(t *testing.T, sys *harness.System) {
	t.Helper()
	select {
	case <-s.held:
	case <-time.After(60 * time.Second):
		t.Fatalf("the delivery did not reach the peer; log:\n%s", sys.Log())
	}
}

// heldTree is a tree whose mail for far.example goes to s; kept false
// turns keep mode off (one qmail-remote per delivery).
func heldTree(t *testing.T, s *heldSink, kept bool) *harness.Tree {
	tr := schedTree(t, nil)
	if !kept {
		tr.Control("smtpcache", "0\n")
	}
	tr.Control("smtproutes", fmt.Sprintf("far.example:%s:%d\n", hostOf(s.ln), portOf(s.ln)))
	return tr
}

// TestAbandonedRemoteDelivery: qmail-send is killed (as in a crash) while
// a remote delivery waits for the peer's answer to RCPT. No result of that
// delivery can be recorded any more, and the next run makes it again. So
// qmail-rspawn, at the end of its input, sends TERM to the qmail-remote,
// which aborts the connection before its final dot: the message arrives
// once, from the next run, even when the first peer answers after all.
// The same when qmail-rspawn itself is killed: the qmail-remote sees its
// spawner gone. With one-shot qmail-remote (control/smtpcache 0) and kept
// ones.
func TestAbandonedRemoteDelivery(t *testing.T) {
	for _, tc := range []struct {
		victim string
		kept   bool
	}{{"qmail-send", false}, {"qmail-send", true}, {"qmail-rspawn", false}, {"qmail-rspawn", true}} {
		name := tc.victim + "/one-shot"
		if tc.kept {
			name = tc.victim + "/kept"
		}
		t.Run(name, func(t *testing.T) {
			s := newHeldSink(t, "RCPT")
			tr := heldTree(t, s, tc.kept)
			sys := tr.Start(t, "./Maildir/")
			if err := tr.Queue(t, "box@testhost.example", []string{"joe@far.example"}, []byte("Subject: once\n\nonly once\n")); err != nil {
				t.Fatal(err)
			}
			s.waitHeld(t, sys)
			if tc.victim == "qmail-send" {
				sys.Kill9()
			} else {
				killRspawn(t, sys)
			}

			// The first peer answers now; an old qmail-remote still
			// waiting would go on and send the message.
			s.release()
			select {
			case err := <-s.firstEnd:
				if err == nil {
					t.Errorf("the abandoned connection was ended with QUIT after the message, not aborted")
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the abandoned connection did not end")
			}

			sys2 := tr.Start(t, "./Maildir/")
			sys2.WaitLog(t, "delivery 1: success", 60*time.Second)
			sys2.Stop(t)
			if n := s.copies.Load(); n != 1 {
				t.Errorf("the peer accepted the message %d times, want once", n)
			}
		})
	}
}

// TestGroupTermStop: a stop that sends TERM to the whole process group
// (kill -TERM -PGID; a service manager that signals every process) while
// a remote delivery waits for the answer to its final dot. The spawners
// and qmail-clean take no TERM: qmail-send waits for the delivery, whose
// qmail-remote, its dot out, finishes it too, and records the answer, so
// the next run does not send it again. (qmail's spawners die of the
// TERM; qmail-send then loses the answer, and the message goes again.)
// A one-shot qmail-remote ignores TERM once its dot is out.
func TestGroupTermStop(t *testing.T) {
	for _, kept := range []bool{true, false} {
		name := "kept"
		if !kept {
			name = "one-shot"
		}
		t.Run(name, func(t *testing.T) { groupTermStop(t, kept) })
	}
}

func groupTermStop(t *testing.T, kept bool) {
	s := newHeldSink(t, "dot")
	tr := heldTree(t, s, kept)
	sys := tr.Start(t, "./Maildir/")
	if err := tr.Queue(t, "box@testhost.example", []string{"joe@far.example"}, []byte("Subject: once\n\nonly once\n")); err != nil {
		t.Fatal(err)
	}
	s.waitHeld(t, sys)
	p, err := readProc(sys.Pid())
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(-p.ppid, syscall.SIGTERM) // qmail-start leads the group
	// qmail-send says it took the TERM (or, having lost a spawner, is gone).
	harness.Eventually(10*time.Second, func() bool { return sys.Status()["exiting"] == "yes" || sys.Wait(time.Millisecond) })
	time.Sleep(300 * time.Millisecond) // a spawner dying of the TERM would be gone by now
	s.release()
	if !sys.Wait(30 * time.Second) {
		t.Fatalf("the system did not stop; log:\n%s", sys.Log())
	}
	if n := sys.Count("lost spawn connection"); n != 0 {
		t.Errorf("qmail-send lost a spawner at a TERM to the process group; log:\n%s", sys.Log())
	}
	if sys.Count("delivery 1: success") != 1 {
		t.Errorf("the delivery's answer was not recorded; log:\n%s", sys.Log())
	}
	// Done: nothing for the next run to send again. At TERM qmail-send
	// waits only for the removals it has begun (qmail-send(8), as qmail's
	// loop ends with the done list unworked): a message whose removal was
	// only queued stays, all its recipients marked done, and the next
	// start removes it without a delivery.
	if left := tr.QueueFiles("mess"); len(left) != 0 {
		sys2 := tr.Start(t, "./Maildir/")
		harness.Eventually(10*time.Second, func() bool { return len(tr.QueueFiles("mess")) == 0 })
		if left := tr.QueueFiles("mess"); len(left) != 0 {
			t.Errorf("queue/mess still holds %v after the next start; log:\n%s", left, sys2.Log())
		}
		if n := sys2.Count("starting delivery"); n != 0 {
			t.Errorf("the next start delivered the message again; log:\n%s", sys2.Log())
		}
		sys2.Stop(t)
	}
}

// killRspawn kills the qmail-rspawn of sys with SIGKILL and waits for the
// system to end (qmail-send exits when it loses a spawner).
func killRspawn(t *testing.T, sys *harness.System) {
	t.Helper()
	p, err := readProc(sys.Pid())
	if err != nil {
		t.Fatal(err)
	}
	pid := 0
	for _, c := range childrenOf(p.ppid) {
		if c.name == "qmail-rspawn" {
			pid = c.pid
		}
	}
	if pid == 0 {
		t.Fatal("no qmail-rspawn found")
	}
	syscall.Kill(pid, syscall.SIGKILL)
	if !sys.Wait(30 * time.Second) {
		t.Fatalf("the system did not end after qmail-rspawn was killed; log:\n%s", sys.Log())
	}
}
