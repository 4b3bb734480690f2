package test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// Hostile and broken SMTP peers: each must give a clear report, never a
// crash, a hang beyond timeoutremote, or unbounded memory.

// upToData plays a well-behaved server up to the 354 after DATA.
func upToData(c net.Conn, br *bufio.Reader) bool {
	fmt.Fprintf(c, "220 hi\r\n")
	for _, step := range []struct{ cmd, reply string }{
		{"EHLO", "250 ok"}, {"MAIL", "250 ok"}, {"RCPT", "250 ok"}, {"DATA", "354 go"},
	} {
		if !expect(br, step.cmd) {
			return false
		}
		fmt.Fprintf(c, "%s\r\n", step.reply)
	}
	return true
}

// readToDot reads a message's lines up to the lone dot; false when the
// connection ended first.
func readToDot(br *bufio.Reader) bool {
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return false
		}
		if l == ".\r\n" {
			return true
		}
	}
}

func TestRemoteHostilePeers(t *testing.T) {
	big := "Subject: big\n\n" + strings.Repeat(strings.Repeat("x", 999)+"\n", 16*1024) // 16 MB
	// timeoutremote is short only where running out of it is what the
	// case checks (the peer then waits without a word, or without
	// reading, until qmail-remote has gone: gone is closed once it has
	// exited). Where it is short, it is 3 s if replies have to come in
	// time before that, so that a peer goroutine slow to answer on a
	// loaded machine does not turn into "connection died". Every other
	// case keeps newRTree's 10 s.
	tests := []struct {
		name    string
		msg     string
		timeout string // timeoutremote; "" for newRTree's
		peer    func(c net.Conn, br *bufio.Reader, gone <-chan struct{})
		want    func(ip string) []string
	}{
		{"endless multi-line greeting", testMsg, "", func(c net.Conn, br *bufio.Reader, _ <-chan struct{}) {
			for i := 0; i < 1e6; i++ {
				if _, err := fmt.Fprintf(c, "220-this never ends %d\r\n", i); err != nil {
					return
				}
			}
		}, func(ip string) []string {
			return []string{"ZConnected to " + ip + " but its SMTP reply was too long. (#4.4.2)\n"}
		}},
		{"10 MB reply line", testMsg, "", func(c net.Conn, br *bufio.Reader, _ <-chan struct{}) {
			c.Write([]byte("220 " + strings.Repeat("A", 10<<20) + "\r\n"))
		}, func(ip string) []string {
			return []string{"ZConnected to " + ip + " but its SMTP reply was too long. (#4.4.2)\n"}
		}},
		{"10 MB reply after the dot", testMsg, "", func(c net.Conn, br *bufio.Reader, _ <-chan struct{}) {
			if !upToData(c, br) {
				return
			}
			if !readToDot(br) {
				return
			}
			c.Write([]byte("250 " + strings.Repeat("A", 10<<20) + "\r\n"))
		}, func(ip string) []string {
			// The 250 has arrived: the message was taken, whatever
			// follows (qmail keeps 5000 bytes and reads on).
			return []string{"r", "K" + ip + " accepted message.\nRemote host said: 250 " + strings.Repeat("A", 4995) +
				"\n(I did not read the rest of the reply: it was too long.)\n"}
		}},
		{"greeting timeout", testMsg, "2", func(c net.Conn, br *bufio.Reader, _ <-chan struct{}) {
			io.Copy(io.Discard, br) // say nothing until the client gives up
		}, func(ip string) []string {
			return []string{"ZConnected to " + ip + " but connection died. (#4.4.2)\n"}
		}},
		{"stall mid-DATA", big, "3", func(c net.Conn, br *bufio.Reader, gone <-chan struct{}) {
			if !upToData(c, br) {
				return
			}
			io.CopyN(io.Discard, br, 64*1024)
			<-gone // stop reading; the client's writes block until it gives up
		}, func(ip string) []string {
			return []string{"r", "ZConnected to " + ip + " but connection died. (#4.4.2)\n"}
		}},
		{"no answer after the dot", testMsg, "3", func(c net.Conn, br *bufio.Reader, _ <-chan struct{}) {
			if !upToData(c, br) {
				return
			}
			io.Copy(io.Discard, br)
		}, func(ip string) []string {
			return []string{"r", "ZConnected to " + ip + " but connection died. Possible duplicate! (#4.4.2)\n"}
		}},
		{"garbage greeting", testMsg, "", func(c net.Conn, br *bufio.Reader, _ <-chan struct{}) {
			c.Write([]byte("\x00\xff\x01garbage\r\n"))
			expect(br, "QUIT")
		}, func(ip string) []string {
			return []string{"ZConnected to " + ip + " but greeting failed.\nRemote host said: ?\xff\x01garbage\n"}
		}},
		{"garbage at RCPT", testMsg, "", func(c net.Conn, br *bufio.Reader, _ <-chan struct{}) {
			fmt.Fprintf(c, "220 hi\r\n")
			for _, r := range []string{"250 ok", "250 ok", "\x7fELF\x02\x01"} {
				if !expect(br, "") {
					return
				}
				fmt.Fprintf(c, "%s\r\n", r)
			}
			expect(br, "QUIT")
		}, func(ip string) []string {
			return []string{"s" + ip + " does not like recipient.\nRemote host said: \x7fELF\x02\x01\n",
				"DGiving up on " + ip + ".\n"}
		}},
		{"drop after greeting", testMsg, "", func(c net.Conn, br *bufio.Reader, _ <-chan struct{}) {
			fmt.Fprintf(c, "220 hi\r\n")
		}, func(ip string) []string {
			return []string{"ZConnected to " + ip + " but connection died. (#4.4.2)\n"}
		}},
		{"EHLO and HELO refused", testMsg, "", func(c net.Conn, br *bufio.Reader, _ <-chan struct{}) {
			fmt.Fprintf(c, "220 hi\r\n")
			expect(br, "EHLO")
			fmt.Fprintf(c, "502 what\r\n")
			expect(br, "HELO")
			fmt.Fprintf(c, "501 bad name\r\n")
			expect(br, "QUIT")
		}, func(ip string) []string {
			return []string{"ZConnected to " + ip + " but my name was rejected.\nRemote host said: 501 bad name\n"}
		}},
		{"greeting 554", testMsg, "", func(c net.Conn, br *bufio.Reader, _ <-chan struct{}) {
			fmt.Fprintf(c, "554-go away\r\n554 really\r\n")
			expect(br, "QUIT")
		}, func(ip string) []string {
			return []string{"ZConnected to " + ip + " but greeting failed.\nRemote host said: 554-go away\n554 really\n"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The tree (a copy of the programs) is made before the
			// subtests run side by side: a program file being written
			// while another subtest forks qmail-remote can be held open
			// in the child, and its own exec then fails with "text file
			// busy".
			tr := newRTree(t)
			if tt.timeout != "" {
				tr.Control("timeoutremote", tt.timeout+"\n")
			}
			t.Parallel()
			ln := listen(t, "", 0)
			gone := make(chan struct{})
			scripted(t, ln, func(c net.Conn, br *bufio.Reader) { tt.peer(c, br, gone) })
			// Run when the subtest ends, qmail-remote having exited, and
			// before scripted's cleanup, which waits for the peer.
			t.Cleanup(func() { close(gone) })
			routeTo(tr, hostOf(ln), portOf(ln))
			checkReports(t, tr.Remote(tt.msg, "r.test", "f@x.test", "a@r.test"), tt.want(hostOf(ln))...)
		})
	}
}

func TestRemoteTricklingReply(t *testing.T) {
	tr := newRTree(t)
	tr.Control("timeoutremote", "2\n")
	ln := listen(t, "", 0)
	scripted(t, ln, func(c net.Conn, br *bufio.Reader) {
		// One byte every 300 ms: each read is quick, the reply never ends.
		for i := 0; i < 100; i++ {
			if _, err := c.Write([]byte("2")); err != nil {
				return
			}
			time.Sleep(300 * time.Millisecond)
		}
	})
	routeTo(tr, hostOf(ln), portOf(ln))
	start := time.Now()
	checkReports(t, tr.Remote(testMsg, "r.test", "f@x.test", "a@r.test"),
		"ZConnected to "+hostOf(ln)+" but connection died. (#4.4.2)\n")
	if el := time.Since(start); el > 20*time.Second {
		t.Logf("note: took %v", el) // informational only, no timing assert
	}
}
