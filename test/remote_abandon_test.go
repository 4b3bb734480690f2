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
		kept := tc.kept
		name := tc.victim + "/one-shot"
		if kept {
			name = tc.victim + "/kept"
		}
		t.Run(name, func(t *testing.T) {
			tr := schedTree(t, nil)
			if !kept {
				tr.Control("smtpcache", "0\n")
			}
			ln := listen(t, "", 2525)
			tr.Control("smtproutes", fmt.Sprintf("far.example:%s:%d\n", hostOf(ln), portOf(ln)))

			var conns, copies atomic.Int32
			held := make(chan struct{})
			release := make(chan struct{})
			var once sync.Once
			t.Cleanup(func() { once.Do(func() { close(release) }) })
			resetSeen := make(chan error, 1)
			scripted(t, ln, func(c net.Conn, br *bufio.Reader) {
				first := conns.Add(1) == 1
				fmt.Fprintf(c, "220 sink\r\n")
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						if first {
							resetSeen <- err
						}
						return
					}
					verb, _, _ := strings.Cut(strings.ToUpper(strings.TrimRight(l, "\r\n")), " ")
					switch verb {
					case "RCPT":
						if first {
							close(held)
							<-release
						}
						fmt.Fprintf(c, "250 ok\r\n")
					case "DATA":
						fmt.Fprintf(c, "354 go\r\n")
						for {
							l, err := br.ReadString('\n')
							if err != nil {
								if first {
									resetSeen <- err
								}
								return
							}
							if l == ".\r\n" {
								break
							}
						}
						copies.Add(1)
						fmt.Fprintf(c, "250 accepted\r\n")
					case "QUIT":
						fmt.Fprintf(c, "221 bye\r\n")
						if first {
							resetSeen <- nil
						}
						return
					default:
						fmt.Fprintf(c, "250 ok\r\n")
					}
				}
			})

			sys := tr.Start(t, "./Maildir/")
			if err := tr.Queue(t, "box@testhost.example", []string{"joe@far.example"}, []byte("Subject: once\n\nonly once\n")); err != nil {
				t.Fatal(err)
			}
			select {
			case <-held:
			case <-time.After(60 * time.Second):
				t.Fatalf("the delivery did not reach the peer; log:\n%s", sys.Log())
			}
			if tc.victim == "qmail-send" {
				sys.Kill9()
			} else {
				killRspawn(t, sys)
			}

			// The first peer answers now; an old qmail-remote still
			// waiting would go on and send the message.
			once.Do(func() { close(release) })
			select {
			case err := <-resetSeen:
				if err == nil {
					t.Errorf("the abandoned connection was ended with QUIT after the message, not aborted")
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the abandoned connection did not end")
			}

			sys2 := tr.Start(t, "./Maildir/")
			sys2.WaitLog(t, "delivery 1: success", 60*time.Second)
			sys2.Stop(t)
			if n := copies.Load(); n != 1 {
				t.Errorf("the peer accepted the message %d times, want once", n)
			}
		})
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
