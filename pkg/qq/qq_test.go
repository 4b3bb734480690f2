package qq

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hqmail/hqmail/pkg/qerr"
)

func TestEncodeParseRoundTrip(t *testing.T) {
	long := strings.Repeat("a", MaxAddr)
	for _, e := range []Envelope{
		{Sender: "a@b", Recipients: []string{"c@d"}},
		{Sender: ""},
		{Sender: "#@[]", Recipients: []string{"x@y", "z@w"}},
		{Sender: "list-@[]", Recipients: []string{"T@x", "F@y"}},
		{Sender: long, Recipients: []string{long}},
		{Sender: "8bit\xff\x01", Recipients: []string{"\n"}},
	} {
		enc := e.Encode()
		got, err := ParseEnvelope(enc)
		if err != nil {
			t.Fatalf("%q: %v", enc, err)
		}
		if got.Sender != e.Sender || !reflect.DeepEqual(got.Recipients, e.Recipients) {
			t.Errorf("round trip %+v -> %+v", e, got)
		}
	}
	if got := (&Envelope{Sender: "a", Recipients: []string{"b"}}).Encode(); string(got) != "Fa\x00Tb\x00\x00" {
		t.Errorf("Encode = %q", got)
	}
}

func TestParseErrors(t *testing.T) {
	long := strings.Repeat("a", MaxAddr+1)
	for _, tc := range []struct {
		in   string
		err  error
		exit int
	}{
		{"", ErrTruncate, ExitRead},
		{"F", ErrTruncate, ExitRead},
		{"Fa@b", ErrTruncate, ExitRead},
		{"Fa@b\x00", ErrTruncate, ExitRead},
		{"Fa@b\x00Tc", ErrTruncate, ExitRead},
		{"Fa@b\x00Tc\x00", ErrTruncate, ExitRead},
		{"\x00", ErrFormat, ExitEnvelope},
		{"Ta@b\x00\x00", ErrFormat, ExitEnvelope},
		{"Fa@b\x00Fc\x00\x00", ErrFormat, ExitEnvelope},
		{"Fa@b\x00x\x00", ErrFormat, ExitEnvelope},
		{"F" + long + "\x00\x00", ErrTooLong, ExitAddrTooLong},
		{"Fa\x00T" + long + "\x00\x00", ErrTooLong, ExitAddrTooLong},
	} {
		_, err := ParseEnvelope([]byte(tc.in))
		if !errors.Is(err, tc.err) {
			t.Errorf("%q: %v, want %v", tc.in, err, tc.err)
		}
		if got := ParseExit(err); got != tc.exit {
			t.Errorf("%q: exit %d, want %d", tc.in, got, tc.exit)
		}
	}
}

// ReadEnvelope stops at the final NUL and leaves what follows unread.
func TestReadEnvelopeStops(t *testing.T) {
	r := bufio.NewReader(strings.NewReader("Fa\x00Tb\x00\x00TRAILING"))
	var recs []string
	err := ReadEnvelope(r, func(k byte, a []byte) error { recs = append(recs, string(k)+string(a)); return nil })
	if err != nil || !reflect.DeepEqual(recs, []string{"Fa", "Tb"}) {
		t.Fatalf("%v %q", err, recs)
	}
	rest, _ := r.ReadString(0)
	if rest != "TRAILING" {
		t.Errorf("rest %q", rest)
	}
	// A callback error stops the parse and is returned.
	stop := errors.New("stop")
	err = ReadEnvelope(bufio.NewReader(strings.NewReader("Fa\x00Tb\x00\x00")), func(byte, []byte) error { return stop })
	if err != stop {
		t.Errorf("callback error: %v", err)
	}
}

func TestExitError(t *testing.T) {
	for _, tc := range []struct {
		code int
		perm bool
		text string
	}{
		{11, true, "envelope address too long for qq (#5.1.3)"},
		{115, true, "envelope address too long for qq (#5.1.3)"},
		{31, true, "mail server permanently rejected message (#5.3.0)"},
		{51, false, "qq out of memory (#4.3.0)"},
		{52, false, "qq timeout (#4.3.0)"},
		{53, false, "qq write error or disk full (#4.3.0)"},
		{54, false, "qq read error (#4.3.0)"},
		{55, false, "qq unable to read configuration (#4.3.0)"},
		{56, false, "qq trouble making network connection (#4.3.0)"},
		{61, false, "qq trouble in home directory (#4.3.0)"},
		{62, false, "qq trouble creating files in queue (#4.3.0)"},
		{66, false, "qq trouble creating files in queue (#4.3.0)"},
		{71, false, "mail server temporarily rejected message (#4.3.0)"},
		{72, false, "connection to mail server timed out (#4.4.1)"},
		{73, false, "connection to mail server rejected (#4.4.1)"},
		{74, false, "communication with mail server failed (#4.4.2)"},
		{81, false, "qq internal bug (#4.3.0)"},
		{91, false, "qq internal bug (#4.3.0)"},
		{120, false, "unable to exec qq (#4.3.0)"},
		{12, true, "qq permanent problem (#5.3.0)"},
		{40, true, "qq permanent problem (#5.3.0)"},
		{41, false, "qq temporary problem (#4.3.0)"},
		{75, false, "qq temporary problem (#4.3.0)"},
		{79, false, "qq temporary problem (#4.3.0)"},
		{1, false, "qq temporary problem (#4.3.0)"},
		{255, false, "qq temporary problem (#4.3.0)"},
	} {
		err := ExitError(tc.code)
		if err == nil || qerr.IsPerm(err) != tc.perm || err.Error() != tc.text {
			t.Errorf("%d: %v (perm %v), want %q perm %v", tc.code, err, qerr.IsPerm(err), tc.text, tc.perm)
		}
	}
	if ExitError(0) != nil {
		t.Error("0 is an error")
	}
}

func TestProgram(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{nil, "/r/bin/qmail-queue"},
		{[]string{"QMAILQUEUE=/usr/bin/qq"}, "/usr/bin/qq"},
		{[]string{"QMAILQUEUE=bin/other"}, "/r/bin/other"},
		{[]string{"QMAILQUEUE=/a", "QMAILQUEUE=/b"}, "/b"},
		{[]string{"QMAILQUEUEX=/a"}, "/r/bin/qmail-queue"},
	} {
		if got := Program("/r", tc.env); got != tc.want {
			t.Errorf("%q: %s, want %s", tc.env, got, tc.want)
		}
	}
}

// TestQueue runs Queue against small shell scripts standing in for
// qmail-queue.
func TestQueue(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "bin"), 0o755)
	out := filepath.Join(root, "out")
	script := func(name, body string) {
		os.WriteFile(filepath.Join(root, "bin", name), []byte("#!/bin/sh\n"+body), 0o755)
	}
	script("qmail-queue", "cat > "+out+".msg; cat <&1 > "+out+".env; pwd > "+out+".cwd; exit 0\n")
	script("exit53", "cat >/dev/null; exit 53\n")
	script("custom", "cat >/dev/null; printf 'Dno such thing' >&6; exit 82\n")
	script("custom-short", "cat >/dev/null; printf 'D' >&6; exit 82\n")
	script("crash", "kill -9 $$\n")
	msg := []byte("Subject: hi\n\nbody\n")
	env := &Envelope{Sender: "a@b", Recipients: []string{"c@d"}}
	pid, err := Queue(Options{Root: root, Env: []string{}}, bytes.NewReader(msg), env)
	if err != nil || pid == 0 {
		t.Fatalf("Queue: %d %v", pid, err)
	}
	if b, _ := os.ReadFile(out + ".msg"); !bytes.Equal(b, msg) {
		t.Errorf("message %q", b)
	}
	if b, _ := os.ReadFile(out + ".env"); !bytes.Equal(b, env.Encode()) {
		t.Errorf("envelope %q", b)
	}
	if b, _ := os.ReadFile(out + ".cwd"); strings.TrimSpace(string(b)) != root {
		t.Errorf("cwd %q, want %s", b, root)
	}
	for _, tc := range []struct {
		prog string
		perm bool
		text string
	}{
		{"exit53", false, "qq write error or disk full (#4.3.0)"},
		{"custom", true, "no such thing"},
		{"custom-short", false, "qq temporary problem (#4.3.0)"},
		{"crash", false, "qq crashed (#4.3.0)"},
		{"missing", false, "unable to exec qq (#4.3.0)"},
	} {
		_, err := Queue(Options{Root: root, Env: []string{"QMAILQUEUE=bin/" + tc.prog}}, bytes.NewReader(msg), env)
		if err == nil || qerr.IsPerm(err) != tc.perm || err.Error() != tc.text {
			t.Errorf("%s: %v (perm %v)", tc.prog, err, qerr.IsPerm(err))
		}
	}
	// IgnoreQMAILQUEUE runs bin/qmail-queue whatever the environment says.
	if _, err := Queue(Options{Root: root, Env: []string{"QMAILQUEUE=bin/exit53"}, IgnoreQMAILQUEUE: true},
		bytes.NewReader(msg), env); err != nil {
		t.Errorf("IgnoreQMAILQUEUE: %v", err)
	}
}
