package sendmail

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// noExec is a Sys whose Exec fails, for Main in tests.
var noExec = Sys{Chdir: func(string) error { return nil }, Exec: func(string, []string, []string) error { return errors.New("no exec in tests") }}

// TestFailureRewindsFile: a regular file as standard input is put back at
// the offset reading started at when sendmail fails, and left where
// reading ended when it succeeds. bsd-mailx passes its temporary file as
// descriptor 0, sharing the offset, and copies dead.letter from there
// after a failure: it got nothing, or the tail that had not been read.
func TestFailureRewindsFile(t *testing.T) {
	const junk = "not the message\n" // before the start: the offset is not 0
	body := strings.Repeat("a line of the body, read in more than one buffer\n", 4000)
	cases := []struct {
		name  string
		args  []string
		env   []string
		input string
		code  int
	}{
		// qmail-queue reads the whole message, then fails.
		{"queue fails", []string{"sendmail", "-i", "ann"}, []string{"QQEXIT=71"}, "Subject: s\n\n" + body, ExTempFail},
		// -t and no recipient: the header is read, the body is not.
		{"no recipients", []string{"sendmail", "-t"}, nil, "Subject: s\n\n" + body, ExDataErr},
		// A usage error before anything is read.
		{"usage", []string{"sendmail"}, nil, "Subject: s\n\n" + body, ExUsage},
		{"queued", []string{"sendmail", "-i", "ann"}, nil, "Subject: s\n\n" + body, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root, _, env := fakeTree(t)
			fn := filepath.Join(t.TempDir(), "mail")
			if err := os.WriteFile(fn, []byte(junk+tc.input), 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(fn)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Seek(int64(len(junk)), io.SeekStart); err != nil {
				t.Fatal(err)
			}
			var errb bytes.Buffer
			code := Main(tc.args, root, append(env, tc.env...), f, &bytes.Buffer{}, &errb, noExec)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.code, errb.String())
			}
			off, err := f.Seek(0, io.SeekCurrent)
			if err != nil {
				t.Fatal(err)
			}
			want := int64(len(junk))
			if code == 0 {
				want = int64(len(junk) + len(tc.input)) // read to its end, and left there
			}
			if off != want {
				t.Errorf("offset %d after exit %d, want %d", off, code, want)
			}
		})
	}
}

// TestFailureDrainsStream: a message on a pipe or socket is read to its
// end before sendmail exits with a failure, so that a writer still
// writing (a message longer than the pipe buffer, Perl's print to
// "|sendmail -t") finishes and sees the exit code; it was killed by
// SIGPIPE (here: its write failed with EPIPE once the reading end was
// closed, as at sendmail's exit).
func TestFailureDrainsStream(t *testing.T) {
	msg := "Subject: no recipient\n\n" + strings.Repeat("x", 1<<20) + "\n"
	for _, kind := range []string{"pipe", "socket"} {
		t.Run(kind, func(t *testing.T) {
			r, w := streamPair(t, kind)
			done := make(chan error, 1)
			go func() {
				_, err := io.WriteString(w, msg)
				if cerr := w.Close(); err == nil {
					err = cerr
				}
				done <- err
			}()
			root, _, env := fakeTree(t)
			var errb bytes.Buffer
			code := Main([]string{"sendmail", "-t"}, root, env, r, &bytes.Buffer{}, &errb, noExec)
			r.Close() // as sendmail's exit does
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("the writer failed: %v", err)
				}
			case <-time.After(60 * time.Second):
				t.Fatal("the writer did not finish")
			}
			if code != ExDataErr || !strings.Contains(errb.String(), "no recipients found") {
				t.Errorf("exit %d, stderr %q; want %d and no recipients found", code, errb.String(), ExDataErr)
			}
		})
	}
}

// TestStreamNotDrainedOutsideMessages: with -bs the input is an SMTP
// client's, which waits for replies and does not close it: a failure to
// run qmail-smtpd must not read it to its end (that would wait for ever).
func TestStreamNotDrainedOutsideMessages(t *testing.T) {
	r, w := streamPair(t, "pipe")
	defer w.Close() // the client is still there
	root, _, env := fakeTree(t)
	res := make(chan int, 1)
	go func() {
		res <- Main([]string{"sendmail", "-bs"}, root, env, r, &bytes.Buffer{}, &bytes.Buffer{}, noExec)
	}()
	select {
	case code := <-res:
		if code == 0 {
			t.Errorf("exit 0 without qmail-smtpd")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("sendmail -bs kept reading the client's input after failing")
	}
	r.Close()
}

// streamPair returns the reading and the writing end of a pipe or of a
// connected pair of sockets, closed at the end of the test.
func streamPair(t *testing.T, kind string) (r, w *os.File) {
	t.Helper()
	if kind == "pipe" {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(); w.Close() })
		return r, w
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, w = os.NewFile(uintptr(fds[0]), "socket r"), os.NewFile(uintptr(fds[1]), "socket w")
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}
