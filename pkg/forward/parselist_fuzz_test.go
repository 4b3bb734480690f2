package forward

import (
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/aliases"
	"github.com/hqmail/hqmail/pkg/qerr"
)

// FuzzParseList: a .forward (the user's own file) never makes ParseList
// panic; what it accepts is a list of targets none of which contains NUL,
// CR or LF (an address goes into a qmail-queue envelope record, a
// program onto a command line, a file name to open), nor does the form
// forwarding uses (aliases.Envelope of an address); what it refuses is a
// permanent error with no targets.
func FuzzParseList(f *testing.F) {
	for _, s := range []string{
		"joe@example.com\n",
		"joe@example.com, \\joe\n# comment\n|/usr/bin/vacation joe\n",
		"/var/mail/joe\n/home/joe/Maildir/\n:include:/etc/list\n",
		"Joe Bloggs <joe@example.com>, joe@example.com (Joe)\n",
		"\"joe smith\"@example.com\n",
		"\"|prog a,b\"\n",
		"joe@example.com\r\n",
		"\"a\r\nb\"@example.com\n",
		"joe\x00@example.com\n",
		"<joe@example.com\n",
		"\"unterminated\n",
		"\"a\\\rb\"@x\n",
		"  \t \n,,,\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := ParseList(s)
		if err != nil {
			if ts != nil {
				t.Fatalf("%q: error %v with targets %q", s, err, ts)
			}
			if !qerr.IsPerm(err) {
				t.Fatalf("%q: error %v is not permanent", s, err)
			}
			return
		}
		for _, x := range ts {
			if x == "" || strings.ContainsAny(x, "\x00\r\n") {
				t.Fatalf("%q: target %q", s, x)
			}
			if msg := aliases.CheckTarget(x); msg != "" {
				t.Fatalf("%q: target %q fails CheckTarget: %s", s, x, msg)
			}
			k, arg := aliases.Classify(x)
			if k == aliases.Address {
				arg = aliases.Envelope(arg)
			}
			if strings.ContainsAny(arg, "\x00\r\n") {
				t.Fatalf("%q: target %q is %q to deliver", s, x, arg)
			}
		}
	})
}
