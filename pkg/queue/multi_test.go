package queue

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hqmail/hqmail/pkg/qhome"
	"github.com/hqmail/hqmail/pkg/qq"
)

// frame renders msg as the chunks of qmail-queue -m (chunk bytes at most
// per chunk), ended by "0:,".
func frame(msg []byte, chunk int) string {
	var b strings.Builder
	for len(msg) > 0 {
		n := min(chunk, len(msg))
		b.WriteString(strconv.Itoa(n) + ":")
		b.Write(msg[:n])
		b.WriteString(",")
		msg = msg[n:]
	}
	b.WriteString("0:,")
	return b.String()
}

func runMulti(root, in, env string) (int, string) {
	var res bytes.Buffer
	code := RunMulti(&MultiConfig{Root: root, In: strings.NewReader(in), Envelope: strings.NewReader(env),
		Results: &res, UID: 1234, PID: 4321, Clock: func() time.Time { return now }})
	return code, res.String()
}

// queued returns the queued messages (mess files of todo/ entries, by id)
// and fails on leftovers in pid/ or intd/ entries without todo/.
func queued(t *testing.T, root string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	todo, _ := filepath.Glob(filepath.Join(root, "queue/todo/*"))
	for _, p := range todo {
		id, err := strconv.ParseUint(filepath.Base(p), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(root, "queue", MessPath(id)))
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	if n := len(files(t, root)); n != 3*len(todo) { // mess, intd, todo each
		t.Errorf("files %v for %d queued", files(t, root), len(todo))
	}
	return out
}

func TestMulti(t *testing.T) {
	env := (&qq.Envelope{Sender: "a@b", Recipients: []string{"c@d"}}).Encode()
	m1 := []byte("Subject: one\n\nbody\n")
	m2 := big(200 << 10)
	m3 := []byte{}
	bad := []byte("Xbad\x00\x00")
	long := (&qq.Envelope{Sender: strings.Repeat("x", qq.MaxAddr+1), Recipients: []string{"c@d"}}).Encode()
	tests := []struct {
		name    string
		in, env string
		code    int
		results []int // result codes in order
		msgs    [][]byte
	}{
		{"none", "", "", 0, nil, nil},
		{"three", frame(m1, 7) + frame(m2, 32<<10) + frame(m3, 1),
			string(env) + string(env) + string(env), 0, []int{0, 0, 0}, [][]byte{m1, m2, m3}},
		{"bad envelope in the middle ends the run", frame(m1, 100) + frame(m1, 100) + frame(m1, 100),
			string(env) + string(bad) + string(env), 91, []int{0, 91}, [][]byte{m1}},
		{"long address in the middle", frame(m1, 100) + frame(m1, 100),
			string(env) + string(long), 11, []int{0, 11}, [][]byte{m1}},
		{"EOF mid-chunk", frame(m1, 100) + "10:abc", string(env), 54, []int{0, 54}, [][]byte{m1}},
		{"EOF before the end frame", frame(m1, 100) + "3:abc,", string(env), 54, []int{0, 54}, [][]byte{m1}},
		{"EOF in a length", "1", "", 54, []int{54}, nil},
		{"missing comma", "3:abc.0:,", string(env), 91, []int{91}, nil},
		{"no length", ":abc,0:,", string(env), 91, []int{91}, nil},
		{"leading zero", "03:abc,0:,", string(env), 91, []int{91}, nil},
		{"ten digits", "1234567890:", string(env), 91, []int{91}, nil},
		{"end frame without comma", "3:abc,0:x", string(env), 91, []int{91}, nil},
		{"envelope missing", frame(m1, 100), "", 54, []int{54}, nil},
		{"envelope truncated for the second", frame(m1, 100) + frame(m1, 100), string(env) + "Fa@b\x00", 54,
			[]int{0, 54}, [][]byte{m1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := newRoot(t)
			code, res := runMulti(root, tc.in, tc.env)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			lines := strings.Split(strings.TrimSuffix(res, "\n"), "\n")
			if res == "" {
				lines = nil
			}
			if len(lines) != len(tc.results) {
				t.Fatalf("results %q, want codes %v", res, tc.results)
			}
			q := queued(t, root)
			var got [][]byte
			for i, l := range lines {
				c, id, ok := strings.Cut(l, " ")
				if !ok || c != strconv.Itoa(tc.results[i]) {
					t.Fatalf("result %d %q, want code %d", i, l, tc.results[i])
				}
				if c != "0" {
					if id != "0" {
						t.Errorf("failed result %q names an id", l)
					}
					continue
				}
				m, found := q[id]
				if !found {
					t.Fatalf("result %q: id not in todo/", l)
				}
				got = append(got, m)
			}
			if len(q) != len(tc.msgs) {
				t.Errorf("%d queued, want %d", len(q), len(tc.msgs))
			}
			rcv := "Received: (qmail 4321 invoked by uid 1234); 26 Sep 1995 04:46:54 -0000\n"
			for i, m := range tc.msgs {
				if i >= len(got) || !bytes.Equal(got[i], append([]byte(rcv), m...)) {
					t.Errorf("message %d differs", i)
				}
			}
		})
	}
}

// TestMultiInjectedFailure: a disk error on the second message fails it
// (53), ends the run and leaves the first queued and nothing of the second.
func TestMultiInjectedFailure(t *testing.T) {
	root := newRoot(t)
	env := string((&qq.Envelope{Sender: "a@b", Recipients: []string{"c@d"}}).Encode())
	var calls atomic.Int32
	old := sysFsync
	sysFsync = func(fd int) error {
		if calls.Add(1) > 5 { // five fsyncs per message
			return os.ErrInvalid
		}
		return old(fd)
	}
	defer func() { sysFsync = old }()
	code, res := runMulti(root, frame([]byte("a\n"), 10)+frame([]byte("b\n"), 10), env+env)
	if code != qq.ExitWrite || !strings.HasPrefix(res, "0 ") || !strings.HasSuffix(res, "\n53 0\n") {
		t.Fatalf("exit %d results %q", code, res)
	}
	if q := queued(t, root); len(q) != 1 {
		t.Errorf("%d queued", len(q))
	}
}

// TestMultiResultWriteFails: a result that cannot be written ends the run.
func TestMultiResultWriteFails(t *testing.T) {
	root := newRoot(t)
	env := string((&qq.Envelope{Sender: "a@b"}).Encode())
	code := RunMulti(&MultiConfig{Root: root, In: strings.NewReader(frame([]byte("x"), 1) + frame([]byte("y"), 1)),
		Envelope: strings.NewReader(env + env), Results: errWriter{}, UID: 1, PID: 2})
	if code != qq.ExitBug {
		t.Errorf("exit %d", code)
	}
}

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

func FuzzFrame(f *testing.F) {
	for _, s := range []string{"0:,", "3:abc,0:,", "3:ab", "03:abc,", "1:a,2:bc,0:,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r := &frameReader{r: bufioReader(s)}
		b, err := io.ReadAll(r)
		if err == nil && len(b) > len(s) {
			t.Fatalf("%q: %d bytes from %d", s, len(b), len(s))
		}
	})
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }

// TestMultiSerialSyncs: in multi-message mode the four flushes before the
// commit run one at a time, in a fixed order, and all of them before the
// commit link; each message is flushed whole before the next is read.
func TestMultiSerialSyncs(t *testing.T) {
	restoreFileOps(t)
	var mu sync.Mutex
	names := map[int]string{}
	var ops []string
	var inflight, most atomic.Int32
	sysOpenat = func(d int, p string, fl int, m uint32) (int, error) {
		fd, err := unix.Openat(d, p, fl, m)
		if err == nil {
			mu.Lock()
			names[fd] = strings.SplitN(p, ".", 2)[0] // pid/<pid>.<time>.<seq> -> pid/<pid>
			mu.Unlock()
		}
		return fd, err
	}
	sysFsync = func(fd int) error {
		if n := inflight.Add(1); n > most.Load() {
			most.Store(n)
		}
		defer inflight.Add(-1)
		mu.Lock()
		ops = append(ops, "fsync "+names[fd])
		mu.Unlock()
		// Long enough for a concurrent flush of the same message to start.
		time.Sleep(5 * time.Millisecond)
		return unix.Fsync(fd)
	}
	sysLinkat = func(a int, o string, b int, n string, f int) error {
		mu.Lock()
		ops = append(ops, "link "+strings.SplitN(o, "/", 2)[0]+" "+strings.SplitN(n, "/", 2)[0])
		mu.Unlock()
		return unix.Linkat(a, o, b, n, f)
	}
	root := newRoot(t)
	env := string((&qq.Envelope{Sender: "a@b", Recipients: []string{"c@d"}}).Encode())
	code, res := runMulti(root, frame([]byte("a\n"), 10)+frame([]byte("b\n"), 10), env+env)
	if code != 0 || strings.Count(res, "\n") != 2 {
		t.Fatalf("exit %d results %q", code, res)
	}
	var ids []string
	for _, l := range strings.Split(strings.TrimSpace(res), "\n") {
		ids = append(ids, strings.Fields(l)[1])
	}
	var want []string
	for _, id := range ids {
		n, _ := strconv.ParseUint(id, 10, 64)
		s := strconv.FormatUint(n%qhome.Split, 10)
		want = append(want, "link pid mess", "fsync pid/4321", "fsync intd/"+id, "fsync mess/"+s,
			"fsync intd", "link intd todo", "fsync todo")
	}
	if strings.Join(ops, "\n") != strings.Join(want, "\n") {
		t.Errorf("operations:\n%s\nwant\n%s", strings.Join(ops, "\n"), strings.Join(want, "\n"))
	}
	if most.Load() != 1 {
		t.Errorf("%d flushes at once, want one at a time", most.Load())
	}
}
