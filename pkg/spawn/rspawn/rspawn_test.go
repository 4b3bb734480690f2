package rspawn

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/internal/testutil"
	"github.com/hqmail/hqmail/pkg/remote"
	"github.com/hqmail/hqmail/pkg/spawn"
)

func TestTranslate(t *testing.T) {
	ok := spawn.Status{}
	tests := []struct {
		name   string
		st     spawn.Status
		out    string
		letter byte
		text   string
	}{
		{"crash", spawn.Status{Signaled: true}, "r\x00K\x00", 'Z', TextCrashed},
		{"killed", spawn.Status{Signaled: true, Signal: syscall.SIGKILL}, "", 'Z', TextCrashed},
		{"stopped by TERM before its dot", spawn.Status{Signaled: true, Signal: syscall.SIGTERM}, "r\x00", 'Z', remote.TextStopped},
		{"exit 111", spawn.Status{Code: 111}, "", 'Z', TextNoRun},
		{"exit 100", spawn.Status{Code: 100}, "", 'D', TextNoRun},
		{"exit 1", spawn.Status{Code: 1}, "r\x00K\x00", 'D', TextNoRun},
		{"Go runtime crash (exit 2)", spawn.Status{Code: 2}, "fatal error: newosproc\n", 'Z', "qmail-remote crashed (fatal error: newosproc).\n"},
		{"Go runtime crash, nothing said", spawn.Status{Code: 2}, "r\x00", 'Z', TextCrashed},
		{"crash after a piece", spawn.Status{Signaled: true}, "r\x00" + goTrace, 'Z', "qmail-remote crashed (fatal error: newosproc).\n"},
		{"no output", ok, "", 'Z', TextNoOutput},
		{"accepted", ok, "r\x00K1.2.3.4 accepted message.\nRemote host said: 250 ok\n\x00",
			'K', "1.2.3.4 accepted message.\nRemote host said: 250 ok\n"},
		{"recipient refused", ok, "h1.2.3.4 does not like recipient.\nRemote host said: 550 no\n\x00DGiving up on 1.2.3.4.\n\x00",
			'D', "1.2.3.4 does not like recipient.\nRemote host said: 550 no\nGiving up on 1.2.3.4.\n"},
		{"recipient deferred", ok, "s1.2.3.4 does not like recipient.\nRemote host said: 450 later\n\x00DGiving up on 1.2.3.4.\n\x00",
			'Z', "1.2.3.4 does not like recipient.\nRemote host said: 450 later\nGiving up on 1.2.3.4.\n"},
		{"recipient deferred, message K", ok, "s1.2.3.4 does not like recipient.\n\x00K1.2.3.4 accepted message.\n\x00",
			'Z', "1.2.3.4 does not like recipient.\n"},
		{"recipient ok, data failed", ok, "r\x00D1.2.3.4 failed after I sent the message.\n\x00",
			'D', "1.2.3.4 failed after I sent the message.\n"},
		{"recipient ok, data deferred", ok, "r\x00Z1.2.3.4 failed on DATA command.\n\x00",
			'Z', "1.2.3.4 failed on DATA command.\n"},
		{"before rcpt, temporary", ok, "ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n\x00",
			'Z', "Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n"},
		{"before rcpt, permanent", ok, "DSorry, I couldn't find any host named x. (#5.1.2)\n\x00",
			'D', "Sorry, I couldn't find any host named x. (#5.1.2)\n"},
		{"message K only", ok, "Kfine\n\x00", 'K', "fine\n"},
		{"no NUL at all", ok, "Kfine\n", 'D', ""},
		{"no letter piece", ok, "r\x00xjunk\x00", 'D', ""},
		{"second piece without letter", ok, "hbad\x00junk\x00", 'D', "bad"},
		{"unterminated second piece", ok, "r\x00K1.2.3.4 accepted", 'D', "1.2.3.4 accepted"},
		{"empty first piece", ok, "\x00Kok\x00", 'K', "Kok"},
		{"h with K result", ok, "hno\x00Kyes\x00", 'D', "no"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, txt := Translate(tc.st, []byte(tc.out))
			if l != tc.letter || txt != tc.text {
				t.Errorf("Translate = %c %q; want %c %q", l, txt, tc.letter, tc.text)
			}
		})
	}
}

func FuzzTranslate(f *testing.F) {
	f.Add([]byte("r\x00K1.2.3.4 accepted message.\n\x00"), 0)
	f.Add([]byte("h\x00D\x00"), 0)
	f.Add([]byte("s\x00"), 111)
	f.Add([]byte{}, 0)
	f.Fuzz(func(t *testing.T, out []byte, code int) {
		l, txt := Translate(spawn.Status{Code: code & 255}, out)
		if l != 'K' && l != 'Z' && l != 'D' {
			t.Fatalf("letter %q", l)
		}
		if strings.IndexByte(txt, 0) >= 0 {
			t.Fatalf("NUL in text %q", txt)
		}
		if len(txt) > len(out)+len(TextNoOutput) {
			t.Fatalf("text longer than output")
		}
	})
}

// TestDeliverArgs runs a fake qmail-remote that prints its arguments and
// stdin as the message report.
func TestDeliverArgs(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "qmail-remote")
	script := "#!/bin/sh\nprintf 'r\\0K%s|%s|%s|%s|' \"$0\" \"$1\" \"$2\" \"$3\"; cat; printf '\\0'\n"
	if err := os.WriteFile(prog, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	msg := filepath.Join(dir, "msg")
	os.WriteFile(msg, []byte("body\n"), 0o644)
	m, _ := os.Open(msg)
	defer m.Close()
	pr, pw, _ := os.Pipe()
	defer pr.Close()
	r := &Remote{Program: prog}
	d := &spawn.Delivery{Slot: 1, Mess: "1/1", Sender: "me@here", Recipient: "you@there.example",
		At: strings.LastIndexByte("you@there.example", '@'), Message: m, Output: pw}
	st, err := r.Deliver(d)
	pw.Close()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1000)
	n, _ := pr.Read(buf)
	l, txt := r.Report(st, buf[:n])
	want := prog + "|there.example|me@here|you@there.example|body\n"
	if l != 'K' || txt != want {
		t.Errorf("got %c %q, want K %q", l, txt, want)
	}
}

func TestDeliverExecFailure(t *testing.T) {
	r := &Remote{Program: filepath.Join(t.TempDir(), "missing")}
	_, pw, _ := os.Pipe()
	defer pw.Close()
	m, _ := os.Open(os.DevNull)
	defer m.Close()
	st, err := r.Deliver(&spawn.Delivery{Recipient: "a@b", At: 1, Message: m, Output: pw})
	if err != nil {
		t.Fatal(err)
	}
	if st.Report != "DUnable to run qmail-remote: file does not exist.\n" {
		t.Errorf("missing program: %q", st.Report)
	}
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
}

func TestClearTcpto(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "queue", "mess"), 0o755)
	os.MkdirAll(filepath.Join(root, "queue", "lock"), 0o755)
	tcpto := filepath.Join(root, "queue", "lock", "tcpto")
	junk := []byte(strings.Repeat("\x7f", TcptoSize))
	os.WriteFile(tcpto, junk, 0o644)
	t.Chdir(filepath.Join(root, "queue", "mess"))
	var warned testutil.SyncBuffer
	defer func(w io.Writer) { warnings = w }(warnings)
	warnings = &warned
	ClearTcpto()
	b, _ := os.ReadFile(tcpto)
	if len(b) != TcptoSize || strings.Trim(string(b), "\x00") != "" {
		t.Errorf("tcpto not zero-filled: %d bytes", len(b))
	}
	if warned.String() != "" {
		t.Errorf("warned about a regular file: %q", warned.String())
	}
	// A missing file is left missing, without a word.
	os.Remove(tcpto)
	if err := ClearTcpto(); err != nil || warned.String() != "" {
		t.Errorf("missing tcpto: %v, warned %q", err, warned.String())
	}
	if _, err := os.Lstat(tcpto); err == nil {
		t.Error("missing tcpto was created")
	}
}

// TestClearTcptoRefused: a FIFO, a symbolic link or a hard link at
// queue/lock/tcpto (a directory qmailq can write) is neither waited on nor
// written through: ClearTcpto returns at once, without failing the start,
// leaves the link's target as it was and says why on fd 2. A FIFO opened
// for writing as a plain file held qmail-rspawn's start, so all remote
// delivery, until a reader came.
func TestClearTcptoRefused(t *testing.T) {
	seen := []byte(strings.Repeat("\x7f", TcptoSize))
	for _, tc := range []struct {
		name string
		make func(tcpto, target string) error
		want string
	}{
		{"fifo", func(tcpto, target string) error { return unix.Mkfifo(tcpto, 0o644) }, "not a regular file"},
		{"symbolic link", func(tcpto, target string) error { return os.Symlink(target, tcpto) }, "is a symbolic link; not followed"},
		{"hard link", func(tcpto, target string) error { return os.Link(target, tcpto) }, "has more than one link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, d := range []string{"queue/mess", "queue/lock", "secret"} {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			tcpto := filepath.Join(root, "queue", "lock", "tcpto")
			target := filepath.Join(root, "secret", "file")
			if err := os.WriteFile(target, seen, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := tc.make(tcpto, target); err != nil {
				t.Fatal(err)
			}
			t.Chdir(filepath.Join(root, "queue", "mess"))
			var warned testutil.SyncBuffer
			defer func(w io.Writer) { warnings = w }(warnings)
			warnings = &warned
			done := make(chan error, 1)
			go func() { done <- ClearTcpto() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("start failed: %v", err)
				}
			case <-time.After(10 * time.Second):
				// Let the blocked open go (a reader comes), so the
				// goroutine ends.
				if r, err := os.OpenFile(tcpto, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
					<-done
					r.Close()
				}
				t.Fatal("ClearTcpto still blocked after 10s")
			}
			if b, _ := os.ReadFile(target); string(b) != string(seen) {
				t.Errorf("written through the link: %q...", b[:min(len(b), 8)])
			}
			want := "warning: unable to clear queue/lock/tcpto: " + tc.want
			if w := warned.String(); !strings.HasPrefix(w, want) || strings.Count(w, "\n") != 1 || !strings.HasSuffix(w, "\n") {
				t.Errorf("warned %q, want one line %q...", w, want)
			}
		})
	}
}

// TestDeliverCrash: a qmail-remote that crashes is reported with the Go
// runtime's reason, one-shot (from its output, after its "r" piece) and
// kept (from the kept process's fd 2), and with qmail's text when it
// wrote none.
func TestDeliverCrash(t *testing.T) {
	for _, tc := range []struct{ mode, text string }{
		{"fatal", "qmail-remote crashed (fatal error: newosproc).\n"},
		{"panic", "qmail-remote crashed (panic: qmail-remote gave up).\n"},
		{"dirty", "qmail-remote crashed (panic: bad ?[1m?t??).\n"},
		{"quiet", TextCrashed},
	} {
		t.Run(tc.mode+"/one-shot", func(t *testing.T) {
			r := &Remote{Program: os.Args[0], Env: append(os.Environ(), "HQ_FAKE_ONESHOT="+tc.mode)}
			m, err := os.Open(os.DevNull)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan []byte)
			go func() { b, _ := io.ReadAll(pr); pr.Close(); done <- b }()
			st, err := r.Deliver(&spawn.Delivery{Sender: "s@here", Recipient: "x@one.example", At: 1, Message: m, Output: pw})
			pw.Close()
			out := <-done
			if err != nil {
				t.Fatal(err)
			}
			if l, txt := r.Report(st, out); l != 'Z' || txt != tc.text {
				t.Errorf("got %c %q, want Z %q", l, txt, tc.text)
			}
		})
		t.Run(tc.mode+"/kept", func(t *testing.T) {
			p := newTestPool(t, tc.mode)
			if l, txt := poolDeliver(t, p, "x@one.example", "m\n"); l != 'Z' || txt != tc.text {
				t.Errorf("got %c %q, want Z %q", l, txt, tc.text)
			}
		})
	}
}
