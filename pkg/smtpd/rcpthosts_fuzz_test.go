package smtpd

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/admin"
	"github.com/hqmail/hqmail/pkg/cdb"
	"github.com/hqmail/hqmail/pkg/control"
	"github.com/hqmail/hqmail/pkg/idna"
)

// refRcptHosts is qmail's rcpthosts rule, written from its description:
// an address without '@' is accepted; otherwise the domain after the last
// '@', compared without regard to ASCII case, must be listed exactly, or
// end with a listed entry that starts with '.'. Entries of
// morercpthosts.cdb count as rcpthosts lines. This project compares both
// in idna.Fold form, so that either spelling of an IDN matches.
func refRcptHosts(entries []string, addr string) bool {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return true
	}
	dom := idna.Fold(addr[i+1:])
	for _, e := range entries {
		e = idna.Fold(e)
		if e == dom || strings.HasPrefix(e, ".") && strings.HasSuffix(dom, e) {
			return true
		}
	}
	return false
}

// writeCDB writes records as a cdb file at path (no fsync: test data).
func writeCDB(t *testing.T, path string, recs []cdb.Record) {
	t.Helper()
	var buf bytes.Buffer
	w := cdb.NewWriter(&buf)
	for _, r := range recs {
		if err := w.Add(r.Key, r.Data); err != nil {
			t.Fatal(err)
		}
	}
	hdr, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	copy(b, hdr[:])
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// FuzzRcptHostsAllowed compares (*RcptHosts).Allowed, fed as qmail-smtpd
// feeds it (control/rcpthosts through the list rule, control/morercpthosts
// compiled as qmail-newmrh does), with refRcptHosts.
func FuzzRcptHostsAllowed(f *testing.F) {
	for _, s := range [][3]string{
		{"example.org\n", "", "u@example.org"},
		{"example.org\n", "", "u@EXAMPLE.ORG"},
		{"example.org\n", "", "u@foo.example.org"},
		{".example.org\n", "", "u@foo.example.org"},
		{".example.org\n", "", "u@example.org"},
		{"example.org\n", "", "u@fooexample.org"},
		{"example.org\n", "", "u@example.org."},
		{"example.org\n", "", "postmaster"},
		{"example.org\n", "", "u@example.org@foreign.example"},
		{"example.org\n", "", "u@"},
		{"# c\n\n  \nexample.org \t\n", "", "u@example.org"},
		{"a.example\n", "Big.Example\n.sub.example\n", "u@big.example"},
		{"a.example\n", "Big.Example\n.sub.example\n", "u@x.SUB.example"},
		{"a.example\n", "big.example\n", "u@other.example"},
		{".\n", "", "u@a."},
		{"\xfe.example\n", "", "u@\xfe.example"},
		{"b\xc3\xbccher.example\n", "", "u@B\xc3\xbcCHER.example"},
		// Found by this target: Unicode case folding made every byte that
		// is no UTF-8 U+FFFD, and the Kelvin sign 'k', so unlisted
		// domains were accepted for relaying. (The Kelvin sign's label is
		// now "kexample.org" in the DNS too, idna.ToASCII giving the
		// ASCII that lowercasing makes: the listed domain, by the
		// reference rule below as by rcpthosts.)
		{"", "\xc9", "@\xff"},
		{"\xc9", "", "@\xff"},
		{"m\xfcnchen.example\n", "", "u@m\xe9nchen.example"},
		{"kexample.org\n", "", "u@\u212aexample.org"},
		{"b\xc3\xbccher.example\n", "", "u@xn--bcher-kva.example"},
		{"", "xn--bcher-kva.example\n", "u@B\xc3\x9cCHER.example"},
		{".z\xc3\xbcrich.example\n", "", "u@a.XN--ZRICH-KVA.example"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	dir := f.TempDir()
	path := filepath.Join(dir, "morercpthosts.cdb")
	f.Fuzz(func(t *testing.T, rcpthosts, more, addr string) {
		lines := control.ListLines([]byte(rcpthosts))
		recs := admin.MoreRcptHosts([]byte(more))
		if len(recs) > 0 {
			writeCDB(t, path, recs)
		} else if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		// qmail-newmrh's keys are the list lines of morercpthosts.
		entries := append(lines, control.ListLines([]byte(more))...)
		got, err := NewRcptHosts(lines, path).Allowed(addr)
		if err != nil {
			t.Fatalf("Allowed(%q): %v", addr, err)
		}
		if want := refRcptHosts(entries, addr); got != want {
			t.Fatalf("rcpthosts %q, morercpthosts %q: Allowed(%q) = %v, qmail's rule says %v",
				lines, control.ListLines([]byte(more)), addr, got, want)
		}
		// No rcpthosts file: everything is accepted.
		if ok, err := (*RcptHosts)(nil).Allowed(addr); !ok || err != nil {
			t.Fatalf("nil RcptHosts refused %q (%v)", addr, err)
		}
	})
}
