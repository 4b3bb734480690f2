package qread

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hqmail/hqmail/pkg/qread/queuetest"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var birth = time.Date(2026, 11, 6, 3, 4, 5, 0, time.UTC)

// sampleQueue builds the queue the golden files describe.
func sampleQueue(t *testing.T) string {
	root := t.TempDir()
	q := queuetest.MakeQueue(t, root)
	queuetest.Add(t, q, queuetest.Msg{ID: 100, Birth: birth, Body: "Subject: hi\n\nbody\n",
		Sender: "alice@example.org",
		Local:  []queuetest.Rcpt{{Addr: "example.org-alice-x@local.example"}},
		Remote: []queuetest.Rcpt{{Addr: "bob@example.com"}, {Addr: "carol@Held.example"},
			{Addr: "dave@held.example", Done: true}, {Addr: "erin@a.sub.example"}}})
	queuetest.Add(t, q, queuetest.Msg{ID: 47, Birth: birth.Add(-36 * time.Hour), Body: "x",
		Sender: "", Bouncing: true, Remote: []queuetest.Rcpt{{Addr: "postmaster@example.net"}}})
	queuetest.Add(t, q, queuetest.Msg{ID: 24, Birth: birth.Add(time.Second), Body: "",
		Sender: "ev\x01il\xff\t@x.example", Local: []queuetest.Rcpt{{Addr: "a\nb@local.example", Done: true}}})
	queuetest.Add(t, q, queuetest.Msg{ID: 200, Birth: birth, Sender: "gone@example.org", NoMess: true})
	queuetest.Add(t, q, queuetest.Msg{ID: 70, Birth: birth, Body: "y", Sender: "x"})
	queuetest.WriteFile(t, filepath.Join(q, "info", "1", "70"), []byte("garbage"))
	queuetest.Add(t, q, queuetest.Msg{ID: 9, Birth: birth, Body: "zz", Sender: "double@example.org",
		Remote: []queuetest.Rcpt{{Addr: "x@y"}, {Addr: ""}}})
	queuetest.AddTodo(t, q, 300, "new\n", "fresh@example.org", "a@b.example")
	queuetest.WriteFile(t, filepath.Join(q, "info", "5", "notanid"), nil)
	return root
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: output differs\n--- got\n%s--- want\n%s", name, got, want)
	}
}

func TestQreadGolden(t *testing.T) {
	tests := []struct {
		name  string
		holds map[string]string // control file -> contents
	}{
		{"qread-plain", nil},
		{"qread-holdremote-all", map[string]string{"holdremote": ""}},
		{"qread-holdremote-domains", map[string]string{"holdremote": "held.example\n.sub.example\n"}},
		{"qread-holdlocal", map[string]string{"holdlocal": "1\n"}},
		// Messages held by id (qmailctl hold ID): 100 and 9 held, 24's
		// only recipient is done; a junk line is ignored.
		{"qread-heldmsgs", map[string]string{"../queue/bounce/heldmsgs": "# held\n100\n9\n24\nx1\n"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := sampleQueue(t)
			if err := os.Mkdir(filepath.Join(root, "control"), 0755); err != nil {
				t.Fatal(err)
			}
			for f, c := range tc.holds {
				queuetest.WriteFile(t, filepath.Join(root, "control", f), []byte(c))
			}
			var out, errb bytes.Buffer
			if code := Main(root, &out, &errb); code != 0 || errb.Len() != 0 {
				t.Fatalf("exit %d, stderr %q", code, errb.String())
			}
			golden(t, tc.name, out.Bytes())
		})
	}
}

func TestQstatGolden(t *testing.T) {
	root := sampleQueue(t)
	var out, errb bytes.Buffer
	if code := StatMain(root, &out, &errb); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	golden(t, "qstat", out.Bytes())
}

func TestQreadFatal(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, root string)
	}{
		{"no queue", func(t *testing.T, root string) {}},
		{"info subdir missing", func(t *testing.T, root string) {
			queuetest.MakeQueue(t, root)
			if err := os.Remove(filepath.Join(root, "queue", "info", "7")); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			tc.setup(t, root)
			var out, errb bytes.Buffer
			if code := Main(root, &out, &errb); code != 111 || !bytes.HasPrefix(errb.Bytes(), []byte("qmail-qread: fatal: ")) {
				t.Errorf("exit %d, stderr %q; want 111 and a fatal message", code, errb.String())
			}
			out.Reset()
			errb.Reset()
			if tc.name == "no queue" {
				if code := StatMain(root, &out, &errb); code != 111 || !bytes.HasPrefix(errb.Bytes(), []byte("qmail-qstat: fatal: ")) {
					t.Errorf("qstat exit %d, stderr %q", code, errb.String())
				}
			}
		})
	}
}

func TestParseChannel(t *testing.T) {
	tests := []struct {
		in   string
		want []Record
	}{
		{"", nil},
		{"Ta@b\x00", []Record{{Addr: "a@b"}}},
		{"Da@b\x00Tc@d\x00", []Record{{Addr: "a@b", Done: true}, {Addr: "c@d"}}},
		{"Ta@b\x00Tpartial", []Record{{Addr: "a@b"}}},
		{"Xjunk\x00\x00Ta\x00", []Record{{Addr: "a"}}},
	}
	for _, tc := range tests {
		got := ParseChannel([]byte(tc.in))
		if len(got) != len(tc.want) {
			t.Errorf("ParseChannel(%q) = %v, want %v", tc.in, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("ParseChannel(%q) = %v, want %v", tc.in, got, tc.want)
			}
		}
	}
}

func TestScanTodoAndPending(t *testing.T) {
	root := sampleQueue(t)
	q := filepath.Join(root, "queue")
	todo, err := ScanTodo(q)
	if err != nil || len(todo) != 1 || todo[0].ID != 300 || todo[0].Sender != "fresh@example.org" ||
		todo[0].Recipients != 1 || todo[0].Size != 4 {
		t.Fatalf("ScanTodo = %+v, %v", todo, err)
	}
	msgs, err := Scan(q)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.ID == 100 {
			if l, r := m.Pending(); l != 1 || r != 3 {
				t.Errorf("pending of 100 = %d/%d, want 1/3", l, r)
			}
		}
	}
}

func FuzzParseChannel(f *testing.F) {
	f.Add([]byte("Ta@b\x00Dc@d\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, r := range ParseChannel(b) {
			if bytes.IndexByte([]byte(r.Addr), 0) >= 0 {
				t.Fatal("NUL in address")
			}
		}
	})
}

// TestScanWhileQueueChanges removes and re-adds messages while Scan runs:
// every message is either read whole, skipped (gone), or reported with
// trouble; nothing panics and nothing is modified by the reader.
func TestScanWhileQueueChanges(t *testing.T) {
	root := t.TempDir()
	q := queuetest.MakeQueue(t, root)
	msg := func(id uint64) queuetest.Msg {
		return queuetest.Msg{ID: id, Birth: birth, Body: "b", Sender: "s@x",
			Remote: []queuetest.Rcpt{{Addr: "r@y"}}}
	}
	for id := uint64(1); id <= 50; id++ {
		queuetest.Add(t, q, msg(id))
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for round := 0; round < 20; round++ {
			for id := uint64(1); id <= 50; id += 2 {
				name := filepath.Join(q, "%s", Sub(id), strconv.FormatUint(id, 10))
				for _, d := range []string{"remote", "mess", "info"} {
					os.Remove(fmt.Sprintf(name, d))
				}
			}
			for id := uint64(1); id <= 50; id += 2 {
				queuetest.Add(t, q, msg(id))
			}
		}
	}()
	for i := 0; i < 20; i++ {
		msgs, err := Scan(q)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if m.Err == nil && (m.Sender != "s@x" || m.Size != 1) {
				t.Fatalf("message %d read without error but incomplete: %+v", m.ID, m)
			}
		}
	}
	<-done
	msgs, _ := Scan(q)
	if len(msgs) != 50 {
		t.Fatalf("%d messages after the churn, want 50", len(msgs))
	}
}

// TestScanSkipsMessagesInPassing: a message whose info file qmail-send is
// still writing (todo/ID there), or that is removed between its info and
// mess files being read, is skipped, not reported as trouble.
func TestScanSkipsMessagesInPassing(t *testing.T) {
	root := t.TempDir()
	q := queuetest.MakeQueue(t, root)
	for id := uint64(1); id <= 3; id++ {
		queuetest.Add(t, q, queuetest.Msg{ID: id, Birth: birth, Body: "b", Sender: "s@x",
			Remote: []queuetest.Rcpt{{Addr: "r@y"}}})
	}
	info := func(id uint64) string { return filepath.Join(q, "info", Sub(id), strconv.FormatUint(id, 10)) }
	// 1: being preprocessed: empty info, todo/1 present.
	os.WriteFile(info(1), nil, 0o644)
	os.WriteFile(filepath.Join(q, "todo", "1"), nil, 0o644)
	// 2: removed (info, then mess) after its info file was read.
	afterInfo = func() {
		if _, err := os.Stat(info(2)); err == nil {
			os.Remove(info(2))
			os.Remove(filepath.Join(q, "mess", Sub(2), "2"))
		}
	}
	t.Cleanup(func() { afterInfo = func() {} })
	msgs, err := Scan(q)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].ID != 3 || msgs[0].Err != nil {
		t.Fatalf("scan: %+v", msgs)
	}
	// Without todo/1 the empty info file is damage, reported.
	os.Remove(filepath.Join(q, "todo", "1"))
	afterInfo = func() {}
	msgs, _ = Scan(q)
	if len(msgs) != 2 || msgs[0].ID != 1 || !errors.Is(msgs[0].Err, ErrDamaged) {
		t.Fatalf("scan: %+v", msgs)
	}
}

// TestQreadNoQueueOnlyFatal: when the queue cannot be read, the fatal line
// is all qmail-qread says (a warning about the hold marks came first).
func TestQreadNoQueueOnlyFatal(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "control", "holdremote"), 0755); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := Main(root, &out, &errb)
	if code != 111 || !strings.HasPrefix(errb.String(), "qmail-qread: fatal: ") || strings.Count(errb.String(), "\n") != 1 {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}

func TestQreadHoldUnreadable(t *testing.T) {
	root := sampleQueue(t)
	if err := os.MkdirAll(filepath.Join(root, "control", "holdremote"), 0755); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := Main(root, &out, &errb)
	if code != 0 || !strings.HasPrefix(errb.String(), "qmail-qread: warning: remote recipients held by control/holdremote are not marked: ") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	golden(t, "qread-plain", out.Bytes())
}

// TestScanTodoDamage: a todo/0 is ignored, as qmail-send ignores it, and
// a todo/ID whose message file is missing is trouble, not an ordinary
// entry.
func TestScanTodoDamage(t *testing.T) {
	root := sampleQueue(t)
	q := filepath.Join(root, "queue")
	for _, n := range []string{"0", "301"} {
		if err := os.WriteFile(filepath.Join(q, "todo", n), []byte("u0\x00p1\x00Fs@x\x00Tr@y\x00"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	todo, err := ScanTodo(q)
	if err != nil || len(todo) != 2 || todo[0].ID != 300 || todo[0].Err != nil || todo[1].ID != 301 || todo[1].Err == nil {
		t.Fatalf("ScanTodo = %+v, %v", todo, err)
	}
}

// TestQueueFileSymlinks: run as root, the readers must not read another
// file through a symbolic link planted in the queue (whoever acts as
// qmails or qmailq can plant one): an info, local, remote or todo file
// that is a link is trouble for that message, and nothing of its target
// shows; a mess link does not tell its target's size.
func TestQueueFileSymlinks(t *testing.T) {
	root := t.TempDir()
	q := queuetest.MakeQueue(t, root)
	secret := filepath.Join(root, "secret")
	if err := os.WriteFile(secret, []byte("Fsecret@info\x00Tsecret@rcpt\x00"+strings.Repeat("s", 4321)), 0o600); err != nil {
		t.Fatal(err)
	}
	link := func(p string) {
		os.Remove(p)
		if err := os.Symlink(secret, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		id   uint64
		file string
	}{{1, "info"}, {2, "local"}, {3, "remote"}, {4, "mess"}} {
		queuetest.Add(t, q, queuetest.Msg{ID: tc.id, Birth: birth, Body: "b", Sender: "s@x",
			Local: []queuetest.Rcpt{{Addr: "l@x"}}, Remote: []queuetest.Rcpt{{Addr: "r@x"}}})
		link(filepath.Join(q, tc.file, Sub(tc.id), strconv.FormatUint(tc.id, 10)))
	}
	msgs, err := Scan(q)
	if err != nil || len(msgs) != 4 {
		t.Fatalf("Scan = %d messages, %v", len(msgs), err)
	}
	for _, m := range msgs {
		if m.Err == nil || !strings.Contains(m.Err.Error(), "symbolic link") {
			t.Errorf("message %d: Err %v; %+v", m.ID, m.Err, m)
		}
		if s := fmt.Sprint(m); strings.Contains(s, "secret") || m.Size == 4321+int64(len("Fsecret@info\x00Tsecret@rcpt\x00")) {
			t.Errorf("message %d shows its link's target: %+v", m.ID, m)
		}
	}
	m, found, err := ReadMessage(q, 3)
	if err != nil || !found || m.Err == nil || len(m.Remote) != 0 {
		t.Errorf("ReadMessage(3) = %+v, %v, %v", m, found, err)
	}
	link(filepath.Join(q, "todo", "5"))
	todo, err := ScanTodo(q)
	if err != nil || len(todo) != 1 || todo[0].Err == nil || todo[0].Sender != "" || todo[0].Recipients != 0 {
		t.Errorf("ScanTodo = %+v, %v", todo, err)
	}
}

// TestQreadNamesMissingDir: on a root with no queue (a source checkout's
// bin/ run by hand) the fatal line names the missing queue directory, not
// queue/info/0, and says the reason once.
func TestQreadNamesMissingDir(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, root string)
		want  string // below root
	}{
		{"no queue", func(t *testing.T, root string) {}, "queue"},
		{"no info", func(t *testing.T, root string) {
			if err := os.MkdirAll(filepath.Join(root, "queue", "mess"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "queue/info"},
		{"info subdir missing", func(t *testing.T, root string) {
			queuetest.MakeQueue(t, root)
			if err := os.Remove(filepath.Join(root, "queue", "info", "7")); err != nil {
				t.Fatal(err)
			}
		}, "queue/info/7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			tc.setup(t, root)
			var out, errb bytes.Buffer
			code := Main(root, &out, &errb)
			want := "qmail-qread: fatal: unable to read " + filepath.Join(root, tc.want) + ": no such file or directory\n"
			if code != 111 || errb.String() != want {
				t.Errorf("exit %d, stderr %q; want 111 and %q", code, errb.String(), want)
			}
		})
	}
	// A source checkout's bin/ after make: programs, no queue. Both
	// listing tools say which tree to use (QA: a bare "unable to read").
	t.Run("checkout never installed", func(t *testing.T) {
		root := t.TempDir()
		os.Mkdir(filepath.Join(root, "bin"), 0o755)
		os.WriteFile(filepath.Join(root, "bin", "qmail-queue"), nil, 0o755)
		for prog, run := range map[string]func(string, io.Writer, io.Writer) int{"qmail-qread": Main, "qmail-qstat": StatMain} {
			var out, errb bytes.Buffer
			code := run(root, &out, &errb)
			want := prog + ": fatal: " + root + " is no installed qmail tree (there is no " + filepath.Join(root, "queue") + ")"
			if code != 111 || !strings.HasPrefix(errb.String(), want) || !strings.Contains(errb.String(), "run/bin/"+prog) {
				t.Errorf("%s: exit %d, stderr %q; want 111 and %q...", prog, code, errb.String(), want)
			}
		}
	})
}

// TestCountNamesMissingDir: qmail-qstat (Count) on a root with no queue
// names the queue, and no error repeats its path ("open PATH: ...").
func TestCountNamesMissingDir(t *testing.T) {
	root := t.TempDir()
	q := filepath.Join(root, "queue")
	_, err := Count(q)
	if want := "unable to read " + q + ": no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("no queue: %v; want %q", err, want)
	}
	queuetest.MakeQueue(t, root)
	if err := os.Remove(filepath.Join(q, "todo")); err != nil {
		t.Fatal(err)
	}
	_, err = Count(q)
	if want := "unable to read " + filepath.Join(q, "todo") + ": no such file or directory"; err == nil || err.Error() != want {
		t.Errorf("no todo: %v; want %q", err, want)
	}
}

// TestCountSplitFilesOnly: N counts the regular files in mess/'s split
// directories, as qmail-qstat(8) says: a stray file in mess/ itself and
// a directory inside a split directory are no messages (QA rqueue).
func TestCountSplitFilesOnly(t *testing.T) {
	root := t.TempDir()
	q := queuetest.MakeQueue(t, root)
	queuetest.Add(t, q, queuetest.Msg{ID: 7, Birth: birth, Body: "x", Sender: "a@example.org",
		Remote: []queuetest.Rcpt{{Addr: "b@example.com"}}})
	if err := os.WriteFile(filepath.Join(q, "mess", "stray"), nil, 0644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(q, "mess", "1", "subdir"), 0755); err != nil {
		t.Fatal(err)
	}
	c, err := Count(q)
	if err != nil || c.Messages != 1 {
		t.Errorf("Count = %+v, %v; want 1 message", c, err)
	}
}

// TestQreadWarningOnItsOwnLine: with the listing and the warning on one
// output (a terminal, 2>&1), the warning about the hold marks is a line of
// its own: the listing, written as the queue is read, is flushed first.
// It landed inside a message's line once the listing passed the buffer.
func TestQreadWarningOnItsOwnLine(t *testing.T) {
	root := t.TempDir()
	q := queuetest.MakeQueue(t, root)
	for id := uint64(1); id <= 200; id++ {
		queuetest.Add(t, q, queuetest.Msg{ID: id, Birth: birth, Body: "x", Sender: "someone@example.org",
			Remote: []queuetest.Rcpt{{Addr: "a-recipient-with-a-long-name@example.com"}}})
	}
	if err := os.MkdirAll(filepath.Join(root, "control", "holdremote"), 0755); err != nil {
		t.Fatal(err)
	}
	var both bytes.Buffer
	if code := Main(root, &both, &both); code != 0 {
		t.Fatalf("exit %d: %s", code, both.String())
	}
	if both.Len() < 8192 {
		t.Fatalf("listing of %d bytes: too short to pass the buffer", both.Len())
	}
	lines := strings.Split(both.String(), "\n")
	n := 0
	for _, l := range lines {
		if strings.Contains(l, "qmail-qread: warning:") {
			n++
			if !strings.HasPrefix(l, "qmail-qread: warning: remote recipients held by control/holdremote are not marked: ") {
				t.Errorf("warning inside a line: %q", l)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d warning lines, want 1", n)
	}
}

// TestQreadSkipsTodoWithStaleInfo: a message whose todo/ID is there
// beside a complete info file and channel files (a preprocessing cut
// short) is not preprocessed: qmail-send makes them anew from todo/ID, so
// qmail-qread leaves it out instead of listing the stale sender and done
// marks, and the rest of the listing is unchanged byte for byte. Once
// todo/ID is gone (preprocessed) it is listed. A todo file that cannot be
// looked at is trouble for the message, not a reason to hide it.
func TestQreadSkipsTodoWithStaleInfo(t *testing.T) {
	root := sampleQueue(t)
	q := filepath.Join(root, "queue")
	// todo/300 of sampleQueue, with what an interrupted preprocessing
	// left: an info file naming another sender, a local file with a done
	// record and a remote file.
	queuetest.WriteFile(t, filepath.Join(q, "info", Sub(300), "300"), []byte("Fstale@elsewhere.test\x00"))
	queuetest.WriteFile(t, filepath.Join(q, "local", Sub(300), "300"), []byte("Dalice@local.test\x00"))
	queuetest.WriteFile(t, filepath.Join(q, "remote", Sub(300), "300"), []byte("Tbob@far.test\x00"))
	var out, errb bytes.Buffer
	if code := Main(root, &out, &errb); code != 0 || errb.Len() != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	golden(t, "qread-plain", out.Bytes())
	if _, found, err := ReadMessage(q, 300); found || err != nil {
		t.Errorf("ReadMessage(300): found %v, %v; want not found", found, err)
	}

	// Preprocessed: todo/300 removed, info and channel files now hold.
	if err := os.Remove(filepath.Join(q, "todo", "300")); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := Main(root, &out, &errb); code != 0 || errb.Len() != 0 {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if !strings.Contains(out.String(), "  #300  4  <stale@elsewhere.test> \n  done\tlocal\talice@local.test\n\tremote\tbob@far.test\n") {
		t.Errorf("preprocessed 300 not listed:\n%s", out.String())
	}

	// todo/ not a directory: whether a message is preprocessed cannot be
	// told; each is reported.
	if err := os.Remove(filepath.Join(q, "todo")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(q, "todo"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	msgs, err := Scan(q)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Err == nil || m.Err.Error() != "unable to stat todo file: not a directory" {
			t.Errorf("message %d with todo/ not a directory: %v", m.ID, m.Err)
		}
	}
	if len(msgs) != 7 {
		t.Errorf("%d messages, want 7", len(msgs))
	}
}

// TestQreadHoldSourcesStandAlone: each source of the hold marks stands
// alone. control/holdlocal holds local delivery as long as it exists, as
// qmail-send and qmailctl take it, so one that cannot be read (a
// directory here; a file of mode 0600 root for qmail-qread run as qmails)
// still marks the local recipients. A control/holdremote or a heldmsgs
// that cannot be read loses only its own marks, with a warning naming it.
// (Before, the first unreadable file dropped every mark, remote ones and
// those of messages held by id included.)
func TestQreadHoldSourcesStandAlone(t *testing.T) {
	plain, err := os.ReadFile(filepath.Join("testdata", "qread-plain.golden"))
	if err != nil {
		t.Fatal(err)
	}
	// withHeld is the plain listing with " held" after the lines given.
	withHeld := func(lines ...string) string {
		out := strings.SplitAfter(string(plain), "\n")
		for i, l := range out {
			for _, h := range lines {
				if l == h+"\n" {
					out[i] = h + HeldSuffix + "\n"
				}
			}
		}
		return strings.Join(out, "")
	}
	const (
		local = "\tlocal\texample.org-alice-x@local.example"
		bob   = "\tremote\tbob@example.com"
		carol = "\tremote\tcarol@Held.example"
		erin  = "\tremote\terin@a.sub.example"
		post  = "\tremote\tpostmaster@example.net"
		xy    = "\tremote\tx@y"
		empty = "\tremote\t"
	)
	dir := func(name string) string { return "\x00dir" + name }
	tests := []struct {
		name  string
		files map[string]string // below root: contents, or dir(name) for a directory
		want  string
		warn  string // the one warning expected, "" for none
	}{
		{"holdlocal a directory",
			map[string]string{"control/holdlocal": dir(""), "control/holdremote": "held.example\n"},
			withHeld(local, carol), ""},
		{"holdremote a directory",
			map[string]string{"control/holdlocal": dir(""), "control/holdremote": dir(""), "queue/bounce/heldmsgs": "9\n"},
			withHeld(local, xy, empty),
			"qmail-qread: warning: remote recipients held by control/holdremote are not marked: "},
		{"heldmsgs a directory",
			map[string]string{"control/holdremote": "", "queue/bounce/heldmsgs": dir("")},
			withHeld(bob, carol, erin, post, xy, empty),
			"qmail-qread: warning: recipients of messages held by id (queue/bounce/heldmsgs) are not marked: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := sampleQueue(t)
			if err := os.Mkdir(filepath.Join(root, "control"), 0755); err != nil {
				t.Fatal(err)
			}
			for f, c := range tc.files {
				p := filepath.Join(root, f)
				if strings.HasPrefix(c, "\x00dir") {
					if err := os.Mkdir(p, 0755); err != nil {
						t.Fatal(err)
					}
					continue
				}
				queuetest.WriteFile(t, p, []byte(c))
			}
			var out, errb bytes.Buffer
			if code := Main(root, &out, &errb); code != 0 {
				t.Fatalf("exit %d, stderr %q", code, errb.String())
			}
			if out.String() != tc.want {
				t.Errorf("listing:\n%s--- want\n%s", out.String(), tc.want)
			}
			switch e := errb.String(); {
			case tc.warn == "" && e != "":
				t.Errorf("stderr %q, want nothing", e)
			case tc.warn != "" && (!strings.HasPrefix(e, tc.warn) || !strings.HasSuffix(e, ": is a directory\n") || strings.Count(e, "\n") != 1):
				t.Errorf("stderr %q, want one line %q...: is a directory", e, tc.warn)
			}
		})
	}
}
