package remote

import (
	"strings"
	"testing"
)

// TestSMTPUTF8OnlyForUTF8: SMTPUTF8 promises UTF-8 (RFC 6531 §3.2), so a
// peer that offers it is told SMTPUTF8 only when some envelope address is
// UTF-8 and not ASCII and the sender is UTF-8. A sender with other bytes
// above 127 (Latin-1), or an envelope whose only such addresses are not
// UTF-8, makes the transaction one as to a peer without SMTPUTF8: no
// parameter, the Latin-1 bytes as they are (a domain that is not UTF-8
// has no A-labels), a UTF-8 domain after an ASCII local part in its
// A-labels. Pipelined RCPTs are written the same way.
func TestSMTPUTF8OnlyForUTF8(t *testing.T) {
	const (
		u8   = "250-hi\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
		u8pp = "250-hi\r\n250-8BITMIME\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n"
	)
	for _, tc := range []struct {
		name   string
		ehlo   string
		sender string
		rcpts  []string
		want   []string // MAIL, then the RCPT lines
	}{
		{"Latin-1 local part", u8, "reject\xe9@u8.test", []string{"a@r.test"},
			[]string{"MAIL FROM:<\"reject\xe9\"@u8.test>\r\n", "RCPT TO:<a@r.test>\r\n"}},
		{"UTF-8 local part", u8, "reject\u00e9@u8.test", []string{"a@r.test"},
			[]string{"MAIL FROM:<\"reject\u00e9\"@u8.test> SMTPUTF8\r\n", "RCPT TO:<a@r.test>\r\n"}},
		{"UTF-8 domain", u8, "f@x.test", []string{"u@bücher.example"},
			[]string{"MAIL FROM:<f@x.test> SMTPUTF8\r\n", "RCPT TO:<u@bücher.example>\r\n"}},
		// A recipient that is not UTF-8 beside UTF-8 addresses leaves the
		// transaction SMTPUTF8 and goes as it is: only it may be refused
		// (QA rtoday4: without SMTPUTF8 a peer may refuse the sender and
		// every recipient with it).
		{"Latin-1 domain beside a UTF-8 one", u8, "f@bücher.example", []string{"u@caf\xe9.test", "v@m\u00fcnchen.example"},
			[]string{"MAIL FROM:<f@bücher.example> SMTPUTF8\r\n", "RCPT TO:<u@caf\xe9.test>\r\n", "RCPT TO:<v@m\u00fcnchen.example>\r\n"}},
		{"Latin-1 recipient, pipelined", u8pp, "f@bücher.example", []string{"v@m\u00fcnchen.example", "j\xf6rg@caf\xe9.test"},
			[]string{"MAIL FROM:<f@bücher.example> SMTPUTF8\r\n", "RCPT TO:<v@m\u00fcnchen.example>\r\n", "RCPT TO:<\"j\xf6rg\"@caf\xe9.test>\r\n"}},
		{"Latin-1 recipient alone", u8, "f@x.test", []string{"j\xf6rg@caf\xe9.test"},
			[]string{"MAIL FROM:<f@x.test>\r\n", "RCPT TO:<\"j\xf6rg\"@caf\xe9.test>\r\n"}},
		// A sender that is not UTF-8 cannot be said under SMTPUTF8.
		{"Latin-1 sender, UTF-8 recipient", u8, "j\xf6rg@x.test", []string{"v@m\u00fcnchen.example"},
			[]string{"MAIL FROM:<\"j\xf6rg\"@x.test>\r\n", "RCPT TO:<v@xn--mnchen-3ya.example>\r\n"}},
		{"UTF-8 recipients, pipelined", u8pp, "f@x.test", []string{"v@m\u00fcnchen.example", "j\u00f6rg@bücher.example"},
			[]string{"MAIL FROM:<f@x.test> SMTPUTF8\r\n", "RCPT TO:<v@m\u00fcnchen.example>\r\n", "RCPT TO:<\"j\u00f6rg\"@bücher.example>\r\n"}},
		// KELVIN SIGN lowercases to ASCII 'k': the domain's ASCII form is
		// kelvin.example, not the invalid A-label xn--kelvin-.
		{"Kelvin sign without SMTPUTF8", "250-hi\r\n250 8BITMIME\r\n", "f@x.test", []string{"u@\u212Aelvin.example"},
			[]string{"MAIL FROM:<f@x.test>\r\n", "RCPT TO:<u@kelvin.example>\r\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, lines := peer(t, map[string]string{"EHLO": tc.ehlo})
			reports, got := deliverFrom(t, addr, lines, tc.sender, tc.rcpts, "a\n")
			if want := strings.Repeat("r\x00", len(tc.rcpts)) + "K127.0.0.1 accepted message.\nRemote host said: 250 done\n"; reports != want {
				t.Errorf("reports\n got %q\nwant %q", reports, want)
			}
			if len(got) < 1+len(tc.want) || strings.Join(got[1:1+len(tc.want)], "") != strings.Join(tc.want, "") {
				t.Errorf("sent %q, want after EHLO %q", got, tc.want)
			}
		})
	}
}
