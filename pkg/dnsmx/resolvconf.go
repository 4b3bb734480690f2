package dnsmx

import (
	"bufio"
	"fmt"
	"github.com/hqmail/hqmail/pkg/qhome"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// DefaultResolvConf is the system resolver configuration.
const DefaultResolvConf = "/etc/resolv.conf"

// Config is the part of a resolv.conf that qmail-remote uses.
type Config struct {
	Servers  []string      // "host:port" of each nameserver, in file order
	Timeout  time.Duration // per query and server (options timeout:N), default 5 s
	Attempts int           // rounds over all servers (options attempts:N), default 2
	EDNS0    bool          // options edns0: queries carry EDNS, as glibc's then do
}

// ReadConfig reads a resolv.conf-format file. A missing file gives the
// defaults of the C resolver (nameserver 127.0.0.1, timeout 5, attempts 2);
// other read errors are returned.
func ReadConfig(path string) (*Config, error) {
	f, err := openConfig(path)
	if err != nil {
		if os.IsNotExist(err) {
			return ParseConfig(strings.NewReader(""))
		}
		return nil, err
	}
	defer f.Close()
	return ParseConfig(f)
}

// ReadConfigStrict is ReadConfig for a file that must exist.
func ReadConfigStrict(path string) (*Config, error) {
	f, err := openConfig(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseConfig(f)
}

// openConfig opens a resolver file for reading only if it is a regular
// file: a FIFO (or a device) named there would block qmail-remote for
// good, holding a remote delivery slot; it is refused like a directory.
func openConfig(path string) (*os.File, error) {
	return qhome.OpenRegular(path, os.O_RDONLY)
}

// ParseConfig parses resolv.conf syntax: "nameserver ADDR" lines and the
// "options timeout:N attempts:N edns0" settings; every other keyword (search,
// domain, sortlist, other options) is ignored, since qmail looks up names as
// given. Beyond the C resolver, ADDR may carry a port, written
// "[ADDR]:PORT" or, for IPv4, "ADDR:PORT" (so a test can run its own DNS
// server on an unprivileged port). Lines starting with '#' or ';' are
// comments. Unparseable nameserver lines are skipped, as the C resolver does.
func ParseConfig(r io.Reader) (*Config, error) {
	c := &Config{Timeout: 5 * time.Second, Attempts: 2}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64*1024)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0][0] == '#' || f[0][0] == ';' {
			continue
		}
		switch f[0] {
		case "nameserver":
			if hp, ok := serverAddr(f[1]); ok {
				c.Servers = append(c.Servers, hp)
			}
		case "options":
			for _, o := range f[1:] {
				if o == "edns0" {
					c.EDNS0 = true
					continue
				}
				k, v, ok := strings.Cut(o, ":")
				if !ok {
					continue
				}
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 {
					continue
				}
				switch k {
				case "timeout":
					c.Timeout = time.Duration(min(n, 30)) * time.Second
				case "attempts":
					c.Attempts = min(n, 5)
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading resolver configuration: %w", err)
	}
	if len(c.Servers) == 0 {
		c.Servers = []string{"127.0.0.1:53"}
	}
	return c, nil
}

// serverAddr turns a nameserver argument into host:port.
//
// An IPv6 address may carry a zone ("fe80::53%wlan0"), as NetworkManager
// and systemd-networkd write a nameserver learnt from a router
// advertisement; glibc takes it, and so does this.
func serverAddr(s string) (string, bool) {
	if ip, err := netip.ParseAddr(s); err == nil {
		return net.JoinHostPort(ip.String(), "53"), true
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", false
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return "", false
	}
	// A bare IPv6 address with a port must be bracketed, so SplitHostPort
	// has already rejected the ambiguous forms.
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return "", false
	}
	return net.JoinHostPort(ip.String(), port), true
}
