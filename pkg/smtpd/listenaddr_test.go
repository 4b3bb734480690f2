package smtpd

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/internal/testutil"
)

// TestParseListen: the family each -listen address is listened in, and
// which addresses are refused, as a usage error or as no interface.
func TestParseListen(t *testing.T) {
	for _, tc := range []struct {
		addr, network string
		err           error
	}{
		{"127.0.0.1:25", "tcp4", nil},
		{"0.0.0.0:2915", "tcp4", nil},
		{"[127.0.0.1]:25", "tcp4", nil},
		{"[::ffff:127.0.0.1]:25", "tcp4", nil},
		{"[::1]:25", "tcp6", nil},
		{"[fe80::1%lo]:25", "tcp6", nil},
		{"[::]:25", "tcp", nil},
		{":2525", "tcp", nil},
		{"localhost:2525", "tcp", nil},
		{"127.0.0.1:0", "tcp4", nil},
		{"127.0.0.1:65535", "tcp4", nil},
		{"127.0.0.1:smtp", "tcp4", nil},
		{"[::1]:99999", "", errListenUsage},
		{"127.0.0.1:65536", "", errListenUsage},
		{"127.0.0.1:18446744073709551617", "", errListenUsage},
		{"127.0.0.1:-1", "", errListenUsage},
		{"127.0.0.1:+25", "", errListenUsage}, // net.LookupPort takes it for 25
		{"127.0.0.1:0x19", "", errListenUsage},
		{"127.0.0.1:no-such-service-here", "", errListenUsage},
		{"127.0.0.1:", "", errListenUsage},
		{"127.0.0.1", "", errListenUsage},
		{"::1:25", "", errListenUsage},
		{"127.0.0.1%lo:25", "", errListenUsage},
		{"[::ffff:127.0.0.1%lo]:25", "", errListenUsage},
		{"[::1%nosuch]:2918", "", errNoZone},
		{"[fe80::1%999999]:25", "", errNoZone},
	} {
		a, err := parseListen(tc.addr)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%q: error %v, want %v", tc.addr, err, tc.err)
			}
			continue
		}
		if strings.Contains(tc.addr, "%lo") && !interfaceExists("lo") {
			continue // no loopback interface named lo: the zone is unknown here
		}
		if err != nil || a.network != tc.network {
			t.Errorf("%q: network %q, error %v; want %q", tc.addr, a.network, err, tc.network)
		}
	}
}

// errNotBound aborts a listen before its socket is bound.
var errNotBound = errors.New("not bound")

// TestListenFamily: the socket -listen opens for each address, looked at
// before it is bound (nothing listens beyond loopback). 0.0.0.0 is an
// IPv4 socket, where Go's "tcp" opens a dual-stack IPv6 one; :port and
// [::] are dual-stack IPv6 sockets; an IPv6 address an IPv6-only one.
func TestListenFamily(t *testing.T) {
	for _, tc := range []struct {
		addr     string
		family   int
		v6only   int // -1: an IPv4 socket has none
		reported string
	}{
		{"0.0.0.0:0", syscall.AF_INET, -1, "tcp4"},
		{"127.0.0.1:0", syscall.AF_INET, -1, "tcp4"},
		{"[::ffff:127.0.0.1]:0", syscall.AF_INET, -1, "tcp4"},
		{":0", syscall.AF_INET6, 0, "tcp6"},
		{"[::]:0", syscall.AF_INET6, 0, "tcp6"},
		{"[::1]:0", syscall.AF_INET6, 1, "tcp6"},
	} {
		a, err := parseListen(tc.addr)
		if err != nil {
			t.Errorf("%q: %v", tc.addr, err)
			continue
		}
		family, v6only := -1, -1
		lc := &net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
			c.Control(func(fd uintptr) {
				family, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_DOMAIN)
				if family == syscall.AF_INET6 {
					v6only, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY)
				}
			})
			return errNotBound
		}}
		ln, err := a.listen(lc)
		if err == nil {
			ln.Close()
			t.Errorf("%q: listened, want the Control's error", tc.addr)
			continue
		}
		if !errors.Is(err, errNotBound) {
			t.Errorf("%q: %v", tc.addr, err)
			continue
		}
		if family != tc.family || v6only != tc.v6only {
			t.Errorf("%q: socket family %d IPV6_V6ONLY %d, want %d %d", tc.addr, family, v6only, tc.family, tc.v6only)
		}
	}
}

// TestListen4NotOn6: listening on 127.0.0.1, a connection to ::1 on the
// same port is refused. [::1] at that port is held by a socket of the
// test's own, bound but not listening, until just before the dial, so
// that nothing else (another test's listener on [::1]:0) can be what
// answers it; a port taken on [::1] already is left for another, a
// bounded number of times (a listener that took ::1 too would take it
// at every port).
func TestListen4NotOn6(t *testing.T) {
	probe, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no ::1 here: %v", err)
	}
	probe.Close()
	a, err := parseListen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		ln, err := a.listen(&net.ListenConfig{})
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		held, err := bind6(port)
		if err != nil {
			ln.Close()
			if attempt == 20 {
				// Others taking [::1] at 20 ports in a row: rather the
				// listener's own socket holding it.
				t.Fatalf("[::1] taken at each of 20 ports listened on (%s the last): %v", ln.Addr(), err)
			}
			continue
		}
		syscall.Close(held)
		c, err := net.DialTimeout("tcp6", net.JoinHostPort("::1", strconv.Itoa(port)), 10*time.Second)
		if err == nil {
			c.Close()
			t.Errorf("[::1]:%d accepted a connection; listening on %s", port, ln.Addr())
		} else if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("[::1]:%d: %v, want connection refused", port, err)
		}
		ln.Close()
		return
	}
}

// bind6 returns a TCP socket bound to [::1]:port, not listening: while
// it is open, nothing else can bind there (nor listen).
func bind6(port int) (int, error) {
	fd, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	syscall.SetsockoptInt(fd, syscall.IPPROTO_IPV6, syscall.IPV6_V6ONLY, 1)
	if err := syscall.Bind(fd, &syscall.SockaddrInet6{Port: port, Addr: [16]byte{15: 1}}); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

// TestListenShownZone: the "listening on" line keeps the zone of a
// link-local address, which the kernel may not give back, and shows no
// zone the address does not take.
func TestListenShownZone(t *testing.T) {
	for _, tc := range []struct {
		zone string
		addr *net.TCPAddr
		want string
	}{
		{"eth0", &net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 25}, "[fe80::1%eth0]:25"},
		{"eth0", &net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 25, Zone: "eth1"}, "[fe80::1%eth1]:25"},
		{"", &net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 25}, "[fe80::1]:25"},
		{"lo", &net.TCPAddr{IP: net.ParseIP("::1"), Port: 25}, "[::1]:25"},
		{"", &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 2525}, "127.0.0.1:2525"},
	} {
		if got := (listenAddr{zone: tc.zone}).shown(tc.addr); got != tc.want {
			t.Errorf("zone %q, %v: %q, want %q", tc.zone, tc.addr, got, tc.want)
		}
	}
}

// TestMainListenAddr: qmail-smtpd -listen with a port out of range exits
// 100 with the usage; with a zone that names no interface, 111 before it
// listens (it listened on the bare address). Run as a process: -listen
// catches signals and changes directory.
func TestMainListenAddr(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(root, "bin", "qmail-smtpd")
	testutil.CopyTestBinary(t, prog)
	for _, tc := range []struct {
		addr string
		code int
		want string
	}{
		{"[::1]:99999", 100, "qmail-smtpd: -listen \"[::1]:99999\": port 99999 out of range"},
		{"127.0.0.1:0x19", 100, "no number and no service"},
		{"[::1%nosuch]:0", 111, "qmail-smtpd: fatal: -listen \"[::1%nosuch]:0\": no interface \"nosuch\" on this host"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, prog, "-listen", tc.addr).CombinedOutput()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != tc.code || !strings.Contains(string(out), tc.want) {
			t.Errorf("-listen %q: %v, output %q; want exit %d and %q", tc.addr, err, out, tc.code, tc.want)
			continue
		}
		if usage := strings.Contains(string(out), "usage: qmail-smtpd"); usage != (tc.code == 100) {
			t.Errorf("-listen %q: usage shown %v, output %q", tc.addr, usage, out)
		}
	}
}
