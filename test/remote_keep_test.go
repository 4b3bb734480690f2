package test

// Keep mode: qmail-rspawn's kept qmail-remote processes (qmail-remote -k)
// and the SMTP connections they keep between deliveries to one host
// (qmail-remote(8), KEEP MODE; control/smtpcache).

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/test/harness"
)

var crlfSeqRe = regexp.MustCompile(`(?m)^X-Seq: (\d+)\r?$`)

// trackingListener counts accepted connections, those still open and the
// most open at once.
type trackingListener struct {
	net.Listener
	accepted, open, peak atomic.Int64
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.accepted.Add(1)
	n := l.open.Add(1)
	for p := l.peak.Load(); n > p && !l.peak.CompareAndSwap(p, n); p = l.peak.Load() {
	}
	return &trackedConn{Conn: c, l: l}, nil
}

type trackedConn struct {
	net.Conn
	l      *trackingListener
	closed atomic.Bool
}

func (c *trackedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.open.Add(-1)
	}
	return c.Conn.Close()
}

// TestKeepReuse: 60 messages to one host through a running system go over
// far fewer connections than messages, every message arrives once and
// intact, and the idle connections are closed after control/smtpcache.
func TestKeepReuse(t *testing.T) {
	tr, s, ln := farTree(t)
	tr.Control("concurrencyremote", "4\n")
	tr.Control("smtpcache", "2\n")
	sys := tr.Start(t, "./Maildir/")
	const total = 60
	queueN(t, tr, 0, total, "box@testhost.example", "joe@far.example")
	harness.WaitFor(t, 60*time.Second, func() bool { return len(s.Messages()) >= total })
	sys.WaitLogCount(t, "end msg ", total, 30*time.Second)
	got := map[string]int{}
	for _, m := range s.Messages() {
		if sm := crlfSeqRe.FindSubmatch(m.Data); sm != nil {
			got[string(sm[1])]++
		}
		if m.From != "box@testhost.example" || len(m.To) != 1 || m.To[0] != "joe@far.example" {
			t.Errorf("envelope %q -> %q", m.From, m.To)
		}
	}
	for i := 0; i < total; i++ {
		if n := got[fmt.Sprint(i)]; n != 1 {
			t.Errorf("message %d arrived %d times", i, n)
		}
	}
	if n := sys.Count("success: "); n != total {
		t.Errorf("%d success reports, want %d", n, total)
	}
	conns := ln.accepted.Load()
	t.Logf("%d messages over %d connections (concurrencyremote 4)", total, conns)
	if conns > total/4 {
		t.Errorf("%d connections for %d messages: connections are not kept", conns, total)
	}
	// Idle for longer than control/smtpcache: the kept processes quit.
	harness.WaitFor(t, 10*time.Second, func() bool { return ln.open.Load() == 0 })
	sys.Stop(t)
}

// TestKeepOneRelay: a host that sends everything through one relay
// (smtproutes ":relay") with concurrencyremote 1, as an admin sets it for
// a relay that allows one connection per client: kept connections never
// outnumber the concurrency (each domain's delivery kept its own
// connection open beside the others, and such a relay refused the
// second with 421), and deliveries to every domain share the one
// connection.
func TestKeepOneRelay(t *testing.T) {
	tr := schedTree(t, nil)
	s, ln := holdSink(t)
	tr.Control("smtproutes", fmt.Sprintf(":%s:%d\n", s.IP, s.Port))
	tr.Control("concurrencyremote", "1\n")
	tr.Control("smtpcache", "30\n")
	sys := tr.Start(t, "./Maildir/")
	const total = 12
	for i := 0; i < total; i++ {
		queueN(t, tr, i, 1, "box@testhost.example", fmt.Sprintf("joe@d%d.example", i%6))
	}
	harness.WaitFor(t, 60*time.Second, func() bool { return len(s.Messages()) >= total })
	sys.WaitLogCount(t, "end msg ", total, 30*time.Second)
	if n := sys.Count("success: "); n != total {
		t.Errorf("%d success reports, want %d", n, total)
	}
	t.Logf("%d messages to 6 domains over %d connections, at most %d at once", total, ln.accepted.Load(), ln.peak.Load())
	if p := ln.peak.Load(); p != 1 {
		t.Errorf("%d connections open at once with concurrencyremote 1", p)
	}
	if n := ln.accepted.Load(); n > 2 {
		t.Errorf("%d connections for %d messages through one relay: not shared across domains", n, total)
	}
	sys.Stop(t)
}

// TestKeepOff: control/smtpcache 0 is qmail's way, one connection (and one
// qmail-remote) per delivery.
func TestKeepOff(t *testing.T) {
	tr, s, ln := farTree(t)
	tr.Control("smtpcache", "0\n")
	sys := tr.Start(t, "./Maildir/")
	const total = 10
	queueN(t, tr, 0, total, "box@testhost.example", "joe@far.example")
	harness.WaitFor(t, 60*time.Second, func() bool { return len(s.Messages()) >= total })
	sys.WaitLogCount(t, "end msg ", total, 30*time.Second)
	if n := ln.accepted.Load(); n != total {
		t.Errorf("%d connections for %d messages with smtpcache 0", n, total)
	}
	harness.WaitFor(t, 10*time.Second, func() bool { return ln.open.Load() == 0 })
	sys.Stop(t)
}

// TestKeepHoldClosesIdle: kept connections are closed as soon as
// control/holdremote appears, without waiting for control/smtpcache (a
// held link must see no traffic), and reused again after the release.
func TestKeepHoldClosesIdle(t *testing.T) {
	tr, s, ln := farTree(t)
	tr.Control("smtpcache", "600\n")
	sys := tr.Start(t, "./Maildir/")
	queueN(t, tr, 0, 3, "box@testhost.example", "joe@far.example")
	harness.WaitFor(t, 30*time.Second, func() bool { return len(s.Messages()) >= 3 })
	sys.WaitLogCount(t, "end msg ", 3, 30*time.Second)
	if ln.open.Load() == 0 {
		t.Fatalf("no connection kept open with smtpcache 600")
	}
	tr.Control("holdremote", "")
	sys.HUP(t)
	harness.WaitFor(t, 5*time.Second, func() bool { return ln.open.Load() == 0 })
	before := ln.accepted.Load()
	queueN(t, tr, 3, 2, "box@testhost.example", "joe@far.example")
	time.Sleep(time.Second)
	if n := ln.accepted.Load(); n != before || len(s.Messages()) != 3 {
		t.Fatalf("while held: %d new connections, %d messages", n-before, len(s.Messages())-3)
	}
	tr.RemoveControl("holdremote")
	sys.HUP(t)
	harness.WaitFor(t, 30*time.Second, func() bool { return len(s.Messages()) >= 5 })
	sys.Stop(t)
}

// keepProc is a qmail-remote -k driven the way qmail-rspawn drives it.
type keepProc struct {
	t    *testing.T
	sock int
	cmd  *exec.Cmd
}

func startKeep(t *testing.T, root string) *keepProc {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	child := os.NewFile(uintptr(fds[1]), "child")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	cmd := exec.CommandContext(ctx, filepath.Join(root, "bin", "qmail-remote"), "-k")
	cmd.Stdin = child
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	child.Close()
	k := &keepProc{t: t, sock: fds[0], cmd: cmd}
	t.Cleanup(func() { k.Close(); cancel() })
	hello := make([]byte, 64)
	n, err := unix.Read(k.sock, hello)
	if err != nil || string(hello[:n]) != "qmail-remote -k 1\x00" {
		t.Fatalf("greeting of qmail-remote -k: %q %v", hello[:max(n, 0)], err)
	}
	return k
}

// Deliver hands one delivery to the process and returns its reports.
func (k *keepProc) Deliver(msg string, args ...string) []string {
	k.t.Helper()
	mf := filepath.Join(k.t.TempDir(), "mess")
	if err := os.WriteFile(mf, []byte(msg), 0o644); err != nil {
		k.t.Fatal(err)
	}
	f, err := os.Open(mf)
	if err != nil {
		k.t.Fatal(err)
	}
	defer f.Close()
	req := strings.Join(args, "\x00") + "\x00"
	if err := unix.Sendmsg(k.sock, []byte(req), unix.UnixRights(int(f.Fd())), nil, 0); err != nil {
		k.t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	n, err := unix.Read(k.sock, buf)
	if err != nil || n == 0 {
		k.t.Fatalf("no reply from qmail-remote -k: %d %v", n, err)
	}
	out := string(buf[:n])
	if !strings.HasSuffix(out, "\x00") {
		k.t.Fatalf("reply not NUL-terminated: %q", out)
	}
	return strings.Split(strings.TrimSuffix(out, "\x00"), "\x00")
}

// Close ends the process (end of file on its socket) and waits for it.
func (k *keepProc) Close() {
	if k.sock >= 0 {
		unix.Close(k.sock)
		k.sock = -1
		k.cmd.Wait()
	}
}

// TestKeepModeReports: the reports of qmail-remote -k are those of a
// one-shot qmail-remote, case by case, and a kept connection carries the
// next message to the same host.
func TestKeepModeReports(t *testing.T) {
	tr := newRTree(t)
	ln := &trackingListener{Listener: listen(t, "", 2525)}
	s := startSink(t, ln, sinkOpts{RcptErr: map[string]*smtp.SMTPError{
		"bad@far.example": {Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}}})
	tr.Control("smtproutes", fmt.Sprintf("far.example:%s:%d\n", s.IP, s.Port))
	cases := [][]string{
		{"far.example", "a@here.example", "joe@far.example"},
		{"far.example", "a@here.example", "bad@far.example"},
		{"far.example", "", "joe@far.example"},
	}
	var oneShot [][]string
	for _, c := range cases {
		oneShot = append(oneShot, tr.Remote("Subject: x\n\nbody\n", c...))
	}
	base := ln.accepted.Load()
	k := startKeep(t, tr.Root)
	for i, c := range cases {
		got := k.Deliver("Subject: x\n\nbody\n", c...)
		if strings.Join(got, "|") != strings.Join(oneShot[i], "|") {
			t.Errorf("case %d: keep mode %q, one-shot %q", i, got, oneShot[i])
		}
	}
	// The recipient refused on the kept connection is tried again on a
	// new one (the refusal may be the connection's), which refuses it
	// too and ends with QUIT, as one-shot qmail-remote does; the last
	// delivery takes a third.
	if n := ln.accepted.Load() - base; n != 3 {
		t.Errorf("keep mode used %d connections for 3 deliveries, want 3", n)
	}
	k.Close()
	harness.WaitFor(t, 5*time.Second, func() bool { return ln.open.Load() == 0 })
	if got := len(s.Messages()); got != 4 {
		t.Errorf("sink has %d messages, want 4", got)
	}
}

// TestKeepModePeerGone: a kept connection that the peer closed, or that it
// answers with 421 at MAIL, or on which it refuses a further MAIL (a limit
// of messages per connection, 4xx or 5xx), is replaced by a new one for the
// same delivery: the message is delivered once and the report is the new
// connection's.
func TestKeepModePeerGone(t *testing.T) {
	for _, mode := range []string{"close", "421", "554", "452", "rcpt550", "rcpt452"} {
		t.Run(mode, func(t *testing.T) {
			tr := newRTree(t)
			ln := listen(t, "", 2525)
			var conns atomic.Int64
			var accepted atomic.Int64
			var events testutil.SyncBuffer // "conn N", "quit N", in order
			scripted(t, ln, func(c net.Conn, br *bufio.Reader) {
				n := conns.Add(1)
				fmt.Fprintf(&events, "conn %d\n", n)
				fmt.Fprintf(c, "220 peer.test\r\n")
				txn := 0
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						return
					}
					switch v := strings.ToUpper(strings.Fields(l + " x")[0]); v {
					case "EHLO", "HELO":
						fmt.Fprintf(c, "250 peer.test\r\n")
					case "MAIL":
						if txn == 1 && !strings.HasPrefix(mode, "rcpt") {
							switch mode {
							case "close":
								return
							case "421":
								fmt.Fprintf(c, "421 idle too long\r\n")
								return
							}
							// The connection stays open: only this
							// transaction is refused.
							fmt.Fprintf(c, "%s too many transactions on one connection\r\n", mode)
							continue
						}
						fmt.Fprintf(c, "250 ok\r\n")
					case "RCPT":
						if txn == 1 && strings.HasPrefix(mode, "rcpt") {
							// Refused on this connection only (a peer
							// limiting what one connection carries).
							fmt.Fprintf(c, "%s not on this connection\r\n", strings.TrimPrefix(mode, "rcpt"))
							continue
						}
						fmt.Fprintf(c, "250 ok\r\n")
					case "DATA":
						if txn == 1 && strings.HasPrefix(mode, "rcpt") {
							fmt.Fprintf(c, "503 no valid recipients\r\n")
							continue
						}
						fmt.Fprintf(c, "354 go\r\n")
						if !readToDot(br) {
							return
						}
						txn++
						accepted.Add(1)
						fmt.Fprintf(c, "250 accepted %d\r\n", accepted.Load())
					case "QUIT":
						fmt.Fprintf(&events, "quit %d\n", n)
						fmt.Fprintf(c, "221 bye\r\n")
						return
					case "RSET":
						fmt.Fprintf(c, "250 ok\r\n")
					default:
						fmt.Fprintf(c, "502 what\r\n")
					}
				}
			})
			tr.Control("smtproutes", fmt.Sprintf("far.example:%s:%d\n", hostOf(ln), portOf(ln)))
			k := startKeep(t, tr.Root)
			args := []string{"far.example", "a@here.example", "joe@far.example"}
			first := k.Deliver("Subject: 1\n\none\n", args...)
			if len(first) != 2 || first[0] != "r" || !strings.HasPrefix(first[1], "K") {
				t.Fatalf("first delivery: %q", first)
			}
			// The peer answers the second MAIL on that connection by going
			// away; the delivery must still be made, once.
			second := k.Deliver("Subject: 2\n\ntwo\n", args...)
			if len(second) != 2 || second[0] != "r" || !strings.Contains(second[1], "accepted 2") {
				t.Fatalf("second delivery: %q", second)
			}
			if n := conns.Load(); n != 2 {
				t.Errorf("%d connections, want 2", n)
			}
			if n := accepted.Load(); n != 2 {
				t.Errorf("peer accepted %d messages, want 2", n)
			}
			// A connection the peer left open is ended with QUIT before
			// the new one (a peer allowing one connection per client
			// refused the new one while it counted the old).
			if mode != "close" && mode != "421" && !strings.Contains(events.String(), "quit 1\nconn 2\n") {
				t.Errorf("events %q: the first connection was not ended before the second", events.String())
			}
		})
	}
}

// TestKeepModePlainNote: a connection made in plain text after a failed
// opportunistic handshake says so in the report of every message it
// carries, not only the first (the one-shot form says it each time).
func TestKeepModePlainNote(t *testing.T) {
	tr := newRTree(t)
	ln := listen(t, "", 0)
	var conns atomic.Int64
	var events testutil.SyncBuffer
	scripted(t, ln, func(c net.Conn, br *bufio.Reader) {
		n := conns.Add(1)
		fmt.Fprintf(&events, "conn %d\n", n)
		fmt.Fprintf(c, "220 hi\r\n")
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			switch v := strings.ToUpper(strings.Fields(l + " x")[0]); v {
			case "EHLO":
				fmt.Fprintf(c, "250-hi\r\n250 STARTTLS\r\n")
			case "STARTTLS":
				fmt.Fprintf(c, "220 go ahead\r\n")
				c.Write([]byte("this is not a TLS server hello\r\n"))
				// A peer slow to let go of a connection (a process per
				// client): it counts this one a while after the client's end.
				io.Copy(io.Discard, br)
				time.Sleep(200 * time.Millisecond)
				fmt.Fprintf(&events, "closed %d\n", n)
				return
			case "MAIL", "RCPT", "RSET":
				fmt.Fprintf(c, "250 ok\r\n")
			case "DATA":
				fmt.Fprintf(c, "354 go\r\n")
				if !readToDot(br) {
					return
				}
				fmt.Fprintf(c, "250 plain ok\r\n")
			case "QUIT":
				fmt.Fprintf(c, "221 bye\r\n")
				return
			default:
				fmt.Fprintf(c, "502 what\r\n")
			}
		}
	})
	routeTo(tr, hostOf(ln), portOf(ln))
	k := startKeep(t, tr.Root)
	for i := 0; i < 3; i++ {
		got := k.Deliver(testMsg, "r.test", "f@x.test", "a@r.test")
		if len(got) != 2 || got[0] != "r" || !strings.Contains(got[1], "250 plain ok\nSent without TLS: the TLS handshake failed (") {
			t.Errorf("delivery %d: %q", i, got)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (the failed handshake, then one kept)", n)
	}
	// The plain-text connection comes after the peer let go of the first
	// (a peer allowing one connection per client refused it with 421).
	if !strings.HasPrefix(events.String(), "conn 1\nclosed 1\nconn 2\n") {
		t.Errorf("events %q: the plain-text retry did not wait for the first connection's end", events.String())
	}
}

// TestKeepModeSizeRefused: a message over the SIZE a kept connection's
// peer gave, refused at MAIL with 552, is refused for good: not offered
// again over a new connection (a 4xx or 5xx at MAIL on a kept connection
// is otherwise tried once more on a new one).
func TestKeepModeSizeRefused(t *testing.T) {
	tr := newRTree(t)
	ln := listen(t, "", 2525)
	var conns, mails atomic.Int64
	scripted(t, ln, func(c net.Conn, br *bufio.Reader) {
		conns.Add(1)
		fmt.Fprintf(c, "220 peer.test\r\n")
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			switch v := strings.ToUpper(strings.Fields(l + " x")[0]); v {
			case "EHLO":
				fmt.Fprintf(c, "250-peer.test\r\n250 SIZE 100\r\n")
			case "MAIL":
				mails.Add(1)
				var n int
				if i := strings.Index(l, " SIZE="); i >= 0 {
					fmt.Sscanf(l[i+len(" SIZE="):], "%d", &n)
				}
				if n > 100 {
					fmt.Fprintf(c, "552 5.3.4 message too big\r\n")
					continue
				}
				fmt.Fprintf(c, "250 ok\r\n")
			case "RCPT", "RSET":
				fmt.Fprintf(c, "250 ok\r\n")
			case "DATA":
				fmt.Fprintf(c, "354 go\r\n")
				if !readToDot(br) {
					return
				}
				fmt.Fprintf(c, "250 accepted\r\n")
			case "QUIT":
				fmt.Fprintf(c, "221 bye\r\n")
				return
			default:
				fmt.Fprintf(c, "502 what\r\n")
			}
		}
	})
	tr.Control("smtproutes", fmt.Sprintf("far.example:%s:%d\n", hostOf(ln), portOf(ln)))
	k := startKeep(t, tr.Root)
	args := []string{"far.example", "a@here.example", "joe@far.example"}
	if got := k.Deliver("Subject: 1\n\none\n", args...); len(got) != 2 || !strings.HasPrefix(got[1], "K") {
		t.Fatalf("small message: %q", got)
	}
	big := k.Deliver("Subject: 2\n\n"+strings.Repeat("x", 200)+"\n", args...)
	if want := "DConnected to " + hostOf(ln) + " but sender was rejected.\nRemote host said: 552 5.3.4 message too big\n"; len(big) != 1 || big[0] != want {
		t.Fatalf("big message: %q, want [%q]", big, want)
	}
	if n := mails.Load(); n != 2 {
		t.Errorf("%d MAIL commands, want 2 (the big message offered once)", n)
	}
	if got := k.Deliver("Subject: 3\n\nthree\n", args...); len(got) != 2 || !strings.HasPrefix(got[1], "K") {
		t.Fatalf("small message after: %q", got)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// limitPeer is a peer on ln that takes one message a connection: on the
// second, the verb limited (RCPT or DATA) gets reply, or with reply ""
// the connection is closed without one. It counts connections and the
// messages it accepted.
func limitPeer(t *testing.T, ln net.Listener, ext, limited, reply string) (conns, accepted *atomic.Int64) {
	conns, accepted = new(atomic.Int64), new(atomic.Int64)
	scripted(t, ln, func(c net.Conn, br *bufio.Reader) {
		conns.Add(1)
		mails := 0
		fmt.Fprintf(c, "220 peer.test\r\n")
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			v := strings.ToUpper(strings.Fields(l + " x")[0])
			if v == limited && mails > 1 {
				if reply == "" {
					return
				}
				fmt.Fprintf(c, "%s\r\n", reply)
				continue
			}
			switch v {
			case "EHLO":
				fmt.Fprintf(c, "250%s\r\n", ext)
			case "MAIL":
				mails++
				fmt.Fprintf(c, "250 ok\r\n")
			case "RCPT", "RSET":
				fmt.Fprintf(c, "250 ok\r\n")
			case "DATA":
				fmt.Fprintf(c, "354 go\r\n")
				if !readToDot(br) {
					return
				}
				accepted.Add(1)
				fmt.Fprintf(c, "250 accepted\r\n")
			case "QUIT":
				fmt.Fprintf(c, "221 bye\r\n")
				return
			default:
				fmt.Fprintf(c, "502 what\r\n")
			}
		}
	})
	return conns, accepted
}

// TestKeepModeLimit: a peer that limits the messages of a connection
// refuses nothing that a new connection would not take, and qmail,
// connecting once per message, never meets the limit: the second message
// goes again over a new connection and is delivered, not bounced (5xx),
// deferred (4xx) or deferred as a connection that died. The limit comes
// at DATA (MAIL and RCPT taken; with PIPELINING they come together), or
// as the connection closed at a RCPT without a reply.
func TestKeepModeLimit(t *testing.T) {
	for _, tc := range []struct{ name, ext, verb, reply string }{
		{"DATA 554", "-peer.test\r\n250 PIPELINING", "DATA", "554 5.7.0 too many messages on this connection"},
		{"DATA 421", "-peer.test\r\n250 PIPELINING", "DATA", "421 4.7.0 too many messages on this connection"},
		{"RCPT lost", " peer.test", "RCPT", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newRTree(t)
			ln := listen(t, "", 2525)
			conns, accepted := limitPeer(t, ln, tc.ext, tc.verb, tc.reply)
			tr.Control("smtproutes", fmt.Sprintf("far.example:%s:%d\n", hostOf(ln), portOf(ln)))
			k := startKeep(t, tr.Root)
			args := []string{"far.example", "a@here.example", "joe@far.example"}
			for i := 1; i <= 2; i++ {
				if got := k.Deliver(fmt.Sprintf("Subject: %d\n\nbody\n", i), args...); len(got) != 2 || !strings.HasPrefix(got[1], "K") {
					t.Fatalf("message %d: %q, want it accepted", i, got)
				}
			}
			if n := accepted.Load(); n != 2 {
				t.Errorf("%d messages accepted by the peer, want 2", n)
			}
			if n := conns.Load(); n != 2 {
				t.Errorf("%d connections, want 2 (the second message over a new one)", n)
			}
		})
	}
}
