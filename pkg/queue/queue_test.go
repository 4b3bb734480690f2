package queue

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qdate"
	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/qq"
)

// newRoot makes a minimal tree: queue/ with its directories and no etc/ids.
func newRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	dirs := []string{"pid", "intd", "todo", "bounce", "lock"}
	for _, s := range []string{"mess", "info", "local", "remote"} {
		for i := 0; i < qhome.Split; i++ {
			dirs = append(dirs, filepath.Join(s, strconv.Itoa(i)))
		}
	}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, "queue", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

var now = time.Date(1995, 9, 26, 4, 46, 54, 0, time.UTC)

func run(root string, msg io.Reader, env io.Reader) int {
	return Run(&Config{Root: root, Message: msg, Envelope: env, UID: 1234, PID: 4321, Now: now})
}

// files lists every regular file and FIFO under queue/ except lock/.
func files(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	q := filepath.Join(root, "queue")
	filepath.Walk(q, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(q, p)
		if !strings.HasPrefix(rel, "lock/") {
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func big(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26)
		if i%70 == 69 {
			b[i] = '\n'
		}
	}
	return b
}

func TestQueueOK(t *testing.T) {
	long := strings.Repeat("x", qq.MaxAddr-len("@example.com")) + "@example.com"
	many := make([]string, 3000)
	for i := range many {
		many[i] = "rcpt" + strconv.Itoa(i) + "@example.com"
	}
	tests := []struct {
		name string
		msg  []byte
		env  qq.Envelope
	}{
		{"simple", []byte("Subject: hi\n\nbody\n"), qq.Envelope{Sender: "a@b", Recipients: []string{"c@d"}}},
		{"no recipients", []byte("x\n"), qq.Envelope{Sender: "a@b"}},
		{"bounce sender", []byte("x\n"), qq.Envelope{Sender: "", Recipients: []string{"c@d"}}},
		{"double bounce", []byte("x\n"), qq.Envelope{Sender: "#@[]", Recipients: []string{"c@d"}}},
		{"empty message", nil, qq.Envelope{Sender: "a@b", Recipients: []string{"c@d"}}},
		{"no final newline, binary", []byte("a\x00b\r\n\xff"), qq.Envelope{Sender: "a@b", Recipients: []string{"c@d", "e@f"}}},
		{"longest address", []byte("x\n"), qq.Envelope{Sender: long, Recipients: []string{long}}},
		{"large message", big(300 << 10), qq.Envelope{Sender: "a@b", Recipients: []string{"c@d"}}},
		{"buffer-sized message", big(bufSize - 47), qq.Envelope{Sender: "a@b", Recipients: []string{"c@d"}}},
		{"many recipients", []byte("x\n"), qq.Envelope{Sender: "a@b", Recipients: many}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := newRoot(t)
			code := run(root, bytes.NewReader(tc.msg), bytes.NewReader(tc.env.Encode()))
			if code != 0 {
				t.Fatalf("exit %d", code)
			}
			todo, _ := filepath.Glob(filepath.Join(root, "queue/todo/*"))
			if len(todo) != 1 {
				t.Fatalf("todo: %v", todo)
			}
			id, err := strconv.ParseUint(filepath.Base(todo[0]), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			mess := filepath.Join(root, "queue", MessPath(id))
			var st unix.Stat_t
			if err := unix.Stat(mess, &st); err != nil {
				t.Fatal(err)
			}
			if st.Ino != id {
				t.Errorf("mess inode %d, name %d", st.Ino, id)
			}
			got, _ := os.ReadFile(mess)
			want := append([]byte("Received: (qmail 4321 invoked by uid 1234); 26 Sep 1995 04:46:54 -0000\n"), tc.msg...)
			if !bytes.Equal(got, want) {
				t.Errorf("mess: got %d bytes, want %d", len(got), len(want))
			}
			env, _ := os.ReadFile(todo[0])
			prefix := "u1234\x00p4321\x00"
			if !bytes.HasPrefix(env, []byte(prefix)) {
				t.Fatalf("todo starts %q", env[:min(len(env), 20)])
			}
			// Parse back: the stored records plus the final NUL qq expects.
			back, err := qq.ParseEnvelope(append(env[len(prefix):], 0))
			if err != nil {
				t.Fatal(err)
			}
			if back.Sender != tc.env.Sender || strings.Join(back.Recipients, "\n") != strings.Join(tc.env.Recipients, "\n") {
				t.Errorf("envelope round trip differs")
			}
			intd, _ := os.ReadFile(filepath.Join(root, "queue/intd", filepath.Base(todo[0])))
			if !bytes.Equal(intd, env) {
				t.Errorf("intd differs from todo")
			}
			if len(files(t, root)) != 3 {
				t.Errorf("queue holds %v, want mess, intd, todo", files(t, root))
			}
		})
	}
}

// errReader returns some bytes then an error.
type errReader struct {
	data []byte
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestQueueBadInput(t *testing.T) {
	long := strings.Repeat("x", qq.MaxAddr+1)
	eio := errors.New("EIO")
	tests := []struct {
		name string
		msg  io.Reader
		env  io.Reader
		code int
	}{
		{"no F", strings.NewReader("x"), strings.NewReader("Tc@d\x00\x00"), qq.ExitEnvelope},
		{"empty envelope", strings.NewReader("x"), strings.NewReader(""), qq.ExitRead},
		{"bad later record", strings.NewReader("x"), strings.NewReader("Fa@b\x00Xc@d\x00\x00"), qq.ExitEnvelope},
		{"truncated in sender", strings.NewReader("x"), strings.NewReader("Fa@"), qq.ExitRead},
		{"truncated before final NUL", strings.NewReader("x"), strings.NewReader("Fa@b\x00Tc@d\x00"), qq.ExitRead},
		{"truncated in recipient", strings.NewReader("x"), strings.NewReader("Fa@b\x00Tc@"), qq.ExitRead},
		{"sender too long", strings.NewReader("x"), strings.NewReader("F" + long + "\x00\x00"), qq.ExitAddrTooLong},
		{"recipient too long", strings.NewReader("x"), strings.NewReader("Fa@b\x00T" + long + "\x00\x00"), qq.ExitAddrTooLong},
		{"message read error", &errReader{[]byte("Subject: x\n"), eio}, strings.NewReader("Fa@b\x00\x00"), qq.ExitRead},
		{"envelope read error", strings.NewReader("x"), &errReader{[]byte("Fa@b\x00Tc"), eio}, qq.ExitRead},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := newRoot(t)
			if code := run(root, tc.msg, tc.env); code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if f := files(t, root); len(f) != 0 {
				t.Errorf("left in queue: %v", f)
			}
		})
	}
}

func TestQueueMissingDirs(t *testing.T) {
	tests := []struct {
		name   string
		remove string // relative to the root
		code   int
	}{
		{"root", ".", qq.ExitHome},
		{"queue", "queue", qq.ExitQueueDir},
		{"pid", "queue/pid", qq.ExitPid},
		{"mess", "queue/mess", qq.ExitMess},
		{"intd", "queue/intd", qq.ExitIntd},
		{"todo", "queue/todo", qq.ExitTodo},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := newRoot(t)
			if err := os.RemoveAll(filepath.Join(root, tc.remove)); err != nil {
				t.Fatal(err)
			}
			code := run(root, strings.NewReader("x\n"), strings.NewReader("Fa@b\x00Tc@d\x00\x00"))
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if tc.remove != "." {
				if f := files(t, root); len(f) != 0 {
					t.Errorf("left in queue: %v", f)
				}
			}
		})
	}
}

// TestQueueUnwritable makes queue directories read-only; root bypasses
// permissions, so it only runs as an ordinary user.
func TestQueueUnwritable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions; covered by TestQueueMissingDirs and the injected failures")
	}
	for _, d := range []struct {
		dir  string
		code int
	}{{"pid", qq.ExitPid}, {"intd", qq.ExitIntd}, {"todo", qq.ExitTodo}} {
		t.Run(d.dir, func(t *testing.T) {
			root := newRoot(t)
			p := filepath.Join(root, "queue", d.dir)
			os.Chmod(p, 0o555)
			defer os.Chmod(p, 0o755)
			code := run(root, strings.NewReader("x\n"), strings.NewReader("Fa@b\x00Tc@d\x00\x00"))
			if code != d.code {
				t.Errorf("exit %d, want %d", code, d.code)
			}
			if f := files(t, root); len(f) != 0 {
				t.Errorf("left in queue: %v", f)
			}
		})
	}
}

// TestQueueInjectedFailures makes one file operation fail at a time.
func TestQueueInjectedFailures(t *testing.T) {
	var mu sync.Mutex // the four pre-commit fsyncs run concurrently
	enospc := func(int, []byte) (int, error) { return 0, unix.ENOSPC }
	tests := []struct {
		name  string
		setup func(calls *int)
		code  int
	}{
		{"disk full writing mess", func(calls *int) {
			sysWrite = func(fd int, p []byte) (int, error) { *calls++; return enospc(fd, p) }
		}, qq.ExitWrite},
		{"disk full writing intd", func(calls *int) {
			real := unix.Write
			sysWrite = func(fd int, p []byte) (int, error) {
				*calls++
				if *calls == 2 {
					return 0, unix.ENOSPC
				}
				return real(fd, p)
			}
		}, qq.ExitWrite},
		{"short writes", func(calls *int) {
			real := unix.Write
			sysWrite = func(fd int, p []byte) (int, error) {
				*calls++
				if len(p) > 3 {
					p = p[:3]
				}
				return real(fd, p)
			}
		}, 0},
		{"fsync fails", func(calls *int) {
			sysFsync = func(int) error { mu.Lock(); *calls++; mu.Unlock(); return unix.EIO }
		}, qq.ExitWrite},
		{"fsync of todo/ fails", func(calls *int) {
			real := unix.Fsync
			sysFsync = func(fd int) error {
				mu.Lock()
				*calls++
				n := *calls
				mu.Unlock()
				if n == 5 { // mess, intd, mess/S, intd/ (concurrently), then todo/
					return unix.EIO
				}
				return real(fd)
			}
		}, qq.ExitWrite},
		{"todo/ read-only after its fsync", func(calls *int) {
			sysFstatfs = func(fd int, st *unix.Statfs_t) error {
				*calls++
				err := unix.Fstatfs(fd, st)
				st.Flags |= unix.ST_RDONLY
				return err
			}
		}, qq.ExitWrite},
		{"todo link fails", func(calls *int) {
			real := unix.Linkat
			sysLinkat = func(a int, o string, b int, n string, f int) error {
				*calls++
				if strings.HasPrefix(n, "todo/") {
					return unix.EIO
				}
				return real(a, o, b, n, f)
			}
		}, qq.ExitTodo},
		{"pid unlink fails", func(calls *int) {
			real := unix.Unlinkat
			first := true
			sysUnlinkat = func(d int, p string, f int) error {
				*calls++
				if first && strings.HasPrefix(p, "pid/") {
					first = false
					return unix.EIO
				}
				return real(d, p, f)
			}
		}, qq.ExitPid},
		{"all pid names taken", func(calls *int) {
			real := unix.Openat
			sysOpenat = func(d int, p string, fl int, m uint32) (int, error) {
				if strings.HasPrefix(p, "pid/") {
					mu.Lock()
					defer mu.Unlock()
					*calls++
					return -1, unix.EEXIST
				}
				return real(d, p, fl, m)
			}
		}, qq.ExitPid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			saved := [...]any{sysWrite, sysFsync, sysLinkat, sysUnlinkat, sysOpenat}
			savedStatfs := sysFstatfs
			defer func() {
				sysFstatfs = savedStatfs
				sysWrite = saved[0].(func(int, []byte) (int, error))
				sysFsync = saved[1].(func(int) error)
				sysLinkat = saved[2].(func(int, string, int, string, int) error)
				sysUnlinkat = saved[3].(func(int, string, int) error)
				sysOpenat = saved[4].(func(int, string, int, uint32) (int, error))
			}()
			calls := 0
			tc.setup(&calls)
			root := newRoot(t)
			code := run(root, strings.NewReader("Subject: x\n\nbody\n"), strings.NewReader("Fa@b\x00Tc@d\x00\x00"))
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if calls == 0 {
				t.Errorf("injected operation never called")
			}
			want := 0
			if tc.code == 0 || tc.name == "fsync of todo/ fails" || tc.name == "todo/ read-only after its fsync" {
				// After the commit link nothing is taken back: a scan
				// of todo/ may have taken the message already.
				want = 3
			}
			if f := files(t, root); len(f) != want {
				t.Errorf("queue holds %v, want %d files", f, want)
			}
			if tc.name == "all pid names taken" && calls != 9 {
				t.Errorf("tried %d pid names, want 9", calls)
			}
		})
	}
}

// TestQueueMessNameTaken: a mess/ name taken by another file (a queue
// copied from elsewhere: ids are no longer inodes) keeps that pid/ file,
// holding its inode, and the next one is tried. The pid/ file was removed
// and, where the file system hands out the lowest free inode, every later
// message got the same inode and failed with 64 until the old message
// left the queue.
func TestQueueMessNameTaken(t *testing.T) {
	saved := sysLinkat
	defer func() { sysLinkat = saved }()
	var taken string
	sysLinkat = func(a int, o string, b int, n string, f int) error {
		if strings.HasPrefix(n, "mess/") && taken == "" {
			taken = n
			return unix.EEXIST
		}
		return saved(a, o, b, n, f)
	}
	root := newRoot(t)
	if code := run(root, strings.NewReader("Subject: x\n\nbody\n"), strings.NewReader("Fa@b\x00Tc@d\x00\x00")); code != 0 {
		t.Fatalf("exit %d", code)
	}
	pids, _ := os.ReadDir(filepath.Join(root, "queue", "pid"))
	if len(pids) != 1 {
		t.Fatalf("pid/ holds %d files, want the one whose id was taken", len(pids))
	}
	var st unix.Stat_t
	unix.Stat(filepath.Join(root, "queue", "pid", pids[0].Name()), &st)
	if want := strconv.FormatUint(st.Ino, 10); filepath.Base(taken) != want {
		t.Errorf("kept pid/ file has inode %s, the taken name was %s", want, taken)
	}
	// Every try taken: 64, and the pid/ files stay (nothing else does).
	sysLinkat = func(a int, o string, b int, n string, f int) error {
		if strings.HasPrefix(n, "mess/") {
			return unix.EEXIST
		}
		return saved(a, o, b, n, f)
	}
	root = newRoot(t)
	if code := run(root, strings.NewReader("x\n"), strings.NewReader("Fa@b\x00Tc@d\x00\x00")); code != qq.ExitMess {
		t.Fatalf("exit %d, want %d", code, qq.ExitMess)
	}
	pids, _ = os.ReadDir(filepath.Join(root, "queue", "pid"))
	if len(pids) != 9 {
		t.Errorf("pid/ holds %d files, want 9", len(pids))
	}
}

func TestWho(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	ids := &qhome.IDs{Alias: qhome.User{UID: 7001}, Qmaild: qhome.User{UID: 7002}, Qmails: qhome.User{UID: 7007},
		Qmaill: qhome.User{UID: 7003}, Qmailp: qhome.User{UID: 7004}, Qmailq: qhome.User{UID: 7005}, Qmailr: qhome.User{UID: 7006}}
	if err := os.WriteFile(filepath.Join(root, qhome.IDsFile), []byte(ids.Format()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		uid  int
		want string
	}{
		{7001, "by alias"}, {7002, "from network"}, {7007, "for bounce"},
		{7005, "by uid 7005"}, {0, "by uid 0"}, {1000, "by uid 1000"},
	} {
		if got := who(root, tc.uid); got != tc.want {
			t.Errorf("who(%d) = %q, want %q", tc.uid, got, tc.want)
		}
	}
	shared := qhome.SharedIDs(7001, 7001)
	os.WriteFile(filepath.Join(root, qhome.IDsFile), []byte(shared.Format()), 0o644)
	if got := who(root, 7001); got != "by uid 7001" {
		t.Errorf("shared tree: who = %q", got)
	}
	if got := who(t.TempDir(), 5); got != "by uid 5" {
		t.Errorf("no ids: who = %q", got)
	}
}

func TestReceivedDate(t *testing.T) {
	root := newRoot(t)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600))
	code := Run(&Config{Root: root, Message: strings.NewReader(""), Envelope: strings.NewReader("F\x00\x00"), UID: 1, PID: 2, Now: at})
	if code != 0 {
		t.Fatal(code)
	}
	m, _ := filepath.Glob(filepath.Join(root, "queue/mess/*/*"))
	b, _ := os.ReadFile(m[0])
	want := "Received: (qmail 2 invoked by uid 1); " + qdate.Header(at) + "\n"
	if string(b) != want || !strings.HasSuffix(want, "2 Jan 2026 02:04:05 -0000\n") {
		t.Errorf("got %q", b)
	}
}

// blockReader blocks until released.
type blockingReader struct{ release chan struct{} }

func (b *blockingReader) Read(p []byte) (int, error) { <-b.release; return 0, io.EOF }

func TestAlarm(t *testing.T) {
	codes := make(chan int, 1)
	saved := exit
	defer func() { exit = saved }()
	br := &blockingReader{release: make(chan struct{})}
	exit = func(code int) { codes <- code; close(br.release) }
	root := newRoot(t)
	done := make(chan int, 1)
	go func() {
		done <- Run(&Config{Root: root, Message: br, Envelope: strings.NewReader("F\x00\x00"), Now: now, Alarm: time.Millisecond})
	}()
	select {
	case c := <-codes:
		if c != qq.ExitTimeout {
			t.Errorf("alarm exit %d, want %d", c, qq.ExitTimeout)
		}
	case <-time.After(time.Minute):
		t.Fatal("alarm never fired")
	}
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after release")
	}
}

// TestOrder records the file operations of one run: the commit link must
// come after every flush of the data it names, and the todo/ directory must
// be flushed before success.
func TestOrder(t *testing.T) {
	restoreFileOps(t)
	var mu sync.Mutex
	names := map[int]string{}
	var ops []string
	sysOpenat = func(d int, p string, fl int, m uint32) (int, error) {
		fd, err := unix.Openat(d, p, fl, m)
		if err == nil {
			mu.Lock()
			names[fd] = p
			mu.Unlock()
		}
		return fd, err
	}
	sysFsync = func(fd int) error {
		mu.Lock()
		ops = append(ops, "fsync "+names[fd])
		mu.Unlock()
		return unix.Fsync(fd)
	}
	sysLinkat = func(a int, o string, b int, n string, f int) error {
		mu.Lock()
		ops = append(ops, "link "+strings.SplitN(o, "/", 2)[0]+" "+n)
		mu.Unlock()
		return unix.Linkat(a, o, b, n, f)
	}
	root := newRoot(t)
	if code := run(root, strings.NewReader("x\n"), strings.NewReader("Fa@b\x00Tc@d\x00\x00")); code != 0 {
		t.Fatal(code)
	}
	todo := one(filepath.Glob(filepath.Join(root, "queue/todo/*")))
	id, _ := strconv.ParseUint(filepath.Base(todo), 10, 64)
	s := strconv.FormatUint(id%qhome.Split, 10)
	ids := strconv.FormatUint(id, 10)
	if len(ops) != 7 {
		t.Fatalf("operations: %q", ops)
	}
	// The four flushes before the commit run concurrently: any order.
	pre := append([]string(nil), ops[1:5]...)
	sort.Strings(pre)
	want := []string{"fsync intd", "fsync intd/" + ids, "fsync mess/" + s, "fsync " + names[firstFD(names, "pid/")]}
	sort.Strings(want)
	if ops[0] != "link pid mess/"+s+"/"+ids || strings.Join(pre, "\n") != strings.Join(want, "\n") ||
		ops[5] != "link intd todo/"+ids || ops[6] != "fsync todo" {
		t.Errorf("operations:\n%s\nwant link to mess, then (any order)\n%s\nthen link to todo, fsync todo",
			strings.Join(ops, "\n"), strings.Join(want, "\n"))
	}
}

// restoreFileOps puts back sysFsync, sysLinkat and sysOpenat when the
// test ends, for a test that replaces them to record the run.
func restoreFileOps(t *testing.T) {
	saved := [...]any{sysFsync, sysLinkat, sysOpenat}
	t.Cleanup(func() {
		sysFsync = saved[0].(func(int) error)
		sysLinkat = saved[1].(func(int, string, int, string, int) error)
		sysOpenat = saved[2].(func(int, string, int, uint32) (int, error))
	})
}

func one(m []string, _ error) string {
	if len(m) != 1 {
		return ""
	}
	return m[0]
}

func firstFD(names map[int]string, prefix string) int {
	for fd, n := range names {
		if strings.HasPrefix(n, prefix) {
			return fd
		}
	}
	return -1
}
