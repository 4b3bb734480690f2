package remote

import (
	"bytes"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// silentPeer returns a client connection to a loopback server that accepts
// and neither reads nor writes until the test ends (or, with reply set,
// writes it after delay).
func silentPeer(t *testing.T, reply []byte, delay time.Duration) net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		s, err := ln.Accept()
		if err != nil {
			return
		}
		defer s.Close()
		if reply != nil {
			time.Sleep(delay)
			s.Write(reply)
		}
		<-done
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(done); c.Close(); ln.Close() })
	return c
}

// goneAfter is a gone func that answers "still here" n-1 times, then
// "gone"; calls counts the questions.
func goneAfter(n int64, calls *atomic.Int64) func() bool {
	return func() bool { return calls.Add(1) >= n }
}

func TestWatchReadEndsWhenAddressGoes(t *testing.T) {
	var calls atomic.Int64
	c := &watchConn{Conn: silentPeer(t, nil, 0), every: 10 * time.Millisecond, gone: goneAfter(3, &calls)}
	c.SetReadDeadline(time.Now().Add(time.Minute))
	n, err := c.Read(make([]byte, 10))
	if n != 0 || !errors.Is(err, errLocalGone) {
		t.Fatalf("read: %d, %v; want errLocalGone", n, err)
	}
	if calls.Load() != 3 {
		t.Errorf("address checked %d times, want 3 (it went at the third)", calls.Load())
	}
}

func TestWatchReadKeepsDeadlineAndData(t *testing.T) {
	never := func() bool { return false }
	// Data that comes after several slices is read.
	c := &watchConn{Conn: silentPeer(t, []byte("220 hi\r\n"), 100*time.Millisecond), every: 10 * time.Millisecond, gone: never}
	c.SetReadDeadline(time.Now().Add(time.Minute))
	b := make([]byte, 10)
	n, err := c.Read(b)
	if err != nil || string(b[:n]) != "220 hi\r\n" {
		t.Fatalf("read %q, %v", b[:n], err)
	}
	// The user's deadline ends the wait with a time-out, as on the
	// connection itself.
	c = &watchConn{Conn: silentPeer(t, nil, 0), every: 10 * time.Millisecond, gone: never}
	c.SetDeadline(time.Now().Add(80 * time.Millisecond))
	if _, err := c.Read(b); !isTimeout(err) {
		t.Fatalf("read past the deadline: %v, want a time-out", err)
	}
	// No deadline: waits go on until the address goes.
	var calls atomic.Int64
	c = &watchConn{Conn: silentPeer(t, nil, 0), every: 10 * time.Millisecond, gone: goneAfter(5, &calls)}
	c.SetDeadline(time.Time{})
	if _, err := c.Read(b); !errors.Is(err, errLocalGone) {
		t.Fatalf("read without a deadline: %v", err)
	}
}

func TestWatchWriteEndsWhenAddressGoes(t *testing.T) {
	var calls atomic.Int64
	c := &watchConn{Conn: silentPeer(t, nil, 0), every: 10 * time.Millisecond, gone: goneAfter(3, &calls)}
	c.SetWriteDeadline(time.Now().Add(time.Minute))
	big := bytes.Repeat([]byte("x"), 64<<20) // more than the socket buffers hold
	n, err := c.Write(big)
	if !errors.Is(err, errLocalGone) || n == 0 || n >= len(big) {
		t.Fatalf("write: %d of %d, %v; want part of it and errLocalGone", n, len(big), err)
	}
}

func TestWatchOnlyOffLoopback(t *testing.T) {
	c := silentPeer(t, nil, 0)
	if w := watch(c); w != c {
		t.Errorf("a loopback connection was wrapped")
	}
	if !localAddr(net.ParseIP("127.0.0.1")) {
		t.Errorf("127.0.0.1 is not an address of this host")
	}
	if localAddr(net.ParseIP("192.0.2.77")) { // TEST-NET-1, on no interface
		t.Errorf("192.0.2.77 is an address of this host")
	}
}
