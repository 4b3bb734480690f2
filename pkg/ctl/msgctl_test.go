package ctl

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/qread/queuetest"
	"github.com/hqmail/hqmail/pkg/sched"
)

func TestFindResult(t *testing.T) {
	st := "pid 1\ngeneration 0\nctl a ok message 5 held\nctl ab fail message 6 is not in the queue\nctl c defer x"
	tests := []struct {
		tag  string
		ok   bool
		word string
		text string
	}{
		{"a", true, "ok", "message 5 held"},
		{"ab", true, "fail", "message 6 is not in the queue"},
		{"c", false, "", ""}, // half-written last line
		{"zz", false, "", ""},
	}
	for _, tc := range tests {
		r, ok := FindResult([]byte(st), tc.tag)
		if ok != tc.ok || r.Word != tc.word || r.Text != tc.text {
			t.Errorf("%s: %+v %v", tc.tag, r, ok)
		}
	}
	for w, code := range map[string]int{"ok": 0, "fail": 100, "defer": 111, "junk": 111} {
		if got := (Result{Word: w}).Code(); got != code {
			t.Errorf("Code(%s) = %d", w, got)
		}
	}
}

func mkfifo(t *testing.T, root string) {
	t.Helper()
	if err := syscall.Mkfifo(filepath.Join(root, CtlFIFO), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestMsgRequests drives the request path against a fake qmail-send that
// answers on queue/lock/sendctl.
func TestMsgRequests(t *testing.T) {
	root := makeTree(t)
	mkfifo(t, root)
	startFake(t, root, "FAKE_SEND_CTL=1")
	tests := []struct {
		args []string
		code int
		out  string
		err  string
	}{
		{[]string{"hold", "5"}, 0, "fake hold 5\n", ""},
		{[]string{"hold", "5", "404", "6"}, ExitUsage, "fake hold 5\nfake hold 6\n", "qmailctl: message 404 is not in the queue\n"},
		{[]string{"release", "7"}, 0, "fake release 7\n", ""},
		{[]string{"hold", "from", "joe@example.org"}, 0, "fake hold-from joe@example.org\n", ""},
		{[]string{"hold", "to", "a b@example.org"}, 0, "fake hold-to a b@example.org\n", ""},
		{[]string{"release", "from", ""}, 0, "fake release-from <>\n", ""},
		{[]string{"release", "to", "x@y"}, 0, "fake release-to x@y.defaultdomain\nfake release-to x@y\n", ""},
		{[]string{"delete", "8", "9"}, 0, "fake delete 8\nfake delete 9\n", ""},
		{[]string{"bounce", "10"}, 0, "fake bounce 10\n", ""},
		{[]string{"hold", "to", "\"a\nb\"@x"}, ExitUsage, "", "cannot send hold-to"},
		{[]string{"hold", "from"}, ExitUsage, "", "usage: qmailctl hold from ADDRESS"},
		{[]string{"hold", "007x"}, ExitUsage, "", ""},
	}
	for _, tc := range tests {
		code, out, errs := run(t, root, tc.args...)
		codeOK := code == tc.code || (tc.code == -1 && (code == ExitNotRunning || code == ExitTemp))
		if !codeOK || out != tc.out || !strings.Contains(errs, tc.err) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d %q %q", tc.args, code, out, errs, tc.code, tc.out, tc.err)
		}
	}
}

// TestMsgAddressAsSendmail: the ADDRESS of hold|release from|to is read as
// sendmail reads an address argument, so that it names the address as it
// stands in the queue (a quoted local part, the <sender> qmailctl queue
// prints, matched nothing), and qmail-send gets it in that form, "<>" for
// the empty one; what is not one address is refused with the reason.
func TestMsgAddressAsSendmail(t *testing.T) {
	root := makeTree(t)
	mkfifo(t, root)
	startFake(t, root, "FAKE_SEND_CTL=1")
	tests := []struct {
		args []string
		code int
		out  string
		err  string
	}{
		{[]string{"hold", "to", `"joe smith"@a.test`}, 0, "fake hold-to joe smith@a.test\n", ""},
		{[]string{"hold", "from", "<root@localhost.localdomain>"}, 0, "fake hold-from root@localhost.localdomain\n", ""},
		{[]string{"release", "from", " <root@localhost.localdomain> "}, 0, "fake release-from root@localhost.localdomain\n", ""},
		{[]string{"hold", "to", `Joe <"joe smith"@a.test> (work)`}, 0, "fake hold-to joe smith@a.test\n", ""},
		{[]string{"release", "to", "joe(comment)@a.test"}, 0, "fake release-to joe@a.test\n", ""},
		{[]string{"hold", "from", "<>"}, 0, "fake hold-from <>\n", ""},
		{[]string{"hold", "from", "()"}, 0, "fake hold-from <>\n", ""},
		{[]string{"hold", "to", "a@x.test, b@y.test"}, ExitUsage, "", `hold to: "a@x.test, b@y.test" is 2 addresses (a@x.test, b@y.test); name one`},
		// Control bytes (a terminal's escape sequences) are not echoed raw.
		{[]string{"hold", "from", "a\x1b]0;x\a\x1b[2J\x9b31m\nLF@localhost"}, ExitUsage, "",
			`hold from: "a\x1b]0;x\a\x1b[2J\x9b31m\nLF@localhost" is 2 addresses (a_]0, x__[2J_31m LF@localhost); name one`},
		{[]string{"hold", "to", "<a@x.test"}, ExitUsage, "", "hold to: unable to parse address \"<a@x.test\": '<' without a closing '>'"},
		{[]string{"release", "from", "<a@x.test> junk"}, ExitUsage, "", "release from: unable to parse address"},
		{[]string{"hold", "to", `"<>"`}, ExitUsage, "", "cannot be named"},
		// A domain alone is no address (it matched nothing, "0 held").
		{[]string{"hold", "to", "@c.test"}, ExitUsage, "", `hold to: unable to parse address "@c.test": it has no local part`},
	}
	for _, tc := range tests {
		code, out, errs := run(t, root, tc.args...)
		codeOK := code == tc.code || (tc.code == -1 && (code == ExitNotRunning || code == ExitTemp))
		if !codeOK || out != tc.out || !strings.Contains(errs, tc.err) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %d %q %q", tc.args, code, out, errs, tc.code, tc.out, tc.err)
		}
	}
}

// TestMsgRequestNoReader: a qmail-send that does not read the FIFO (an
// older one) is reported after the time-out; nothing hangs.
func TestMsgRequestNoReader(t *testing.T) {
	root := makeTree(t)
	mkfifo(t, root)
	startFake(t, root)
	code, _, errs := run(t, root, "-t", "0.3", "hold", "5")
	if code != ExitTemp || !strings.Contains(errs, "does not read queue/lock/sendctl") {
		t.Errorf("exit %d, %q", code, errs)
	}
}

// TestMsgHoldStopped: with qmail-send stopped, hold and release edit
// queue/bounce/heldmsgs under the sendmutex lock; exit 3 says the change
// waits for the next start.
func TestMsgHoldStopped(t *testing.T) {
	root := makeTree(t)
	q := filepath.Join(root, "queue")
	queuetest.WriteFile(t, filepath.Join(root, MutexFile), nil)
	queuetest.Add(t, q, queuetest.Msg{ID: 100, Birth: time.Now(), Body: "x", Sender: "a@example.org",
		Remote: []queuetest.Rcpt{{Addr: "z@y.example"}}})
	queuetest.AddTodo(t, q, 300, "new\n", "fresh@example.org", "a@b.example")
	tests := []struct {
		args []string
		code int
		out  string
		held string
	}{
		{[]string{"hold", "100", "300"}, ExitNotRunning, "message 100 held\nmessage 300 held\n", "100 300"},
		{[]string{"hold", "100"}, ExitNotRunning, "message 100 is already held\n", "100 300"},
		{[]string{"hold", "555"}, ExitUsage, "", "100 300"},
		{[]string{"release", "300"}, ExitNotRunning, "message 300 released\n", "100"},
		{[]string{"release", "300"}, ExitNotRunning, "message 300 was not held\n", "100"},
		{[]string{"hold", "from", "a@example.org"}, ExitNotRunning, "", "100"}, // needs qmail-send
	}
	for _, tc := range tests {
		code, out, errs := run(t, root, tc.args...)
		held, err := sched.LoadHeld(q)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, id := range []string{"100", "300"} {
			if held[map[string]uint64{"100": 100, "300": 300}[id]] {
				ids = append(ids, id)
			}
		}
		if code != tc.code || out != tc.out || strings.Join(ids, " ") != tc.held {
			t.Errorf("%q: exit %d, stdout %q, stderr %q, held %v", tc.args, code, out, errs, ids)
		}
	}
	if _, err := os.Stat(filepath.Join(root, HeldFile+".tmp")); !os.IsNotExist(err) {
		t.Errorf("tmp file left: %v", err)
	}
	// The held message is shown as such.
	run(t, root, "hold", "300")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"queue"}, " 1/1 msgheld <a@example.org>\n"},
		{[]string{"queue"}, " 1/1 todo,msgheld <fresh@example.org>\n"},
		{[]string{"queue", "100"}, "  state  queued (held by qmailctl hold 100)\n"},
		{[]string{"queue", "100"}, "  remote z@y.example  held\n"},
		{[]string{"status"}, "held messages: 2 (qmailctl hold ID; see qmailctl queue)\n"},
	} {
		if _, out, _ := run(t, root, tc.args...); !strings.Contains(out, tc.want) {
			t.Errorf("%v lacks %q:\n%s", tc.args, tc.want, out)
		}
	}
}

func FuzzFindResult(f *testing.F) {
	f.Add([]byte("pid 1\nctl a ok message 5 held\n"), "a")
	f.Add([]byte("ctl a\nctl a fail\n"), "a")
	f.Fuzz(func(t *testing.T, b []byte, tag string) {
		r, ok := FindResult(b, tag)
		if !ok {
			return
		}
		if strings.ContainsAny(r.Word, " \n") || strings.Contains(r.Text, "\n") {
			t.Fatalf("%q: %+v", b, r)
		}
	})
}

// TestMsgSendGoneMidList: when qmail-send goes away in the middle of a
// list of ids, qmailctl says which ids were not done (it said "holding by
// address needs it" for ids, or named nothing).
func TestMsgSendGoneMidList(t *testing.T) {
	for _, tc := range []struct {
		ids  []string
		code int
		out  string
		err  string
	}{
		// Gone between two requests: either it is found gone (exit 3) or
		// the next request is written before it is (exit 111).
		{[]string{"1", "409", "3", "4"}, -1, "fake hold 1\nfake hold 409\n", "(2 of the 4 ids, from 3 on)"},
		{[]string{"1", "2", "410", "4", "5"}, ExitTemp, "fake hold 1\nfake hold 2\n",
			"exited before answering; not confirmed (3 of the 5 ids, from 410 on): look with qmailctl queue"},
	} {
		root := makeTree(t)
		mkfifo(t, root)
		startFake(t, root, "FAKE_SEND_CTL=1")
		code, out, errs := run(t, root, append([]string{"hold"}, tc.ids...)...)
		codeOK := code == tc.code || (tc.code == -1 && (code == ExitNotRunning || code == ExitTemp))
		if !codeOK || out != tc.out || !strings.Contains(errs, tc.err) {
			t.Errorf("hold %q: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.ids, code, out, errs, tc.code, tc.out, tc.err)
		}
	}
}
