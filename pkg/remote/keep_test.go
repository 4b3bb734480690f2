package remote

import (
	"bufio"
	"crypto/tls"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hqmail/hqmail/pkg/dnsmx"
)

// closeFlagConn is the client's TCP connection, telling the peer whether
// the client has closed it yet.
type closeFlagConn struct {
	*net.TCPConn
	closed atomic.Bool
}

func (c *closeFlagConn) Close() error {
	c.closed.Store(true)
	return c.TCPConn.Close()
}

// keptPipePeer offers PIPELINING (and STARTTLS when tlsOn) and refuses
// RCPT TO:<bad@r.test> with 550 on its second transaction, the first on a
// kept connection, taking the other recipient; DATA then draws 354. When
// the data ends without its dot, it sends on cut whether the client's
// socket was still open: the client ended its side and waited for the
// peer, rather than closing.
func keptPipePeer(t *testing.T, client *atomic.Pointer[closeFlagConn], tlsOn bool, cut chan<- bool) (*net.TCPAddr, <-chan []string) {
	t.Helper()
	cert := selfSignedCert(t)
	return serveOnce(t, func(c net.Conn, br *bufio.Reader, got *[]string) {
		var conn net.Conn = c
		conn.Write([]byte("220 hi\r\n"))
		mails, inData := 0, false
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				if inData {
					cut <- !client.Load().closed.Load()
				}
				return
			}
			*got = append(*got, l)
			if inData {
				if l == ".\r\n" {
					inData = false
					conn.Write([]byte("250 ok\r\n"))
				}
				continue
			}
			v, _, _ := strings.Cut(strings.TrimRight(l, "\r\n"), " ")
			switch {
			case v == "QUIT":
				conn.Write([]byte("221 bye\r\n"))
				return
			case v == "EHLO" && tlsOn && conn == c:
				conn.Write([]byte("250-hi\r\n250-PIPELINING\r\n250 STARTTLS\r\n"))
			case v == "EHLO":
				conn.Write([]byte("250-hi\r\n250 PIPELINING\r\n"))
			case v == "STARTTLS":
				c.Write([]byte("220 go ahead\r\n"))
				tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
				if tc.Handshake() != nil {
					return
				}
				conn, br = tc, bufio.NewReader(tc)
			case v == "MAIL":
				mails++
				conn.Write([]byte("250 ok\r\n"))
			case v == "RCPT" && mails > 1 && strings.Contains(l, "bad@"):
				conn.Write([]byte("550 no such user\r\n"))
			case v == "DATA":
				conn.Write([]byte("354 go\r\n"))
				inData = true
			default:
				conn.Write([]byte("250 ok\r\n"))
			}
		}
	})
}

// TestKeptRetryEndsPipelinedData: a recipient refused on a kept connection
// sends the delivery to a new connection (transaction); under PIPELINING
// the DATA that went with the RCPTs has drawn 354 by then, and the peer,
// reading the message, takes QUIT for a line of it. qmail-remote ends its
// side of the connection after QUIT, so such a peer sees the message cut
// and closes at once; it used to wait for the peer (waitEnd) until its
// five-second limit, and only then close, for every such delivery.
func TestKeptRetryEndsPipelinedData(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		name := "plain"
		if tlsOn {
			name = "TLS"
		}
		t.Run(name, func(t *testing.T) {
			var client atomic.Pointer[closeFlagConn]
			cut := make(chan bool, 1)
			addr, lines := keptPipePeer(t, &client, tlsOn, cut)
			k := &keeper{}
			d := tlsDelivery(t)
			if !tlsOn {
				d.policy = TLSNone
			}
			d.keep = k
			conn, err := net.DialTCP("tcp", nil, addr)
			if err != nil {
				t.Fatal(err)
			}
			cc := &closeFlagConn{TCPConn: conn}
			client.Store(cc)
			err = d.smtp(cc, dnsmx.Addr{IP: addr.IP, Name: "127.0.0.1"}, addr.Port, true)
			if rep, ok := err.(*report); !ok || rep.letter != 'K' || k.s == nil || k.s.tls != tlsOn {
				t.Fatalf("first delivery: %v, kept %v", err, k.s != nil)
			}
			d2 := tlsDelivery(t)
			d2.policy = d.policy
			d2.rcpts = []string{"bad@r.test", "a@r.test"}
			d2.keep = k
			if rep, ok := d2.reuse(); ok {
				t.Fatalf("a recipient refused on a kept connection was not tried again on a new one: %+v", rep)
			}
			select {
			case open := <-cut:
				if !open {
					t.Error("the peer saw the end of the message only when the client closed the connection (the client did not end its side and wait)")
				}
			default:
				t.Error("the peer reading the message saw no end of it")
			}
			got := strings.Join(peerLines(t, lines), "")
			if !strings.HasSuffix(got, "RCPT TO:<bad@r.test>\r\nRCPT TO:<a@r.test>\r\nDATA\r\nQUIT\r\n") || strings.Count(got, ".\r\n") != 1 {
				t.Errorf("transcript %q: want the second message cut after QUIT, one dot in all", got)
			}
		})
	}
}
