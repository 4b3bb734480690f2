package sendmail

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHeaderFieldUnparsable: with -t, a recipient field that does not
// parse (left as it is by qmail-inject's rule, no recipients) and an
// address in one with no local part are said on standard error and get no
// copy; with nothing left the fatal error says why (it said only "no
// recipients found", or the rest went out without a word).
func TestHeaderFieldUnparsable(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		code     int
		envelope string
		stderr   string
	}{
		{name: "only To, unparsable", in: "To: alice@localhost, bad>x\nSubject: s\n\nx\n", code: ExDataErr,
			stderr: "sendmail: warning: unable to parse the To: field; its addresses get no copy\n" +
				"sendmail: fatal: no recipients found: the To: field could not be parsed\n"},
		{name: "Cc parses", in: "To: alice@localhost, bad>x\nCc: carol@x.example\nSubject: s\n\nx\n",
			envelope: "Falice@mx.example.org\x00Tcarol@x.example\x00\x00",
			stderr:   "sendmail: warning: unable to parse the To: field; its addresses get no copy\n"},
		{name: "resent", in: "To: a@x.example\nResent-to: b@x.example, c>\nResent-Cc: d@x.example\n\nx\n",
			envelope: "Falice@mx.example.org\x00Td@x.example\x00\x00",
			stderr:   "sendmail: warning: unable to parse the Resent-to: field; its addresses get no copy\n"},
		{name: "no local part", in: "To: \"\"@localhost, b@x.example\n\nx\n",
			envelope: "Falice@mx.example.org\x00Tb@x.example\x00\x00",
			stderr:   "sendmail: warning: an address in the To: field has no local part (\"@localhost.mx.example.org\"); it gets no copy\n"},
		{name: "only no local part", in: "Bcc: @localhost\n\nx\n", code: ExDataErr,
			stderr: "sendmail: warning: an address in the Bcc: field has no local part (an empty address: nothing before its @, or <>); it gets no copy\n" +
				"sendmail: fatal: no recipients found: an address in the Bcc: field has no local part\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, capdir, env := fakeTree(t)
			var errb bytes.Buffer
			sys := Sys{Chdir: func(string) error { return nil }, Exec: func(string, []string, []string) error { return errors.New("no exec") }}
			code := Main([]string{"sendmail", "-t"}, root, env, strings.NewReader(tc.in), &bytes.Buffer{}, &errb, sys)
			if code != tc.code || errb.String() != tc.stderr {
				t.Errorf("exit %d, stderr %q; want %d, %q", code, errb.String(), tc.code, tc.stderr)
			}
			envl, _ := os.ReadFile(filepath.Join(capdir, "envelope"))
			if string(envl) != tc.envelope {
				t.Errorf("envelope %q, want %q", envl, tc.envelope)
			}
		})
	}
}
