package smtpd

import (
	"strings"
	"time"

	"github.com/hqmail/hqmail/pkg/address"
	"github.com/hqmail/hqmail/pkg/qdate"
)

// Received returns the line qmail-smtpd puts at the top of every message
// (two physical lines, each ending in LF):
//
//	Received: from <remotehost> (HELO <helo>) (<remoteinfo>@<remoteip>)
//	  by <localhost> with SMTP; <d Mon yyyy hh:mm:ss> -0000
//
// "(HELO …)" appears only when helo differs from remotehost, A-Z and a-z
// taken as equal as qmail takes them and no other character folded
// ("un\u212Anown", with a KELVIN SIGN, differs from "unknown");
// "<remoteinfo>@" only when remoteinfo is non-nil (TCPREMOTEINFO set, even
// to the empty string). Every byte of the inserted values other than
// letters, digits and ". @ % + / = : - [ ]" becomes '?', so a client cannot
// inject header lines or odd bytes through HELO or its DNS name.
func Received(p Peer, helo string, t time.Time) string {
	var b strings.Builder
	b.Grow(128 + len(helo) + len(p.RemoteHost))
	b.WriteString("Received: from ")
	safePut(&b, p.RemoteHost)
	if address.LowerASCII(p.RemoteHost) != address.LowerASCII(helo) {
		b.WriteString(" (HELO ")
		safePut(&b, helo)
		b.WriteString(")")
	}
	b.WriteString(" (")
	if p.RemoteInfo != nil {
		safePut(&b, *p.RemoteInfo)
		b.WriteByte('@')
	}
	safePut(&b, p.RemoteIP)
	b.WriteString(")\n  by ")
	safePut(&b, p.LocalHost)
	b.WriteString(" with SMTP; ")
	b.WriteString(qdate.Header(t))
	b.WriteByte('\n')
	return b.String()
}

func safePut(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte(".@%+/=:-[]", c) >= 0:
		default:
			c = '?'
		}
		b.WriteByte(c)
	}
}
