package smtpd

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/qq"
)

// BenchmarkMessage measures the SMTP side alone: one pipelined 2 KB
// message per iteration over loopback, queued into a discarding fake (no
// qmail-queue process).
func BenchmarkMessage(b *testing.B) {
	old := queue
	queue = func(opt qq.Options, msg io.Reader, env *qq.Envelope) (int, error) {
		_, err := io.Copy(io.Discard, msg)
		return 1, err
	}
	defer func() { queue = old }()
	cfg := &Config{Greeting: "mx.example.org", Timeout: time.Minute, MaxRcpt: 1000, MaxLine: DefaultMaxLine,
		RcptHosts: NewRcptHosts([]string{"example.org"}, "/nonexistent"), Now: time.Now}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			Serve(c, cfg, loopPeer, nil)
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	line := func() string { l, _ := r.ReadString('\n'); return l }
	line()
	fmt.Fprintf(c, "HELO x\r\n")
	line()
	body := "Subject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("0123456789", 7)+"\r\n", 28) + ".\r\n"
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		io.WriteString(c, "MAIL FROM:<a@b.example>\r\nRCPT TO:<u@example.org>\r\nDATA\r\n")
		line()
		line()
		line()
		io.WriteString(c, body)
		if l := line(); !strings.HasPrefix(l, "250 ok") {
			b.Fatalf("got %q", l)
		}
	}
}
