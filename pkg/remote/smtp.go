package remote

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
)

// timedConn arms a fresh deadline before every write, which is qmail's
// timeoutremote: the limit is on each wait for the peer, not on the whole
// dialogue. Reads get one deadline per reply (session.read), so a peer
// that trickles out a reply byte by byte cannot hold a delivery for longer
// than timeoutremote per reply.
type timedConn struct {
	net.Conn
	d time.Duration
}

func (c timedConn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.d))
	return c.Conn.Write(p)
}

// report is a message report: letter K, Z or D and its text.
type report struct {
	letter byte
	text   string
}

func (r *report) Error() string { return string(r.letter) + r.text }

// errTLSFallback asks the caller to try the same address again without TLS
// (an opportunistic handshake failed).
var errTLSFallback = errors.New("opportunistic TLS failed")

// session is one SMTP connection.
type session struct {
	raw      net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	ip       string
	timeout  time.Duration
	last     Reply // the last reply read, for "Remote host said:"
	critical bool  // the final dot has been sent
	tls      bool
}

func newSession(c net.Conn, ip string, timeout time.Duration) *session {
	s := &session{raw: c, ip: ip, timeout: timeout}
	s.attach(c)
	return s
}

func (s *session) attach(c net.Conn) {
	tc := timedConn{c, s.timeout}
	s.br = bufio.NewReaderSize(tc, 4096)
	s.bw = bufio.NewWriterSize(tc, 64*1024)
}

// died is the report for a connection that timed out or dropped.
func (s *session) died(err error) *report {
	dup := ""
	if s.critical {
		dup = "Possible duplicate! "
	}
	if errors.Is(err, errTooLong) {
		return &report{'Z', "Connected to " + s.ip + " but its SMTP reply was too long. " + dup + "(#4.4.2)\n"}
	}
	return &report{'Z', "Connected to " + s.ip + " but connection died. " + dup + "(#4.4.2)\n"}
}

// fail is a report in qmail's "prefix ip suffix.\nRemote host said: ..."
// form, quoting the last reply.
func (s *session) fail(letter byte, prefix, suffix string) *report {
	return &report{letter, prefix + s.ip + suffix + ".\n" + s.said()}
}

// said is "Remote host said: <text>" of the last reply, or nothing.
func (s *session) said() string {
	if s.last.Text == "" {
		return ""
	}
	return "Remote host said: " + s.last.Text
}

func (s *session) read() (Reply, error) {
	s.raw.SetReadDeadline(time.Now().Add(s.timeout))
	r, err := ReadReply(s.br)
	if err != nil {
		s.last = Reply{}
		return r, s.died(err)
	}
	s.last = r
	return r, nil
}

// command sends one line and reads the reply.
func (s *session) command(line string) (Reply, error) {
	s.bw.WriteString(line)
	s.bw.WriteString("\r\n")
	if err := s.bw.Flush(); err != nil {
		return Reply{}, s.died(err)
	}
	return s.read()
}

// quit sends QUIT without waiting for the answer.
func (s *session) quit() {
	s.bw.WriteString("QUIT\r\n")
	s.bw.Flush()
}

// hello greets with EHLO, falling back to HELO; it returns the EHLO
// extensions (nil after HELO).
func (s *session) hello(name string) (map[string]string, error) {
	r, err := s.command("EHLO " + name)
	if err != nil {
		return nil, err
	}
	if r.Code == 250 {
		return r.Extensions(), nil
	}
	r, err = s.command("HELO " + name)
	if err != nil {
		return nil, err
	}
	if r.Code != 250 {
		s.quit()
		return nil, s.fail('Z', "Connected to ", " but my name was rejected")
	}
	return nil, nil
}

// startTLS runs STARTTLS and the handshake. With required false, a refusal
// leaves the plain session usable (nil error) and a failed handshake gives
// errTLSFallback.
func (s *session) startTLS(cfg *tls.Config, required bool) error {
	r, err := s.command("STARTTLS")
	if err != nil {
		return err
	}
	if r.Code != 220 {
		if !required {
			return nil
		}
		s.quit()
		return s.fail('Z', "Connected to ", " but STARTTLS was rejected")
	}
	return s.handshake(cfg, required)
}

func (s *session) handshake(cfg *tls.Config, required bool) error {
	tc := tls.Client(s.raw, cfg)
	tc.SetDeadline(time.Now().Add(s.timeout))
	if err := tc.Handshake(); err != nil {
		if !required {
			return errTLSFallback
		}
		return &report{'Z', "Connected to " + s.ip + " but the TLS handshake failed: " + oneLine(err.Error()) + ". (#4.7.5)\n"}
	}
	tc.SetDeadline(time.Time{})
	s.raw = tc
	s.attach(tc)
	s.tls = true
	return nil
}

// auth logs in with PLAIN (preferred) or LOGIN. Failures are temporary: a
// wrong password is the admin's to fix, not a reason to bounce mail.
func (s *session) auth(ext map[string]string, cr Credentials) error {
	mechs := strings.Fields(strings.ToUpper(ext["AUTH"]))
	has := func(m string) bool {
		for _, x := range mechs {
			if x == m {
				return true
			}
		}
		return false
	}
	var r Reply
	var err error
	switch {
	case has("PLAIN"):
		_, ir, _ := sasl.NewPlainClient("", cr.User, cr.Password).Start()
		r, err = s.command("AUTH PLAIN " + base64.StdEncoding.EncodeToString(ir))
	case has("LOGIN"):
		r, err = s.command("AUTH LOGIN")
		for step := 0; err == nil && r.Code == 334 && step < 3; step++ {
			ch, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(firstLine(r.Text)[min(4, len(firstLine(r.Text))):]))
			resp := cr.Password
			if step == 0 && !strings.Contains(strings.ToLower(string(ch)), "pass") {
				resp = cr.User
			}
			r, err = s.command(base64.StdEncoding.EncodeToString([]byte(resp)))
		}
	default:
		s.quit()
		return &report{'Z', "Connected to " + s.ip + " but it offers neither AUTH PLAIN nor AUTH LOGIN. (#4.7.0)\n"}
	}
	if err != nil {
		return err
	}
	if r.Code != 235 {
		if r.Code == 334 { // still asking: cancel the exchange
			s.command("*")
		}
		s.quit()
		return s.fail('Z', "Connected to ", " but my login was rejected")
	}
	return nil
}

// body sends DATA, the message and the final dot, and reads the final reply.
func (s *session) body(msg io.Reader) error {
	r, err := s.command("DATA")
	if err != nil {
		return err
	}
	if r.Code >= 500 {
		s.quit()
		return s.fail('D', "", " failed on DATA command")
	}
	if r.Code >= 400 {
		s.quit()
		return s.fail('Z', "", " failed on DATA command")
	}
	if err := WriteData(s.bw, msg); err != nil {
		var we writeError
		switch {
		case errors.As(err, &we):
			return s.died(err)
		case errors.Is(err, errPartial):
			return &report{'D', "SMTP cannot transfer messages with partial final lines. (#5.6.2)\n"}
		default:
			return &report{'Z', "Unable to read message. (#4.3.0)\n"}
		}
	}
	if err := s.bw.Flush(); err != nil {
		return s.died(err)
	}
	s.critical = true
	r, err = s.read()
	if err != nil {
		return err
	}
	s.quit()
	switch {
	case r.Code >= 500:
		return s.fail('D', "", " failed after I sent the message")
	case r.Code >= 400:
		return s.fail('Z', "", " failed after I sent the message")
	}
	return s.fail('K', "", " accepted message")
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// oneLine makes an error text safe for a one-line report.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
