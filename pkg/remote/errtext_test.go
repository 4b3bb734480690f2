package remote

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestErrTextPlainWords: a failed handshake's reason names what happened
// (the peer closed, said nothing in time, reset) without the addresses
// and ports of Go's network errors, which changed with every try and went
// into reports, the log and bounces ("read tcp 127.0.0.1:59442->...: i/o
// timeout").
func TestErrTextPlainWords(t *testing.T) {
	// Only the silent peer needs the client's deadline to run out: there
	// it is short, and the peer says nothing until the client has gone.
	// Elsewhere it is long, so that a peer goroutine slow to act (under
	// -race, on a loaded machine) is not taken for a silent one.
	for _, tc := range []struct {
		name string
		peer func(c *net.TCPConn)
		wait time.Duration
		want string
	}{
		{"closes", func(c *net.TCPConn) { c.CloseWrite(); io.Copy(io.Discard, c); c.Close() }, 10 * time.Second, "connection closed"},
		{"silent", func(c *net.TCPConn) { io.Copy(io.Discard, c); c.Close() }, time.Second, "timed out"},
		{"resets", func(c *net.TCPConn) { c.SetLinger(0); c.Close() }, 10 * time.Second, "connection reset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.AcceptTCP()
				if err == nil {
					buf := make([]byte, 512)
					c.Read(buf) // the ClientHello
					tc.peer(c)
				}
			}()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(tc.wait))
			herr := tls.Client(c, &tls.Config{InsecureSkipVerify: true}).Handshake()
			if herr == nil {
				t.Fatal("handshake worked")
			}
			f := tlsFailure{err: herr}
			r := f.reason()
			if r != "the TLS handshake failed ("+tc.want+")" {
				t.Errorf("reason %q for %v, want %q", r, herr, tc.want)
			}
			if strings.Contains(r, "127.0.0.1") {
				t.Errorf("reason %q names an address", r)
			}
		})
	}
}

// TestErrTextKeepsAlertSide: a TLS alert keeps crypto/tls's "remote
// error:" or "local error:", which say who refused.
func TestErrTextKeepsAlertSide(t *testing.T) {
	for _, op := range []string{"remote error", "local error"} {
		err := &net.OpError{Op: op, Err: errors.New("tls: handshake failure")}
		if got, want := errText(err), op+": tls: handshake failure"; got != want {
			t.Errorf("errText = %q, want %q", got, want)
		}
	}
}
