package smtpd

import (
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/address"
)

// FuzzQuoteParse: an address as qmail-remote writes it between < and >
// (address.Quote: the local part quoted when needed, the domain as is) is
// read back by qmail-smtpd's parseAddr as the same address, and the ESMTP
// parameters after '>' are left whole.
func FuzzQuoteParse(f *testing.F) {
	for _, s := range []string{"a@b", `"x y"@z`, `a\b@c`, "@", "a.@b", "\xc3\xa9@x", "a>b@c", `a"b@c`,
		"x@[1.2.3.4]", `\@a`, "@r:u@d", "a b@c", "<@x", ":@x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		// qmail-smtpd refuses CR, LF and NUL; smtpAddr writes an
		// address without '@' raw; the domain is written as is by qmail
		// as well, so only domains a reader can take back are tried.
		if strings.ContainsAny(addr, "\x00\r\n") || !strings.Contains(addr, "@") {
			return
		}
		_, dom, _ := address.Split(addr)
		if strings.ContainsAny(dom, "<>\"\\ ") {
			return
		}
		q := address.Quote(addr)
		for _, cmd := range []string{"TO:<", "FROM:<"} {
			got, rest := parseAddr(cmd + q + "> SIZE=10")
			if got != addr || rest != " SIZE=10" {
				t.Fatalf("%q written as <%s> is read back as %q (rest %q)", addr, q, got, rest)
			}
		}
	})
}
