package test

// Helpers of the qmail-remote integration tests: a private tree holding only
// what qmail-remote needs, a go-smtp recording sink, scripted raw SMTP
// peers, loopback address picking and a self-signed certificate.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/hqmail/hqmail/test/dnstest"
	"github.com/hqmail/hqmail/test/harness"
)

var (
	remoteBuildOnce sync.Once
	remoteBinDir    string
	remoteOwnDir    bool // remoteBinDir was made here: TestMain removes it
	remoteBuildErr  error
)

// remoteBins builds qmail-remote, qmail-tcpto and qmail-tcpok once (or uses
// HQMAIL_BINDIR) and returns their directory.
func remoteBins(t testing.TB) string {
	t.Helper()
	remoteBuildOnce.Do(func() {
		if d := os.Getenv("HQMAIL_BINDIR"); d != "" {
			remoteBinDir = d
			return
		}
		mod, err := harness.ModuleRoot()
		if err != nil {
			remoteBuildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "hqmail-remote-bin-")
		if err != nil {
			remoteBuildErr = err
			return
		}
		remoteOwnDir = true
		os.Chmod(dir, 0o755)
		cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/qmail-remote", "./cmd/qmail-tcpto", "./cmd/qmail-tcpok")
		cmd.Dir = mod
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			remoteBuildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
		remoteBinDir = dir
	})
	if remoteBuildErr != nil {
		t.Fatal(remoteBuildErr)
	}
	return remoteBinDir
}

// rtree is a qmail root with bin/qmail-remote, control/ and queue/lock/tcpto.
type rtree struct {
	t    testing.TB
	Root string
}

func newRTree(t testing.TB) *rtree {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test skipped under -short")
	}
	bins := remoteBins(t)
	root := harness.TempRoot(t)
	for _, d := range []string{"bin", "control", "queue/lock"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"qmail-remote", "qmail-tcpto", "qmail-tcpok"} {
		b, err := os.ReadFile(filepath.Join(bins, p))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "bin", p), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tr := &rtree{t: t, Root: root}
	tr.Control("me", "testhost.example\n")
	tr.Control("timeoutconnect", "5\n")
	tr.Control("timeoutremote", "10\n")
	if err := os.WriteFile(filepath.Join(root, "queue/lock/tcpto"), make([]byte, 1024), 0o644); err != nil {
		t.Fatal(err)
	}
	return tr
}

func (tr *rtree) Control(name, content string) {
	tr.t.Helper()
	if err := os.WriteFile(filepath.Join(tr.Root, "control", name), []byte(content), 0o644); err != nil {
		tr.t.Fatal(err)
	}
}

// UseDNS points qmail-remote at a test DNS server via control/resolvconf.
func (tr *rtree) UseDNS(s *dnstest.Server) {
	p := s.WriteResolvConf(tr.t, tr.Root)
	tr.Control("resolvconf", p+"\n")
}

// Remote runs ROOT/bin/qmail-remote with msg on fd 0 (a regular file, as
// qmail-rspawn gives it) and returns the NUL-terminated reports.
func (tr *rtree) Remote(msg string, args ...string) []string {
	tr.t.Helper()
	out, code := tr.remoteRaw(msg, args...)
	if code != 0 {
		tr.t.Fatalf("qmail-remote exit %d", code)
	}
	if !strings.HasSuffix(out, "\x00") {
		tr.t.Fatalf("output not NUL-terminated: %q", out)
	}
	return strings.Split(strings.TrimSuffix(out, "\x00"), "\x00")
}

func (tr *rtree) remoteRaw(msg string, args ...string) (string, int) {
	tr.t.Helper()
	mf := filepath.Join(tr.t.TempDir(), "mess")
	if err := os.WriteFile(mf, []byte(msg), 0o644); err != nil {
		tr.t.Fatal(err)
	}
	f, err := os.Open(mf)
	if err != nil {
		tr.t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(tr.Root, "bin", "qmail-remote"), args...)
	cmd.Stdin = f
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if errb.Len() > 0 {
		tr.t.Logf("qmail-remote stderr: %s", errb.String())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), ee.ExitCode()
	}
	if err != nil {
		tr.t.Fatalf("qmail-remote: %v", err)
	}
	return out.String(), 0
}

// needRoot skips tests that must bind port 25 or 465 on 127.x addresses.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to listen on port 25/465 of 127.x.y.z (MX delivery always uses port 25)")
	}
}

// loopbackIPs returns n distinct random addresses in 127.0.0.0/8, away from
// 127.0.0.1 and the 127.0.0.x range other tests like to use.
func loopbackIPs(n int) []string {
	seen := map[string]bool{}
	var out []string
	for len(out) < n {
		ip := fmt.Sprintf("127.%d.%d.%d", 100+mrand.IntN(150), mrand.IntN(256), 2+mrand.IntN(250))
		if !seen[ip] {
			seen[ip] = true
			out = append(out, ip)
		}
	}
	return out
}

// listen listens on ip:port, retrying other random addresses if taken when
// ip is empty.
func listen(t testing.TB, ip string, port int) net.Listener {
	t.Helper()
	for i := 0; i < 20; i++ {
		a := ip
		if a == "" {
			a = loopbackIPs(1)[0]
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(a, fmt.Sprint(port)))
		if err == nil {
			t.Cleanup(func() { ln.Close() })
			return ln
		}
		if ip != "" {
			t.Fatalf("listen %s:%d: %v", a, port, err)
		}
	}
	t.Fatalf("no free loopback address for port %d", port)
	return nil
}

func hostOf(ln net.Listener) string { return ln.Addr().(*net.TCPAddr).IP.String() }
func portOf(ln net.Listener) int    { return ln.Addr().(*net.TCPAddr).Port }

// --- go-smtp recording sink ---

type sunkMsg struct {
	From     string
	Body     smtp.BodyType
	UTF8     bool
	To       []string
	Data     []byte
	TLS      bool
	AuthUser string
	Helo     string
	Peer     string // the client's IP address
}

type sinkOpts struct {
	TLS      *tls.Config
	User     string // AUTH PLAIN/LOGIN credentials accepted, if set
	Password string
	RcptErr  map[string]*smtp.SMTPError
	MailErr  *smtp.SMTPError
	DataErr  *smtp.SMTPError
}

type sink struct {
	IP   string
	Port int
	opts sinkOpts
	mu   sync.Mutex
	msgs []*sunkMsg
	srv  *smtp.Server
}

// startSink serves SMTP on ln with a recording backend.
func startSink(t testing.TB, ln net.Listener, o sinkOpts) *sink {
	t.Helper()
	s := &sink{IP: hostOf(ln), Port: portOf(ln), opts: o}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &sinkSession{s: s, c: c, m: &sunkMsg{}}, nil
	}))
	s.srv.Domain = "sink.test"
	s.srv.ErrorLog = log.New(io.Discard, "", 0) // qmail-remote hangs up after QUIT without waiting
	s.srv.TLSConfig = o.TLS
	s.srv.EnableSMTPUTF8 = true
	s.srv.ReadTimeout = 30 * time.Second
	s.srv.WriteTimeout = 30 * time.Second
	s.srv.MaxMessageBytes = 64 << 20
	s.srv.MaxRecipients = 1000
	done := make(chan struct{})
	go func() { s.srv.Serve(ln); close(done) }()
	t.Cleanup(func() {
		s.srv.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	})
	return s
}

func (s *sink) Messages() []*sunkMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*sunkMsg(nil), s.msgs...)
}

type sinkSession struct {
	s *sink
	c *smtp.Conn
	m *sunkMsg
}

func (ss *sinkSession) Reset()        { ss.m = &sunkMsg{AuthUser: ss.m.AuthUser} }
func (ss *sinkSession) Logout() error { return nil }
func (ss *sinkSession) Mail(from string, o *smtp.MailOptions) error {
	if ss.s.opts.MailErr != nil {
		return ss.s.opts.MailErr
	}
	ss.m.From, ss.m.Body, ss.m.UTF8 = from, o.Body, o.UTF8
	return nil
}
func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if e := ss.s.opts.RcptErr[to]; e != nil {
		return e
	}
	ss.m.To = append(ss.m.To, to)
	return nil
}
func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if ss.s.opts.DataErr != nil {
		return ss.s.opts.DataErr
	}
	ss.m.Data = b
	_, ss.m.TLS = ss.c.TLSConnectionState()
	ss.m.Helo = ss.c.Hostname()
	ss.m.Peer = ss.c.Conn().RemoteAddr().(*net.TCPAddr).IP.String()
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, ss.m)
	ss.s.mu.Unlock()
	ss.Reset()
	return nil
}
func (ss *sinkSession) AuthMechanisms() []string {
	if ss.s.opts.User == "" {
		return nil
	}
	return []string{sasl.Plain}
}
func (ss *sinkSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != ss.s.opts.User || pass != ss.s.opts.Password {
			return smtp.ErrAuthFailed
		}
		ss.m.AuthUser = user
		return nil
	}), nil
}

// --- scripted raw peers ---

// scripted serves each connection on ln with fn (in its own goroutine);
// connections are closed when fn returns or the test ends.
func scripted(t testing.TB, ln net.Listener, fn func(c net.Conn, br *bufio.Reader)) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(60 * time.Second))
				fn(c, bufio.NewReader(c))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// expect reads one command line and fails quietly (returns false) on EOF.
func expect(br *bufio.Reader, prefix string) bool {
	l, err := br.ReadString('\n')
	return err == nil && strings.HasPrefix(strings.ToUpper(l), prefix)
}

// --- certificates ---

// selfSigned returns a self-signed certificate for names/IPs and its PEM.
func selfSigned(t testing.TB, names ...string) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: names[0]},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
